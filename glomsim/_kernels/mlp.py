"""Fused bias + exact GELU, applied in place after the first matrix product of a net.

GELU is the costliest elementwise step: libm's erf costs 5-15 ns an element and does not
vectorise. In float32 ``bias_gelu_f32`` uses a branch-free rational approximation of erf
(the minimax odd/even rational on [-4, 4] used by Eigen and XLA; max error 4e-7, below
float32's resolution of the GELU output) that LLVM vectorises: about 0.3 ns an element.
float64 keeps libm's erf so that float64 runs match the reference to 1e-10.
"""

import math

import numpy as np

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
        # 17..: exp(x) for x <= 0 as 2^n 2^f (see fused._exp_neg_f32)
        1.4426950408889634,
        0.6931471805599453,
        1 / 2,
        1 / 6,
        1 / 24,
        1 / 120,
        1 / 720,
        -126.0,
        2.0**-1,
        2.0**-2,
        2.0**-4,
        2.0**-8,
        2.0**-16,
        2.0**-32,
        2.0**-64,
        0.0,
        -87.0,
    ],
    dtype=np.float32,
)


@njit(parallel=True)
def bias_gelu(h, b, consts):
    """h[i, k] <- gelu(h[i, k] + b[k]) with the exact (erf) GELU.

    ``consts`` = [0.5, 1/sqrt(2), 1] in h's dtype, so float32 stays float32.
    """
    n, m = h.shape
    half = consts[0]
    inv_sqrt2 = consts[1]
    one = consts[2]
    for i in prange(n):
        for k in range(m):
            z = h[i, k] + b[k]
            h[i, k] = half * z * (one + math.erf(z * inv_sqrt2))


@njit(parallel=True)
def bias_gelu_f32(h, b, c):
    """float32 h[i, k] <- gelu(h[i, k] + b[k]), erf by the rational ``ERF_F32`` (in ``c``)."""
    n, m = h.shape
    a1, a3, a5, a7, a9, a11, a13 = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    b0, b2, b4, b6, b8 = c[7], c[8], c[9], c[10], c[11]
    lo, hi, half, inv_sqrt2, one = c[12], c[13], c[14], c[15], c[16]
    for i in prange(n):
        row = h[i]
        for k in range(m):
            z = row[k] + b[k]
            x = z * inv_sqrt2
            x = hi if x > hi else x
            x = lo if x < lo else x
            x2 = x * x
            p = ((((((a13 * x2 + a11) * x2 + a9) * x2 + a7) * x2 + a5) * x2 + a3) * x2 + a1) * x
            q = (((b8 * x2 + b6) * x2 + b4) * x2 + b2) * x2 + b0
            row[k] = half * z * (one + p / q)
