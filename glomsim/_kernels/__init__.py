"""Numba kernels: numba code only (no xarray, no I/O).

Nothing here is compiled at import; the first call compiles (or loads from the cache).
"""
