"""``glomsim info``: versions, threads, BLAS and the numba cache."""

from __future__ import annotations

import json

#: Optional or heavy packages whose versions ``glomsim info`` reports (None: not installed).
PACKAGES = ("xarray", "zarr", "dask", "scipy", "torch", "glom_pytorch")


def register(subparsers):
    """Add the ``info`` subcommand to an argparse ``subparsers`` object."""
    i = subparsers.add_parser("info", help="versions, threads and cache")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)
    return i


def _versions() -> dict:
    import platform

    import numba
    import numpy as np

    from .._kernels.jit import CACHE
    from .._version import __version__

    info = {
        "glomsim": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "numba_cache": CACHE,
    }
    from threadpoolctl import threadpool_info

    info["blas"] = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for p in threadpool_info()
    ]
    for mod in PACKAGES:
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "installed")
        except ImportError:
            info[mod] = None
    return info


def cmd_info(args):
    info = _versions()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>22}: {v}")
    return 0
