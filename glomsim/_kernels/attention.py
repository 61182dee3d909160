"""Attention kernels: local attention over a CSR neighbour list, and the row softmax of
the dense (global) path. Kernel ids: 0 dot, 1 cosine, 2 gaussian, 3 bounded, 4 glom_pytorch.

Scalars arrive in ``params`` (an array of the state's dtype) so that float32 runs stay in
float32: [beta, bounded threshold, 1/sqrt(D), glom-pytorch self score, 1e-12].
"""

import math

import numpy as np

from .fused import _local_row
from .jit import njit, prange

DOT, COSINE, GAUSSIAN, BOUNDED, GLOM_PYTORCH = 0, 1, 2, 3, 4


@njit(parallel=True)
def row_norms(x, out):
    n, d = x.shape
    for i in prange(n):
        s = x[i, 0] - x[i, 0]
        for k in range(d):
            s += x[i, k] * x[i, k]
        out[i] = math.sqrt(s)


@njit(parallel=True)
def local_attention(x, indptr, indices, kernel, self_excluded, params, norms, scores, out):
    """out[i] = sum_j A[i, j] x[j] over j in indices[indptr[i]:indptr[i+1]], columns in
    parallel (the row itself is :func:`glomsim._kernels.fused._local_row`).

    For glom_pytorch with ``self_excluded`` the neighbour list still holds i, scored
    with params[3]; for the other kernels the list already leaves i out. A column with
    no attended neighbour gets its own embedding. ``scores`` is scratch of length nnz
    (each column writes only its own segment, so threads never share a slot).
    """
    for i in prange(x.shape[0]):
        _local_row(
            x, i, indptr, indices, kernel, self_excluded, params, norms,
            scores[indptr[i] : indptr[i + 1]], out[i],
        )  # fmt: skip


@njit(parallel=True)
def softmax_rows(s, row0, kernel, self_excluded, params, norms, sqnorms, lonely):
    """Turn a block of raw Gram scores s[r, j] = x[row0 + r] . key[j] into attention
    weights in place (global neighbourhood). ``lonely[r]`` is set when the row attends
    to no one (only possible with one column and self excluded)."""
    nr, n = s.shape
    beta = params[0]
    inv_sqrt_d = params[2]
    self_score = params[3]
    zero = beta - beta
    for r in prange(nr):
        i = row0 + r
        m = -np.inf
        for j in range(n):
            g = s[r, j]
            if kernel == DOT:
                score = beta * g
            elif kernel == COSINE:
                den = norms[i] * norms[j]
                score = beta * (g / den) if den > 0 else zero
            elif kernel == GAUSSIAN:
                # |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 g; the |x_i|^2 term cancels in softmax
                score = -beta * (sqnorms[j] - 2 * g)
            else:  # GLOM_PYTORCH: s already holds x_i . key_j
                score = beta * g * inv_sqrt_d
            if j == i and self_excluded:
                if kernel == GLOM_PYTORCH:
                    score = self_score
                else:
                    score = -np.inf
            s[r, j] = score
            if score > m:
                m = score
        if m == -np.inf:
            lonely[r] = True
            for j in range(n):
                s[r, j] = zero
            continue
        lonely[r] = False
        total = zero
        for j in range(n):
            e = math.exp(s[r, j] - m)
            s[r, j] = e
            total += e
        for j in range(n):
            s[r, j] = s[r, j] / total
