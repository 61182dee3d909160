"""The one place that sets numba's options: nopython, nogil, caching, and the named
fastmath flag sets that kernels choose from (fastmath is off unless a kernel names one).

Caching is on when numba's cache folder is writable and ``GLOMSIM_NUMBA_CACHE`` is not
``0``; a read-only install or a failed probe falls back to no cache instead of failing.
OpenMP's waiting policy is not set here: :mod:`glomsim.runtime` sets it just before
numba's threading layer first starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba

__all__ = ["njit", "prange", "CACHE", "EXACT", "FMA", "REASSOC"]

_CACHE_ENV = "GLOMSIM_NUMBA_CACHE"

#: No fastmath: every operation rounds as written (the default).
EXACT = frozenset()
#: Fused multiply-adds only: polynomials round once per term instead of twice, and run
#: faster (the float32 erf's cost 0.26 instead of 0.38 ns an element).
FMA = frozenset({"contract"})
#: Multiply-adds and reassociation: sums over features and neighbours vectorise.
REASSOC = frozenset({"reassoc", "contract"})


def _cache_writable() -> bool:
    if os.environ.get(_CACHE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    target = Path(cache_dir) if cache_dir else Path(__file__).parent / "__pycache__"
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


CACHE = _cache_writable()


def njit(*args, parallel=False, fastmath: frozenset = EXACT, **kwargs):
    """``numba.njit`` with this project's defaults (nogil, cache where writable);
    ``fastmath`` is one of the named sets above."""
    if fastmath not in (EXACT, FMA, REASSOC):
        raise ValueError(f"fastmath={fastmath!r}: use one of jit's named sets")
    opts = dict(nogil=True, cache=CACHE, parallel=parallel, error_model="numpy")
    opts.update(kwargs, fastmath=set(fastmath))  # numba takes a set, not a frozenset
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


prange = numba.prange
