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
  over numba's threads instead. The limit is counted: concurrent runs on several Python
  threads lower it once and the last one to finish restores it.
- Tiny steps on one numba thread: waking threads costs more than the work.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

__all__ = [
    "start_threads",
    "max_threads",
    "stepping",
    "SERIAL_BELOW",
    "kernels_cold",
    "say_compiling",
]

#: Steps of fewer floating-point operations run on one numba thread.
SERIAL_BELOW = 2_000_000

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


@contextlib.contextmanager
def stepping(work_per_step: float, *, numpy_blas: bool = False):
    """The thread policy while a run steps: BLAS on one thread (numpy's too with
    ``numpy_blas``, for custom rules), and numba on one thread (for the calling Python
    thread only: numba's count is per thread) when a step does fewer than
    ``SERIAL_BELOW`` floating-point operations."""
    import numba

    threads = start_threads()
    libs = _all_blas() if numpy_blas else _numba_blas()
    _BLAS.acquire(libs)
    serial = work_per_step < SERIAL_BELOW and threads > 1
    if serial:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        if serial:  # only when changed: ~25 us a call right after other work
            numba.set_num_threads(threads)
        _BLAS.release(libs)


def kernels_cold() -> bool:
    """Whether the next run has to compile numba's kernels: neither compiled in this
    process nor found in numba's cache (a check of the cache index, no compiling)."""
    from ._kernels.step import run_steps, step_all

    for kernel in (run_steps, step_all):
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
    print("compiling kernels (first run only; this takes a minute or two)", flush=True,
          file=stream or sys.stderr)  # fmt: skip
    return True
