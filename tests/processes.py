"""Real processes in tests: each started in its own session, killed by process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def kill_group(proc) -> None:
    """SIGKILL a process started with start_new_session and everything it started."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_for(predicate, timeout, what) -> None:
    """Poll ``predicate`` until it is true, or fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def session_processes():
    """The body of a ``procs`` fixture: yields ``start(args, **popen_kwargs)``, which starts
    a process in its own session; every one is killed by group at teardown."""
    started = []

    def start(args, **kw):
        p = subprocess.Popen(args, start_new_session=True, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        kill_group(p)


def group_gone(pgid) -> bool:
    """Whether no live process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # orphaned zombies still count as members until they are reaped; they cannot write
    return _only_zombies(pgid)


def _only_zombies(pgid) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            return False
    return True
