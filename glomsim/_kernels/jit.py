"""The one place that sets numba's options: nopython, nogil, caching, and fastmath off
(a few kernels opt into reassociation or fused multiply-adds, each saying why).

Caching is on when numba's cache folder is writable and ``GLOMSIM_NUMBA_CACHE`` is not
``0``; a read-only install or a failed probe falls back to no cache instead of failing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba  # OpenMP's waiting policy is set earlier, in glomsim/__init__.py

_CACHE_ENV = "GLOMSIM_NUMBA_CACHE"


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


def njit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with this project's defaults (nogil, cache where writable)."""
    opts = dict(nogil=True, cache=CACHE, parallel=parallel, error_model="numpy")
    opts.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


prange = numba.prange
