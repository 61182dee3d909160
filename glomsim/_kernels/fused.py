"""One whole step of the built-in rule in a single parallel region.

Work is split into tasks of (level, block of rows). Each task runs both nets of its rows as
matrix products (``np.dot`` on single-threaded BLAS), GELU, attention and the combination
and normalisation, and writes its rows of E[t]. Mixing BLAS's own threads with numba's
made a step up to 100x slower on 2 cores (idle OpenBLAS threads spin); here there is only
one pool of threads. Block boundaries depend on the number of columns only, never on the
thread count, so results are the same for any number of threads.

The built-in rule always runs here; custom rules go level by level through
:mod:`glomsim._kernels.attention` and :mod:`glomsim._kernels.mlp`.

Kernel ids: 0 dot, 1 cosine, 2 gaussian, 3 bounded, 4 glom_pytorch. Per-level attention
scalars ``params[level]`` = [beta, bounded threshold, 1/sqrt(D), self score, 1e-12].
"""

import math

import numpy as np

from .jit import njit, prange

DOT, COSINE, GAUSSIAN, BOUNDED, GLOM_PYTORCH = 0, 1, 2, 3, 4
NONE, L2, LAYERNORM = 0, 1, 2


@njit
def _gelu_rows(h, b, fast, c, gc):
    """h <- gelu(h + b) in place; ``fast`` selects the vectorised rational erf (float32)."""
    m, n = h.shape
    if fast:
        a1, a3, a5, a7, a9, a11, a13 = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        b0, b2, b4, b6, b8 = c[7], c[8], c[9], c[10], c[11]
        lo, hi, half, inv_sqrt2, one = c[12], c[13], c[14], c[15], c[16]
        for i in range(m):
            row = h[i]
            for k in range(n):
                z = row[k] + b[k]
                x = z * inv_sqrt2
                x = hi if x > hi else x
                x = lo if x < lo else x
                x2 = x * x
                p = ((((((a13 * x2 + a11) * x2 + a9) * x2 + a7) * x2 + a5) * x2 + a3) * x2 + a1) * x
                q = (((b8 * x2 + b6) * x2 + b4) * x2 + b2) * x2 + b0
                row[k] = half * z * (one + p / q)
    else:
        half, inv_sqrt2, one = gc[0], gc[1], gc[2]
        for i in range(m):
            row = h[i]
            for k in range(n):
                z = row[k] + b[k]
                row[k] = half * z * (one + math.erf(z * inv_sqrt2))


@njit
def _add_net(acc, weight, x, identity, w1, b1, w2, b2, fast, c, gc):
    """acc += weight * net(x), the net ``gelu(x w1 + b1) w2 + b2`` or the identity."""
    rows, D = acc.shape
    if identity:
        for r in range(rows):
            for k in range(D):
                acc[r, k] += weight * x[r, k]
        return
    h = np.dot(x, w1)
    _gelu_rows(h, b1, fast, c, gc)
    y = np.dot(h, w2)
    for r in range(rows):
        for k in range(D):
            acc[r, k] += weight * (y[r, k] + b2[k])


@njit(parallel=True)
def prepare_keys(prev, kernels, dense, tiny, norms, sqnorms, keyT):
    """Norms of every embedding, and the transposed keys of levels on the dense path.

    ``prev`` (M, L, N, D) for M ensemble members; outputs (M, L, N) and (M, L, D, N).
    """
    M, L, N, D = prev.shape
    for task in prange(M * L * N):
        member = task // (L * N)
        level = (task // N) % L
        i = task % N
        x = prev[member, level]
        s = x[i, 0] - x[i, 0]
        for k in range(D):
            s += x[i, k] * x[i, k]
        nrm = math.sqrt(s)
        norms[member, level, i] = nrm
        sqnorms[member, level, i] = s
        if dense[level]:
            kt = keyT[member, level]
            if kernels[level] == GLOM_PYTORCH:
                den = nrm if nrm > tiny else tiny
                for k in range(D):
                    kt[k, i] = x[i, k] / den
            else:
                for k in range(D):
                    kt[k, i] = x[i, k]


@njit(fastmath={"reassoc", "contract"})
def _local_row(x, i, indptr, indices, kernel, self_excluded, p, norms, scores, out_row):
    """Attention of column i over its CSR neighbours (see attention.local_attention)."""
    D = x.shape[1]
    beta, bound, inv_sqrt_d, self_score, tiny = p[0], p[1], p[2], p[3], p[4]
    start = indptr[i]
    end = indptr[i + 1]
    zero = beta - beta
    for k in range(D):
        out_row[k] = zero
    if end == start:
        for k in range(D):
            out_row[k] = x[i, k]
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
    m = -np.inf
    for q in range(start, end):
        j = indices[q]
        if kernel == GAUSSIAN:
            s = zero
            for k in range(D):
                diff = x[i, k] - x[j, k]
                s += diff * diff
            score = -beta * s
        else:
            s = zero
            for k in range(D):
                s += x[i, k] * x[j, k]
            if kernel == DOT:
                score = beta * s
            elif kernel == COSINE:
                den = norms[i] * norms[j]
                score = beta * (s / den) if den > 0 else zero
            else:
                if self_excluded and j == i:
                    score = self_score
                else:
                    score = beta * (s / max(norms[j], tiny)) * inv_sqrt_d
        scores[q - start] = score
        if score > m:
            m = score
    total = zero
    for q in range(end - start):
        e = math.exp(scores[q] - m)
        scores[q] = e
        total += e
    for q in range(start, end):
        j = indices[q]
        a = scores[q - start] / total
        for k in range(D):
            out_row[k] += a * x[j, k]


@njit(inline="always")
def _exp_rows_f32(row, mx, ec):
    """row[j] <- exp(row[j] - mx) in float32 (all arguments <= 0), returning the sum.

    Branch-free so LLVM vectorises it: 2^n 2^f with n = round(x log2 e), |f| <= 1/2, 2^f by
    its Taylor series to f^6 (relative error < 4e-6 near underflow, ~1e-7 elsewhere), 2^-n
    by multiplying the powers 2^-(2^b) of n's bits; below -87 the result is 0.
    """
    log2e, ln2, k2, k3, k4, k5, k6 = ec[17], ec[18], ec[19], ec[20], ec[21], ec[22], ec[23]
    lo, q1, q2, q4, q8 = ec[24], ec[25], ec[26], ec[27], ec[28]
    q16, q32, q64 = ec[29], ec[30], ec[31]
    ezero, xmin, ehalf, eone = ec[32], ec[33], ec[14], ec[16]
    etotal = ezero
    for jj in range(row.shape[0]):
        xx = row[jj] - mx
        tt = xx * log2e
        nn = math.floor(tt + ehalf)
        nn = nn if nn > lo else lo
        fr = (tt - nn) * ln2
        poly = eone + fr * (eone + fr * (k2 + fr * (k3 + fr * (k4 + fr * (k5 + fr * k6)))))
        bits = np.int32(-nn)
        sc = eone
        sc = sc * q1 if (bits & 1) != 0 else sc
        sc = sc * q2 if (bits & 2) != 0 else sc
        sc = sc * q4 if (bits & 4) != 0 else sc
        sc = sc * q8 if (bits & 8) != 0 else sc
        sc = sc * q16 if (bits & 16) != 0 else sc
        sc = sc * q32 if (bits & 32) != 0 else sc
        sc = sc * q64 if (bits & 64) != 0 else sc
        ee = poly * sc if xx > xmin else ezero
        row[jj] = ee
        etotal += ee
    return etotal


@njit(fastmath={"reassoc", "contract"})
def _dense_block(x, r0, kernel, self_excluded, p, norms, sqnorms, keyT, att, fast, ec):
    """Global softmax attention of rows r0.. of x: S = x_block keys^T, softmax, S x.

    The kernel is chosen once per row, outside the loop over columns, so each loop is a
    plain vectorisable pass; self-exclusion is applied to the one diagonal entry after.
    """
    m = att.shape[0]
    N = x.shape[0]
    beta, inv_sqrt_d, self_score = p[0], p[2], p[3]
    zero = beta - beta
    two = beta - beta + 2
    s = np.dot(x[r0 : r0 + m], keyT)
    lonely = False
    for r in range(m):
        i = r0 + r
        row = s[r]
        if kernel == DOT:
            for j in range(N):
                row[j] = beta * row[j]
        elif kernel == COSINE:
            ni = norms[i]
            for j in range(N):
                den = ni * norms[j]
                row[j] = beta * (row[j] / den) if den > 0 else zero
        elif kernel == GAUSSIAN:
            # |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 g; the |x_i|^2 term cancels in softmax
            for j in range(N):
                row[j] = -beta * (sqnorms[j] - two * row[j])
        else:
            scale = beta * inv_sqrt_d
            for j in range(N):
                row[j] = scale * row[j]
        if self_excluded:
            row[i] = self_score if kernel == GLOM_PYTORCH else -np.inf
        mx = -np.inf
        for j in range(N):
            mx = row[j] if row[j] > mx else mx
        if mx == -np.inf:
            lonely = True
            for j in range(N):
                row[j] = zero
            continue
        if fast:
            total = _exp_rows_f32(row, mx, ec)
        else:
            total = zero
            for j in range(N):
                e = math.exp(row[j] - mx)
                row[j] = e
                total += e
        inv = (zero + 1) / total
        for j in range(N):
            row[j] = row[j] * inv
    np.dot(s, x, att)
    if lonely:
        for r in range(m):
            t = zero
            for j in range(N):
                t += s[r, j]
            if t == 0:
                for k in range(x.shape[1]):
                    att[r, k] = x[r0 + r, k]


@njit(parallel=True)
def step_all(
    prev, delayed, inputs, out,
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos,
    identity, mix,
    kernels, self_excl, params, dense, indptr, indices, max_k,
    norms, sqnorms, keyT,
    norm_id, ln_eps, fast_erf, erf_c, gelu_c, block, group,
):  # fmt: skip
    """E[t] (``out``) from E[t-1] (``prev``), E[t-d] (``delayed``) and the inputs, for M
    ensemble members at once: states (M, L, N, D), inputs (M, N, D); nets and positional
    codes carry a leading member axis of length M or 1 (shared by all members).

    A task is (level, ``group`` members, a block of ``block`` rows). With shared nets a
    group of whole members runs its nets as one matrix product over all its rows, so an
    ensemble of small runs makes few large BLAS calls instead of many tiny ones.
    ``mix`` (L, 4) in the state's dtype, with the top level's top-down weight already 0.
    ``indptr`` (L, N+1) points into the concatenated ``indices`` of all levels.
    """
    M, L, N, D = prev.shape
    shared = bu_w1.shape[0] == 1
    nb = (N + block - 1) // block
    ng = (M + group - 1) // group
    for task in prange(L * ng * nb):
        level = task // (ng * nb)
        g0 = ((task // nb) % ng) * group
        g1 = min(M, g0 + group)
        G = g1 - g0
        wm = 0 if shared else g0
        r0 = (task % nb) * block
        r1 = min(N, r0 + block)
        m = r1 - r0
        rows = G * m
        w = mix[level]
        zero = w[0] - w[0]
        total = zero
        for c in range(4):
            if w[c] > 0:
                total += w[c]
        acc = np.zeros((rows, D), dtype=prev.dtype)
        if w[0] > 0:
            below = np.empty((rows, D), dtype=prev.dtype)
            for gm in range(G):
                for r in range(m):
                    for k in range(D):
                        if level == 0:
                            below[gm * m + r, k] = inputs[g0 + gm, r0 + r, k]
                        else:
                            below[gm * m + r, k] = prev[g0 + gm, level - 1, r0 + r, k]
            _add_net(acc, w[0], below, identity, bu_w1[wm, level], bu_b1[wm, level],
                     bu_w2[wm, level], bu_b2[wm, level], fast_erf, erf_c, gelu_c)  # fmt: skip
        if level < L - 1 and w[1] > 0:
            above = np.empty((rows, D), dtype=prev.dtype)
            for gm in range(G):
                pm = 0 if shared else g0 + gm
                for r in range(m):
                    for k in range(D):
                        above[gm * m + r, k] = (
                            delayed[g0 + gm, level + 1, r0 + r, k] + pos[pm, r0 + r, k]
                        )
            _add_net(acc, w[1], above, identity, td_w1[wm, level], td_b1[wm, level],
                     td_w2[wm, level], td_b2[wm, level], fast_erf, erf_c, gelu_c)  # fmt: skip
        for gm in range(G):
            member = g0 + gm
            x = prev[member, level]
            a0 = gm * m
            if w[2] > 0:
                for r in range(m):
                    for k in range(D):
                        acc[a0 + r, k] += w[2] * x[r0 + r, k]
            if w[3] > 0:
                att = np.empty((m, D), dtype=prev.dtype)
                if dense[level]:
                    _dense_block(
                        x, r0, kernels[level], self_excl[level], params[level],
                        norms[member, level], sqnorms[member, level], keyT[member, level], att,
                        fast_erf, erf_c,
                    )  # fmt: skip
                else:
                    scores = np.empty(max_k, dtype=prev.dtype)
                    for r in range(m):
                        _local_row(
                            x, r0 + r, indptr[level], indices, kernels[level], self_excl[level],
                            params[level], norms[member, level], scores, att[r],
                        )  # fmt: skip
                for r in range(m):
                    for k in range(D):
                        acc[a0 + r, k] += w[3] * att[r, k]
            o = out[member, level]
            for r in range(m):
                i = r0 + r
                for k in range(D):
                    o[i, k] = acc[a0 + r, k] / total
                if norm_id == L2:
                    s = zero
                    for k in range(D):
                        s += o[i, k] * o[i, k]
                    nrm = math.sqrt(s)
                    for k in range(D):
                        o[i, k] = o[i, k] / nrm if nrm > 0 else zero
                elif norm_id == LAYERNORM:
                    mean = zero
                    for k in range(D):
                        mean += o[i, k]
                    mean = mean / D
                    var = zero
                    for k in range(D):
                        diff = o[i, k] - mean
                        var += diff * diff
                    var = var / D
                    den = math.sqrt(var + ln_eps)
                    for k in range(D):
                        o[i, k] = (o[i, k] - mean) / den
