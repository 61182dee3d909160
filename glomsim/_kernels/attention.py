"""Attention primitives: the norms of a block of rows (and, for global attention, those
rows packed in panels), one column's attention over its CSR neighbours (O(k D)), and a
block of rows of global attention: two packed products (:mod:`.gemm`) around a
vectorised softmax. The fused step (:mod:`.step`) and the custom-rule
path both run these; their readable twin is :func:`glomsim.reference.attention`.

Kernel ids and the slots of the parameter row ``p`` come from :mod:`.ids`. Adding a
kernel means one id there, one branch in :func:`local_row` (and in :func:`dense_block`
if it has a dense path), and its readable version in :mod:`glomsim.reference`.

The contrastive kernel (:func:`glomsim.reference.contrastive_matrix`) writes each row's
weights with attraction (P_i, >= 0) and repulsion (Q_i, <= 0) told apart by their sign,
so that both sums are one pass over the neighbours (:func:`contrastive_row` on the
dense path, :func:`contrastive_local` on CSR lists).
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic

from .gemm import gemm_packed
from .ids import (
    BETA,
    BOUND,
    BOUNDED,
    CONTRASTIVE,
    COSINE,
    DOT,
    GAUSSIAN,
    GLOM_PYTORCH,
    INF,
    INV_SQRT_D,
    ONE,
    REPULSION,
    SELF_SCORE,
    SHIFT_MAX,
    THRESHOLD,
    TINY,
    TWO,
)
from .jit import REASSOC, njit, variant

#: This module's kernels as written handle every kernel id; their lean variants
#: (:data:`local_row_lean`, :data:`dense_block_lean`) leave the contrastive kernel out,
#: so runs without it never compile its code.
FULL = True


@njit(fastmath=REASSOC)
def key_rows(x, r0, r1, normalise_keys, tiny, norms, sqnorms, inv_norms):
    """Norms and squared norms of rows r0..r1 of ``x`` and, with ``normalise_keys`` (the
    glom_pytorch kernel, whose keys are x_j / max(|x_j|, tiny)), those scales in
    ``inv_norms``. Dense attention multiplies by x itself and scales column j of the
    scores by inv_norms[j] in the softmax pass: transposing normalised keys had cost
    0.85 ns an entry, more than BLAS gains from a plain (D, N) operand."""
    D = x.shape[1]
    one = tiny / tiny
    for i in range(r0, r1):
        s = tiny - tiny
        for k in range(D):
            s += x[i, k] * x[i, k]
        nrm = math.sqrt(s)
        norms[i] = nrm
        sqnorms[i] = s
        if normalise_keys:
            inv_norms[i] = one / (nrm if nrm > tiny else tiny)


@njit
def pack_rows(x, r0, r1, keys, values):
    """Rows r0..r1 of ``x`` (N, D) into the panels dense attention multiplies by
    (:mod:`.gemm`): ``keys`` (P_N, D, W) holds x^T (row j of x is column j % W of panel
    j // W) and ``values`` (P_D, N, W) holds x (columns c of x in panel c // W). Entries
    past N or D are never written (zeros from the buffers' allocation)."""
    D = x.shape[1]
    W = keys.shape[2]
    for j in range(r0, r1):
        p = j // W
        jj = j - p * W
        for k in range(D):
            keys[p, k, jj] = x[j, k]
        for q in range(values.shape[0]):
            c0 = q * W
            for c in range(min(W, D - c0)):
                values[q, j, c] = x[j, c0 + c]


@njit(fastmath=REASSOC, internal=True)
def local_rows(x, r0, att, csr, kernel, self_excluded, p, norms, scores, maths):
    """Local attention of rows r0 .. r0 + len(att) of x into ``att``: :func:`local_row`
    for each, inlined here (``csr``: (indptr, indices); ``maths``: (fast, ec)). A call
    per row costs its own overhead: a pared-down row of 13 neighbours at dim 64 took 215
    ns called per row against 159 ns in the loop of one function. With the kernel chosen
    once per row and four neighbours a pass, a row of 13 takes 180-184 ns at dim 64 and
    213-233 ns at dim 128 (239 and 323 ns before these changes); 170-177 and 189-195 ns
    with one division a row."""
    indptr, indices = csr
    fast, ec = maths
    for r in range(att.shape[0]):
        local_row(x, r0 + r, indptr, indices, kernel, self_excluded, p, norms, scores, att[r],
                  fast, ec)  # fmt: skip


@njit(fastmath=REASSOC, inline="always")
def local_row(x, i, indptr, indices, kernel, self_excluded, p, norms, scores, out_row, fast, ec):  # noqa: C901
    """out_row <- the attention of column i: sum_j A[i, j] x[j] over j in
    indices[indptr[i]:indptr[i+1]]. For glom_pytorch with ``self_excluded`` the list
    still holds i, scored with the self-score slot; for the other kernels the list
    already leaves i out. A column with no attended neighbour gets its own embedding.
    ``scores`` is scratch of at least the list's length. The softmax's exponentials are
    :func:`exp_nonpositive`'s (``fast``: float32's polynomial with coefficients ``ec``,
    as on the dense path; libm's exp took ~40% of a row of 13 neighbours at dim 64)."""
    D = x.shape[1]
    beta, bound, inv_sqrt_d = p[BETA], p[BOUND], p[INV_SQRT_D]
    self_score, tiny = p[SELF_SCORE], p[TINY]
    start = indptr[i]
    end = indptr[i + 1]
    zero = beta - beta
    for k in range(D):
        out_row[k] = zero
    if end == start:
        for k in range(D):
            out_row[k] = x[i, k]
        return
    if FULL and kernel == CONTRASTIVE:
        contrastive_local(x, i, indices[start:end], p, norms, scores, out_row)
        return
    if kernel == BOUNDED:
        count = 0
        for q in range(start, end):
            j = indices[q]
            s = zero
            for k in range(D):
                diff = x[i, k] - x[j, k]
                s += diff * diff
            if math.sqrt(s) <= bound:
                count += 1
                for k in range(D):
                    out_row[k] += x[j, k]
        if count == 0:
            for k in range(D):
                out_row[k] = x[i, k]
        else:
            for k in range(D):
                out_row[k] = out_row[k] / count
        return
    n = end - start
    # the kernel chosen once per row, outside the loops over neighbours (each score is
    # the same arithmetic as when it was chosen per neighbour)
    if kernel == GAUSSIAN:
        for q in range(start, end):
            j = indices[q]
            s = zero
            for k in range(D):
                diff = x[i, k] - x[j, k]
                s += diff * diff
            scores[q - start] = -beta * s
    else:
        # four neighbours a pass over x_i (its loads shared, four sums at once)
        q = start
        while q + 4 <= end:
            j0, j1, j2, j3 = indices[q], indices[q + 1], indices[q + 2], indices[q + 3]
            s0 = zero
            s1 = zero
            s2 = zero
            s3 = zero
            for k in range(D):
                xik = x[i, k]
                s0 += xik * x[j0, k]
                s1 += xik * x[j1, k]
                s2 += xik * x[j2, k]
                s3 += xik * x[j3, k]
            scores[q - start] = s0
            scores[q - start + 1] = s1
            scores[q - start + 2] = s2
            scores[q - start + 3] = s3
            q += 4
        while q < end:
            j = indices[q]
            s = zero
            for k in range(D):
                s += x[i, k] * x[j, k]
            scores[q - start] = s
            q += 1
        if kernel == DOT:
            for q in range(n):
                scores[q] = beta * scores[q]
        elif kernel == COSINE:
            for q in range(n):
                den = norms[i] * norms[indices[start + q]]
                scores[q] = beta * (scores[q] / den) if den > 0 else zero
        else:
            for q in range(n):
                j = indices[start + q]
                if self_excluded and j == i:
                    scores[q] = self_score
                else:
                    scores[q] = beta * (scores[q] / max(norms[j], tiny)) * inv_sqrt_d
    # the running maximum starts from a score, not -inf: a float64 -inf made the softmax
    # and the weighted sum run in float64 (2x slower for float32 states)
    m = scores[0]
    for q in range(1, end - start):
        m = scores[q] if scores[q] > m else m
    total = zero
    for q in range(end - start):
        e = exp_nonpositive(scores[q] - m, zero, fast, ec)
        scores[q] = e
        total += e
    # one division a row, as on the dense path: a division a neighbour had cost 10% of a
    # row of 13 at dim 128 in float32 (213-226 against 189-195 ns), 16% in float64
    inv = p[ONE] / total
    q = start
    while q + 4 <= end:  # four neighbours a pass over out_row
        j0, j1, j2, j3 = indices[q], indices[q + 1], indices[q + 2], indices[q + 3]
        a0 = scores[q - start] * inv
        a1 = scores[q - start + 1] * inv
        a2 = scores[q - start + 2] * inv
        a3 = scores[q - start + 3] * inv
        for k in range(D):
            out_row[k] += a0 * x[j0, k] + a1 * x[j1, k] + a2 * x[j2, k] + a3 * x[j3, k]
        q += 4
    while q < end:
        j = indices[q]
        a = scores[q - start] * inv
        for k in range(D):
            out_row[k] += a * x[j, k]
        q += 1


@njit(fastmath=REASSOC)
def contrastive_local(x, i, nbrs, p, norms, scores, out_row):
    """out_row <- the contrastive attention of column i over its (non-empty) neighbour
    list ``nbrs``: the softmax of beta c_ij over P_i = {c_ij >= threshold}, x_i where P_i
    is empty, minus repulsion / |N_i| sum over Q_i of (threshold - c_ij) x_j."""
    D = x.shape[1]
    n = nbrs.shape[0]
    beta, thr, rep, one = p[BETA], p[THRESHOLD], p[REPULSION], p[ONE]
    zero = beta - beta
    mx = -p[INF]
    for q in range(n):
        j = nbrs[q]
        s = zero
        for k in range(D):
            s += x[i, k] * x[j, k]
        den = norms[i] * norms[j]
        c = s / den if den > 0 else zero
        c = one if c > one else (-one if c < -one else c)  # as the reference: |c| <= 1
        scores[q] = c
        if c >= thr and beta * c > mx:
            mx = beta * c
    size = zero  # |N_i| in x's dtype: a float32 divided by an int is a float64
    for _ in range(n):
        size += p[ONE]
    scale_q = rep / size
    total = zero
    for q in range(n):
        c = scores[q]
        if c >= thr:
            e = math.exp(beta * c - mx)
            scores[q] = e
            total += e
        else:
            scores[q] = scale_q * (c - thr)  # < 0 unless repulsion is 0
    attract = total > 0
    for k in range(D):
        out_row[k] = zero if attract else x[i, k]
    inv = p[ONE] / total if attract else zero
    for q in range(n):
        j = nbrs[q]
        a = scores[q]
        a = a * inv if a > 0 else a
        for k in range(D):
            out_row[k] += a * x[j, k]


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bits are the low 32 bits of the integer ``bits`` (a
    truncation and a bitcast, both vectorisable; numba widens int32 sums to int64)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = args[0]
        if bits.bitwidth > 32:
            low = builder.trunc(low, context.get_value_type(types.int32))
        return builder.bitcast(low, context.get_value_type(types.float32))

    return types.float32(bits), codegen


@njit(fastmath=REASSOC, inline="always")
def exp_row(row, scale, cols, by_cols, shift, self_j, self_value, fast, ec):
    """row[j] <- exp(scale c_j row[j] - shift), c_j = cols[j] if ``by_cols`` else 1, and
    exp(self_value) at j == self_j (-1: none); returns the sum. Every argument of exp is
    <= 0 up to rounding.

    One branch-free pass that LLVM vectorises. ``fast`` (float32): 2^n 2^f with
    n = round(x log2 e), |f| <= 1/2, 2^f by its Taylor series to f^6 (relative error
    < 4e-6 near underflow, ~1e-7 elsewhere) and 2^n built from its exponent bits; below
    -87 the result is 0. Otherwise libm's exp (float64 runs match the reference to 1e-10).
    """
    n = row.shape[0]
    zero = shift - shift
    total = zero
    one = ec[16]
    if fast:
        log2e, ln2, k2, k3, k4, k5, k6 = ec[17], ec[18], ec[19], ec[20], ec[21], ec[22], ec[23]
        xmin, ehalf, eone = ec[24], ec[14], one
        for jj in range(n):
            cj = cols[jj] if by_cols else one
            x0 = self_value if jj == self_j else scale * cj * row[jj] - shift
            xx = x0 if x0 > xmin else xmin
            tt = xx * log2e
            nn = np.floor(tt + ehalf)  # float32; math.floor gives an int64 and float64 after
            fr = (tt - nn) * ln2
            pw = eone + fr * (eone + fr * (k2 + fr * (k3 + fr * (k4 + fr * (k5 + fr * k6)))))
            ee = pw * _f32_from_bits((np.int32(nn) + np.int32(127)) << np.int32(23))
            ee = ee if x0 > xmin else zero
            row[jj] = ee
            total += ee
    else:
        for jj in range(n):
            cj = cols[jj] if by_cols else one
            x0 = self_value if jj == self_j else scale * cj * row[jj] - shift
            ee = math.exp(x0)
            row[jj] = ee
            total += ee
    return total


@njit(fastmath=REASSOC, inline="always")
def exp_nonpositive(x0, zero, fast, ec):
    """exp(min(x0, 0)) (``zero`` of x0's dtype): with ``fast`` (float32) by
    :func:`exp_row`'s 2^n 2^f (0 below -87), else libm's exp; a scalar that a
    branch-free loop around it vectorises."""
    xx = x0 if x0 < zero else zero
    if not fast:
        return math.exp(xx)
    log2e, ln2, k2, k3, k4, k5, k6 = ec[17], ec[18], ec[19], ec[20], ec[21], ec[22], ec[23]
    xmin, half, one = ec[24], ec[14], ec[16]
    xc = xx if xx > xmin else xmin
    tt = xc * log2e
    nn = np.floor(tt + half)
    fr = (tt - nn) * ln2
    pw = one + fr * (one + fr * (k2 + fr * (k3 + fr * (k4 + fr * (k5 + fr * k6)))))
    ee = pw * _f32_from_bits((np.int32(nn) + np.int32(127)) << np.int32(23))
    return ee if xx > xmin else zero


@njit(fastmath=REASSOC, inline="always")
def contrastive_row(row, i, norms, self_j, p, fast, ec):
    """row <- column i's contrastive weights over all columns (dense path), given
    row[j] = x_i . x_j; ``self_j`` is i when self is excluded, else -1. Where P_i is empty
    row[i] gets 1 more, so ``row @ x`` is the whole contribution."""
    n = row.shape[0]
    beta, thr, rep, one = p[BETA], p[THRESHOLD], p[REPULSION], p[ONE]
    zero = beta - beta
    ni = norms[i]
    mx = -p[INF]
    for j in range(n):
        den = ni * norms[j]
        c = row[j] / den if den > 0 else zero
        c = one if c > one else (-one if c < -one else c)  # as the reference: |c| <= 1
        row[j] = c
        sc = beta * c
        mx = sc if (c >= thr and j != self_j and sc > mx) else mx
    size = zero
    for _ in range(n):
        size += one
    if self_j >= 0:
        size -= one
    scale_q = rep / size if size > 0 else zero
    total = zero
    for j in range(n):
        c = row[j]
        attract = c >= thr and j != self_j
        e = exp_nonpositive(beta * c - mx, zero, fast, ec)
        rq = scale_q * (c - thr) if j != self_j else zero
        row[j] = e if attract else rq
        total += e if attract else zero
    if total > 0:
        inv = one / total
        for j in range(n):
            v = row[j]
            row[j] = v * inv if v > 0 else v
    else:  # P_i is empty: x_i itself, and the repulsion as ever
        row[i] += one


@njit(fastmath=REASSOC)
def dense_block(x, r0, kernel, self_excluded, p, stats, packed, att, fast, ec, s):  # noqa: C901
    """Global softmax attention of rows r0.. of x: S = x_block x^T, softmax, S x.

    ``stats``: the rows' (norms, squared norms, key scales); ``packed``: (keys, values).
    Both products run :func:`.gemm.gemm_packed` against x packed once per step by
    :func:`pack_rows` (``keys``: x^T, ``values``: x), so ``s`` (m, >= N) and ``att``
    (m, >= D) are as wide as whole panels: on a Zen 5 core a 64-row block of a 64 x 64
    level took 4.2 us (plus 1.3 us packing the level) against 10.8 us through numba's
    ``np.dot`` (OpenBLAS's 256-bit kernels), a 128-row block of a 256 x 256 level 120
    against 281 us (plus 22 us per level).

    The kernel is chosen once per row, outside the loop over columns, so each loop is a
    plain vectorisable pass (glom_pytorch's unit keys scale column j by inv_norms[j] there).
    The dot and glom_pytorch kernels (and cosine) shift each row by a bound on its scores
    instead of their maximum (Cauchy-Schwarz: |beta| |x_i| max|x_j|, |beta| |x_i| / sqrt(D)
    with unit keys, |beta|), so that scaling, the self entry and exp are one pass; when
    that bound exceeds the shift-max slot (``ids.BOUND_SHIFT_MAX``) (and for the gaussian kernel) the row's maximum
    is taken instead. The shift cancels in the softmax.
    """
    norms, sqnorms, inv_norms = stats  # of every row of x (:func:`key_rows`)
    keys, values = packed
    m = att.shape[0]
    N = x.shape[0]
    beta, inv_sqrt_d, self_score = p[BETA], p[INV_SQRT_D], p[SELF_SCORE]
    one, two, limit, inf = p[ONE], p[TWO], p[SHIFT_MAX], p[INF]  # x's dtype: zero + 1 is a float64
    zero = beta - beta
    gemm_packed(x[r0 : r0 + m], keys, s)  # s: (m, >= N) scratch, x_block x^T
    maxnorm = zero
    if kernel == DOT:
        for j in range(N):
            maxnorm = norms[j] if norms[j] > maxnorm else maxnorm
    by_cols = kernel == GLOM_PYTORCH
    lonely = False
    for r in range(m):
        i = r0 + r
        row = s[r, :N]
        if FULL and kernel == CONTRASTIVE:  # its own weights; rows need not sum to 1
            contrastive_row(row, i, norms, i if self_excluded else -1, p, fast, ec)
            continue
        scale = one
        bound = inf  # no bound: take the maximum
        if kernel == DOT:
            scale = beta
            bound = abs(beta) * norms[i] * maxnorm
        elif kernel == GLOM_PYTORCH:
            scale = beta * inv_sqrt_d
            bound = abs(scale) * norms[i]
        elif kernel == COSINE:
            ni = norms[i]
            for j in range(N):
                den = ni * norms[j]
                row[j] = beta * (row[j] / den) if den > 0 else zero
            bound = abs(beta)
        else:  # gaussian: |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 g; |x_i|^2 cancels
            for j in range(N):
                row[j] = -beta * (sqnorms[j] - two * row[j])
        own = self_score if kernel == GLOM_PYTORCH else -inf
        if bound <= limit:
            # bound >= 0 >= the glom_pytorch self score
            total = exp_row(row, scale, inv_norms, by_cols, bound,
                             i if self_excluded else -1, own - bound, fast, ec)  # fmt: skip
        else:
            if by_cols:
                for j in range(N):
                    row[j] = scale * inv_norms[j] * row[j]
            elif scale != one:
                for j in range(N):
                    row[j] = scale * row[j]
            if self_excluded:
                row[i] = own
            mx = row[0]  # not -inf, a float64: see local_row
            for j in range(1, N):
                mx = row[j] if row[j] > mx else mx
            if mx == -inf:  # every entry excluded: a column alone keeps its state
                for j in range(N):
                    row[j] = zero
                lonely = True
                continue
            total = exp_row(row, one, inv_norms, False, mx, -1, zero, fast, ec)
        if total == 0:  # every entry excluded (the bound's largest term is >= e^-60)
            lonely = True
            continue
        inv = one / total
        for j in range(N):
            row[j] = row[j] * inv
    gemm_packed(s, values, att)  # att[:, :D] = s[:, :N] x
    if lonely:
        for r in range(m):
            t = zero
            for j in range(N):
                t += s[r, j]
            if t == 0:
                for k in range(x.shape[1]):
                    att[r, k] = x[r0 + r, k]


#: The lean variants: every kernel but the contrastive one (see :data:`FULL`).
local_row_lean = variant(local_row, "_lean", FULL=False)
local_rows_lean = variant(local_rows, "_lean", local_row=local_row_lean)
dense_block_lean = variant(dense_block, "_lean", FULL=False)
