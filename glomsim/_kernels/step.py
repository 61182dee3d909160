"""Combination of the four contributions and normalisation, fused per level.

Normalisation ids: 0 none, 1 l2, 2 layernorm.
"""

import math

from .jit import njit, prange

NONE, L2, LAYERNORM = 0, 1, 2


@njit(parallel=True)
def combine(out, prev, bu, bu_b, td, td_b, att, w, norm, ln_eps):
    """out = (w0 (bu + bu_b) + w1 (td + td_b) + w2 prev + w3 att) / sum(w > 0), then
    normalised. ``w`` (4,) holds the weights in the state's dtype; a contribution whose
    weight is 0 is never read (its array may be any placeholder)."""
    n, d = out.shape
    zero = w[0] - w[0]
    total = zero
    for c in range(4):
        if w[c] > 0:
            total += w[c]
    for i in prange(n):
        for k in range(d):
            acc = zero
            if w[0] > 0:
                acc += w[0] * (bu[i, k] + bu_b[k])
            if w[1] > 0:
                acc += w[1] * (td[i, k] + td_b[k])
            if w[2] > 0:
                acc += w[2] * prev[i, k]
            if w[3] > 0:
                acc += w[3] * att[i, k]
            out[i, k] = acc / total
        if norm == L2:
            s = zero
            for k in range(d):
                s += out[i, k] * out[i, k]
            nrm = math.sqrt(s)
            if nrm > 0:
                for k in range(d):
                    out[i, k] = out[i, k] / nrm
            else:
                for k in range(d):
                    out[i, k] = zero
        elif norm == LAYERNORM:
            mean = zero
            for k in range(d):
                mean += out[i, k]
            mean = mean / d
            var = zero
            for k in range(d):
                diff = out[i, k] - mean
                var += diff * diff
            var = var / d
            den = math.sqrt(var + ln_eps)
            for k in range(d):
                out[i, k] = (out[i, k] - mean) / den
