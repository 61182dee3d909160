"""``glomsim info``: versions, threads, BLAS and the numba cache."""

from __future__ import annotations

import json

#: Optional or heavy packages whose versions ``glomsim info`` reports (None: not
#: installed), by import name, with their distribution names: versions come from the
#: installed metadata, so nothing is imported (torch alone takes seconds).
PACKAGES = {
    "xarray": "xarray",
    "zarr": "zarr",
    "dask": "dask",
    "scipy": "scipy",
    "torch": "torch",
    "glom_pytorch": "glom-pytorch",
}


def register(subparsers):
    """Add the ``info`` subcommand to an argparse ``subparsers`` object."""
    i = subparsers.add_parser("info", help="versions, threads and cache")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)
    return i


def package_version(module: str, dist: str) -> str | None:
    """The installed version of distribution ``dist`` (import name ``module``), or None
    when it is not installed.

    Examples
    --------
    >>> import numpy
    >>> package_version("numpy", "numpy") == numpy.__version__
    True
    >>> package_version("no_such_module", "no-such-dist") is None
    True
    """
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        return version(dist)
    except PackageNotFoundError:
        pass
    try:  # importable without metadata (a source tree on the path): its own attribute
        if find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    m = __import__(module)
    return str(getattr(m, "__version__", "unknown"))


def cache_dir() -> str | None:
    """The folder numba's cache of glomsim's kernels lives in (None: caching is off), as
    :mod:`glomsim._kernels.jit` chose it: ``NUMBA_CACHE_DIR``, ``GLOMSIM_CACHE_DIR``,
    ``glomsim/_kernels/__pycache__`` when writable, else the per-user folder
    (``$XDG_CACHE_HOME/glomsim/numba`` or ``~/.cache/glomsim/numba``)."""
    from .._kernels import jit

    return str(jit.CACHE_DIR) if jit.CACHE else None


def _versions() -> dict:
    import platform

    import numba
    import numpy as np

    from .._kernels.jit import CACHE, VECTOR_BITS
    from .._version import __version__

    info = {
        "glomsim": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "numba_cache": CACHE,
        "numba_cache_dir": cache_dir(),
        "vector_bits": VECTOR_BITS,  # the nets' packed products (GLOMSIM_VECTOR_BITS)
    }
    from threadpoolctl import threadpool_info

    info["blas"] = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for p in threadpool_info()
    ]
    for module, dist in PACKAGES.items():
        info[module] = package_version(module, dist)
    return info


def cmd_info(args):
    info = _versions()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>22}: {v}")
    return 0
