"""One writer per store: the lock a sweep holds from preparing its store to its summary.

The lock is the file ``<store>.lock`` beside the store (inside, ``--no-resume`` would
delete it with the old store). A sweep holds an exclusive ``flock`` on it, so the kernel
releases it when the holder dies, SIGKILL included: a killed sweep never leaves a lock
that a later one must guess about. The file holds the holder's host, pid and start time,
for the refusal message, and is removed when the sweep ends.

Filesystems without ``flock`` (some Lustre and FUSE mounts) fall back to creating the file
with ``O_EXCL``; such a lock is stale, and taken over, when its pid is gone on this host.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket

from ._errors import StoreLocked

__all__ = ["store_lock", "lock_path"]

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def lock_path(store: str) -> str:
    """The lock file of ``store``: ``<store>.lock``, beside it."""
    return os.fspath(store).rstrip("/") + ".lock"


def _me() -> dict:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": now}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a sweep that is starting"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}"


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            got = json.load(f)
        return got if isinstance(got, dict) else None
    except (OSError, ValueError):
        return None


def _refuse(store: str, path: str, holder: dict | None) -> StoreLocked:
    return StoreLocked(
        f"store {store!r} is being written by another sweep ({_describe(holder)}); wait "
        f"for it to end or choose another path (its lock is {path})",
        holder=holder,
    )


def _write(fd: int, info: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _flock(store: str, path: str) -> int | None:
    """The locked file's descriptor, or None when the filesystem has no flock."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _refuse(store, path, _read(path)) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_FLOCK:
                return None
            raise
        # a holder that just ended removed the file we opened: lock the new one instead
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _alive_here(holder: dict | None) -> bool:
    """The holder may still run: on another host (unknowable), or its pid exists here."""
    if not holder or holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


def _exclusive(store: str, path: str) -> int:
    for _ in range(2):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if _alive_here(holder):
                raise _refuse(store, path, holder) from None
            # its writer was killed on this host: the lock is stale
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    raise _refuse(store, path, _read(path))


@contextlib.contextmanager
def store_lock(store):
    """Hold ``store``'s lock for the ``with`` block; :class:`StoreLocked` if another
    sweep holds it.

    Examples
    --------
    >>> import tempfile, os
    >>> store = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> with store_lock(store):
    ...     with store_lock(store):
    ...         pass
    Traceback (most recent call last):
    ...
    glomsim.sweep.StoreLocked: store '...s.zarr' is being written by another sweep (pid ...)
    >>> os.path.exists(store + ".lock")
    False
    """
    store = os.fspath(store)
    path = lock_path(store)
    fd = _flock(store, path)
    if fd is None:
        fd = _exclusive(store, path)
    try:
        _write(fd, _me())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
