"""Fused bias + exact GELU, applied in place after the first matrix product of a net."""

import math

from .jit import njit, prange


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
