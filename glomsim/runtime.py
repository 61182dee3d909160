"""Thread and BLAS policy, in one place, applied when a run first steps (never at import).

Three measured choices live here:

- OpenMP's waiting policy. Idle OpenMP threads (numba's layer, torch's) spin by default;
  on a shared 2-core machine that made small parallel steps 50-100x slower. A short spin
  (``GOMP_SPINCOUNT``, which libgomp lets override the policy) still lets a thread catch
  the next of a step's back-to-back parallel loops without a futex wake-up: a dim-64, 8x8
  step took 0.43 instead of 0.75 ms on 2 threads, and with the other core busy it behaved
  as passive waiting does (10000 spins made that case 2.5x slower). libgomp reads these
  once, when it is loaded, so :func:`start_threads` sets them just before numba's
  threading layer starts (and only then), keeping any value the user set.
- One BLAS thread while a run steps. OpenBLAS's idle threads spin and, beside numba's
  parallel kernels, made a step 100x slower on 2 cores; the fused kernel spreads work
  over numba's threads instead, and its products (the nets', global attention's) run
  without BLAS (:mod:`glomsim._kernels.gemm`); a custom rule's numpy code may still call
  BLAS. The limit is counted: concurrent runs
  on several Python threads lower it once and the last one to finish restores it.
- Tiny steps on one numba thread: waking threads costs more than the work.
- Fewer threads when other processes hold cores (:class:`_Load`). A parallel loop waits
  for its slowest thread, and numba splits loops evenly: with another process busy on the
  second of 2 cores, the thread sharing that core finishes last and a step took as long as
  on one thread or longer; with torch imported first, numba's OpenMP layer binds to
  torch's ``libgomp`` (loaded with global symbols), whose threads spin actively (torch
  read the default wait policy; glomsim's settings cannot reach a runtime already
  loaded), and the small config ran 4-12x slower on 2 threads than on 1. So before each
  run the policy reads how much CPU time other processes took on the cores this process
  may use (``/proc/stat`` less this process's own CPU time, over at least
  ``LOAD_WINDOW`` seconds since the last reading; before the first window, the load
  average; not on systems without ``/proc/stat``) and runs on ``round(cores - others)`` threads (at least 1, at most numba's
  count). ``GLOMSIM_ADAPT_THREADS=0`` turns it off. The threading layer is left to
  numba and the user: ``workqueue`` ran torch-first small steps at 2 threads no slower
  than at 1, but aborts the process when two Python threads launch parallel kernels at
  once (dask threads, a user's own numba code); ``tbb`` is used when installed (numba's
  first choice), and is not a dependency.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time

__all__ = [
    "start_threads",
    "max_threads",
    "stepping",
    "SERIAL_BELOW",
    "LOAD_WINDOW",
    "usable_threads",
    "kernels_cold",
    "say_compiling",
]

#: Steps of fewer floating-point operations run on one numba thread.
SERIAL_BELOW = 2_000_000

#: Seconds of CPU accounting the load reading needs (``/proc/stat`` counts in 10 ms ticks).
LOAD_WINDOW = 0.1
_ADAPT_ENV = "GLOMSIM_ADAPT_THREADS"

_WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}
_started = False


def start_threads() -> int:
    """Numba's current thread count. The first call sets OpenMP's waiting policy (only
    variables the user has not set, and only if numba's threading layer has not started
    yet), then lets numba start its layer."""
    global _started
    import numba

    if not _started:
        from numba.np.ufunc import parallel

        if not getattr(parallel, "_is_initialized", True):
            for name, value in _WAIT_POLICY.items():
                os.environ.setdefault(name, value)
        _started = True
    return numba.get_num_threads()


def max_threads() -> int:
    """The most threads numba can ever run (``NUMBA_NUM_THREADS``): per-thread scratch
    sized by it survives any later ``numba.set_num_threads`` (stumpy's habit)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


@functools.cache
def _numba_blas():
    """threadpoolctl's handles on the BLAS that numba's ``np.dot`` calls (scipy's, through
    ``scipy.linalg.cython_blas``), found once per process (scanning the loaded libraries
    costs milliseconds). Only that library is limited while a built-in run steps:
    limiting and restoring numpy's own OpenBLAS as well woke its thread pool after every
    run, and its spinning threads then made the next run's numba threads ~35% slower.
    Where numpy and scipy share one BLAS, that one is limited."""
    import scipy.linalg.cython_blas  # noqa: F401 - load the library numba's np.dot uses
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    scipy_own = [lib.filepath for lib in blas.lib_controllers if "scipy.libs" in lib.filepath]
    return tuple((blas.select(filepath=scipy_own) if scipy_own else blas).lib_controllers)


@functools.cache
def _all_blas():
    """Every BLAS loaded (custom rules' own numpy code may call numpy's as well)."""
    _numba_blas()
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class _BlasLimit:
    """One BLAS thread while any run steps: a count per library under a lock, so the
    library is set to one thread by the first run and restored by the last. (Each
    library's own setter, not threadpoolctl's ``limit()``: that cost ~80 us a call right
    after other work, 2% of a small run.)"""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[str, list] = {}  # filepath -> [runs, threads before]

    def acquire(self, libs) -> None:
        with self._lock:
            for lib in libs:
                held = self._held.get(lib.filepath)
                if held is None:
                    before = lib.get_num_threads()
                    if before != 1:
                        lib.set_num_threads(1)
                    self._held[lib.filepath] = [1, before]
                else:
                    held[0] += 1

    def release(self, libs) -> None:
        with self._lock:
            for lib in libs:
                held = self._held[lib.filepath]
                held[0] -= 1
                if held[0] == 0:
                    del self._held[lib.filepath]
                    if held[1] != 1:
                        lib.set_num_threads(held[1])


_BLAS = _BlasLimit()


def _cpu_busy_seconds(cpus) -> float | None:
    """Seconds the given cores were busy since boot (all processes), from ``/proc/stat``;
    None where it cannot be read."""
    try:  # one read of one system call: the kernel writes the file in ~15-250 us
        fd = os.open("/proc/stat", os.O_RDONLY)
        try:
            lines = os.read(fd, 1 << 20).split(b"\n")
        finally:
            os.close(fd)
    except OSError:
        return None
    wanted = {b"cpu%d" % c for c in cpus}
    busy = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            ticks = [int(v) for v in fields[1:9]]
            busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    return busy / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class _Load:
    """How many of this process's cores other processes keep busy: busy CPU time of
    those cores less this process's own CPU time, over the time since the last reading
    (at least ``LOAD_WINDOW`` s; a shorter gap keeps the last value). Before the first
    window the 1-minute load average stands in (its share for these cores); where
    ``/proc/stat`` is missing (not Linux) nothing is adapted."""

    def __init__(self, sample=None, clock=time.monotonic):
        self._lock = threading.Lock()
        self._sample = sample or self._read
        self._clock = clock
        self._last = None  # (wall, busy, own) at the last reading
        self._others = None
        self._ncpu = 1

    @staticmethod
    def _read():
        """(cores' busy seconds or None, this process's CPU seconds, its core count)."""
        cpus = _cpus()
        return _cpu_busy_seconds(cpus), time.process_time(), len(cpus)

    def others(self) -> tuple[float, int]:
        """(cores busy with other processes' work, cores this process may use); reads
        the counters at most once per ``LOAD_WINDOW`` (~20 us a reading)."""
        with self._lock:
            now = self._clock()
            last = self._last
            if last is None or now - last[0] >= LOAD_WINDOW:
                busy, own, self._ncpu = self._sample()
                if busy is None:  # no per-core accounting (not Linux): no adapting
                    self._others = 0.0
                elif last is not None:
                    used = (busy - last[1]) - (own - last[2])
                    self._others = max(0.0, used) / (now - last[0])
                self._last = (now, busy, own)
            if self._others is None:  # the first window: the load average, for these cores
                try:
                    share = self._ncpu / (os.cpu_count() or self._ncpu)
                    return os.getloadavg()[0] * share, self._ncpu
                except (OSError, AttributeError):
                    return 0.0, self._ncpu
            return self._others, self._ncpu


_LOAD = _Load()


def usable_threads(threads: int) -> int:
    """The numba threads a run should use out of ``threads``: the cores this process may
    use less those other processes keep busy, rounded, at least 1 (``threads`` itself
    with ``GLOMSIM_ADAPT_THREADS=0``).

    Examples
    --------
    >>> 1 <= usable_threads(2) <= 2
    True
    """
    if threads <= 1 or os.environ.get(_ADAPT_ENV, "1").strip().lower() in (
        "0",
        "false",
        "no",
        "off",
    ):
        return threads
    others, ncpu = _LOAD.others()
    free = math.floor(ncpu - others + 0.5)
    return max(1, min(threads, free))


@contextlib.contextmanager
def stepping(work_per_step: float, *, numpy_blas: bool = False):
    """The thread policy while a run steps: BLAS on one thread (numpy's too with
    ``numpy_blas``, for custom rules), and numba (for the calling Python thread only:
    numba's count is per thread) on one thread when a step does fewer than
    ``SERIAL_BELOW`` floating-point operations, else on :func:`usable_threads`."""
    import numba

    threads = start_threads()
    libs = _all_blas() if numpy_blas else _numba_blas()
    _BLAS.acquire(libs)
    use = 1 if work_per_step < SERIAL_BELOW else usable_threads(threads)
    changed = use != threads
    if changed:
        numba.set_num_threads(use)
    try:
        yield
    finally:
        if changed:  # only when changed: ~25 us a call right after other work
            numba.set_num_threads(threads)
        _BLAS.release(libs)


def kernels_cold(variant: str = "lean") -> bool:
    """Whether the next run has to compile numba's kernels: neither compiled in this
    process nor found in numba's cache (a check of the cache index, no compiling). The
    fused step comes in variants (:data:`glomsim._kernels.step.VARIANTS`): ``variant`` is
    the one the run needs, by default the lean one most runs use (GELU nets, no
    contrastive kernel)."""
    from ._kernels.step import VARIANTS

    for kernel in VARIANTS[variant]:
        if kernel.signatures:
            continue
        cache_file = getattr(getattr(kernel, "_cache", None), "_cache_file", None)
        try:
            index = cache_file._load_index() if cache_file is not None else {}
        except Exception:  # noqa: BLE001 - numba's private cache API: assume cold
            index = {}
        if not index:
            return True
    return False


def say_compiling(stream=None) -> bool:
    """Print "compiling kernels (first run only)" when the next run compiles; returns
    whether it did. Call it before the first run, and start progress bars after."""
    import sys

    if not kernels_cold():
        return False
    print("compiling kernels (first run only; this takes 20-40 seconds)", flush=True,
          file=stream or sys.stderr)  # fmt: skip
    return True
