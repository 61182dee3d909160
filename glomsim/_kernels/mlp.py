"""Fused bias + exact GELU, applied in place after the first matrix product of a net.

GELU is the costliest elementwise step: libm's erf costs 5-15 ns an element and does not
vectorise. In float32 :func:`glomsim._kernels.fused._gelu_rows` uses a branch-free rational
approximation of erf (the minimax odd/even rational on [-4, 4] used by Eigen and XLA; max
error 4e-7, below float32's resolution of the GELU output) that LLVM vectorises: about
0.3 ns an element.
float64 keeps libm's erf so that float64 runs match the reference to 1e-10.
"""

import numpy as np

from .fused import _gelu_rows
from .jit import njit, prange

#: erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4]; outside, erf = +-1 to float32 precision.
ERF_F32 = np.array(
    [
        -1.60960333262415e-02,
        -2.95459980854025e-03,
        -7.34990630326855e-04,
        -5.69250639462346e-05,
        -2.10102402082508e-06,
        2.77068142495902e-08,
        -2.72614225801306e-10,
        -1.42647390514189e-02,
        -7.37332916720468e-03,
        -1.68282697438203e-03,
        -2.13374055278905e-04,
        -1.45660718464996e-05,
        -4.0,
        4.0,
        0.5,
        0.7071067811865476,
        1.0,
        # 17..: exp(x) for x <= 0 as 2^n 2^f (see fused._exp_row)
        1.4426950408889634,
        0.6931471805599453,
        1 / 2,
        1 / 6,
        1 / 24,
        1 / 120,
        1 / 720,
        -87.0,
    ],
    dtype=np.float32,
)


@njit(parallel=True)
def bias_gelu(h, b, fast, c, gc):
    """h[i, k] <- gelu(h[i, k] + b[k]) in place, rows in parallel; ``fast`` selects the
    vectorised rational erf (float32, constants ``c`` = ERF_F32), else libm's erf with
    ``gc`` = [0.5, 1/sqrt(2), 1] in h's dtype."""
    for i in prange(h.shape[0]):
        _gelu_rows(h[i : i + 1], b, fast, c, gc)
