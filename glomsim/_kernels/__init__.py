"""Numba kernels: numba code only (no xarray, no I/O).

``ids`` (kernel, normalisation and activation ids; parameter slots), ``jit`` (numba's
options and the named fastmath sets), ``args`` (the grouped arguments), the primitives
``nets``, ``attention`` and ``normalise``, and the step (``step``). Nothing here is
compiled at import; the first call compiles (or loads from the cache).
"""
