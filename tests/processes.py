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
