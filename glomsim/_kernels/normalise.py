"""The normalisation primitive: one row onto the unit sphere (l2) or to zero mean and unit
variance (layernorm, no affine parameters), in place. The fused step runs it on each new
row; the custom-rule path on what the rule returns. Its readable twin is
:func:`glomsim.reference.normalize`."""

import math

from .ids import L2, LAYERNORM
from .jit import njit, prange


# inlined into the step, where its code was: no function of its own to compile
@njit(inline="always")
def normalise_row(orow, norm_id, eps):
    """orow <- its normalisation ``norm_id`` (:mod:`.ids`; none leaves it); ``eps`` is
    layernorm's, in the row's dtype. A zero row stays zero under l2."""
    D = orow.shape[0]
    zero = eps - eps
    if norm_id == L2:
        s = zero
        for k in range(D):
            s += orow[k] * orow[k]
        nrm = math.sqrt(s)
        for k in range(D):
            orow[k] = orow[k] / nrm if nrm > 0 else zero
    elif norm_id == LAYERNORM:
        mean = zero
        for k in range(D):
            mean += orow[k]
        mean = mean / D
        var = zero
        for k in range(D):
            diff = orow[k] - mean
            var += diff * diff
        var = var / D
        den = math.sqrt(var + eps)
        for k in range(D):
            orow[k] = (orow[k] - mean) / den


@njit(parallel=True)
def normalise_rows(x, norm):
    """Every row of ``x`` (N, D) normalised in place, rows in parallel (``norm``: a
    :class:`.args.Norm`)."""
    norm_id, eps = norm
    for i in prange(x.shape[0]):
        normalise_row(x[i], norm_id, eps)
