"""One whole step of the built-in rule: one numba function with two parallel loops.

The first loop runs every net of the step as an equal task (about 256 rows, two matrix
products through single-threaded BLAS with bias and GELU between) and, spread among them,
the norms of attention; the second runs attention, the combination and the
normalisation per block of rows (see :func:`step_all`). :func:`run_steps` loops over steps
without returning to Python. Mixing BLAS's own threads with numba's made a step up to 100x
slower on 2 cores (idle OpenBLAS threads spin); here there is only one pool of threads.
Task boundaries depend on the sizes of the run only, never on the thread count, so results
are the same for any number of threads.

The built-in rule always runs here; custom rules go level by level through
:mod:`glomsim._kernels.attention` and :mod:`glomsim._kernels.mlp`.

Kernel ids: 0 dot, 1 cosine, 2 gaussian, 3 bounded, 4 glom_pytorch. Per-level attention
scalars ``params[level]`` = [beta, bounded threshold, 1/sqrt(D), self score, 1e-12, 1, 2,
BOUND_SHIFT_MAX, inf], all in the state's dtype: in numba a float32 plus a Python number
is a float64, and one such constant made whole loops run in float64.
"""

import math

import numpy as np
from numba import get_thread_id, types
from numba.extending import intrinsic

from .jit import njit, prange

DOT, COSINE, GAUSSIAN, BOUNDED, GLOM_PYTORCH = 0, 1, 2, 3, 4
NONE, L2, LAYERNORM = 0, 1, 2


@njit(fastmath={"contract"})
def _gelu_rows(h, b, fast, c, gc):
    """h <- gelu(h + b) in place; ``fast`` selects the vectorised rational erf (float32).
    Multiply-adds are fused (FMA): the polynomials then cost 0.26 instead of 0.38 ns an
    element, and round once instead of twice."""
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


@njit(fastmath={"reassoc", "contract"})
def _key_rows(x, r0, r1, normalise_keys, tiny, norms, sqnorms, inv_norms):
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
    # the running maximum starts from a score, not -inf: a float64 -inf made the softmax
    # and the weighted sum run in float64 (2x slower for float32 states)
    m = scores[0]
    for q in range(1, end - start):
        m = scores[q] if scores[q] > m else m
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


@njit(fastmath={"reassoc", "contract"}, inline="always")
def _exp_row(row, scale, cols, by_cols, shift, self_j, self_value, fast, ec):
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


#: Largest shift of a softmax row taken from a bound on its scores instead of their
#: maximum: the row's terms are then >= e^-60 times its largest, far above underflow.
BOUND_SHIFT_MAX = 30.0


@njit(fastmath={"reassoc", "contract"})
def _dense_block(x, r0, kernel, self_excluded, p, norms, sqnorms, inv_norms, att, fast, ec, s):
    """Global softmax attention of rows r0.. of x: S = x_block x^T, softmax, S x.

    The kernel is chosen once per row, outside the loop over columns, so each loop is a
    plain vectorisable pass (glom_pytorch's unit keys scale column j by inv_norms[j] there).
    The dot and glom_pytorch kernels (and cosine) shift each row by a bound on its scores
    instead of their maximum (Cauchy-Schwarz: |beta| |x_i| max|x_j|, |beta| |x_i| / sqrt(D)
    with unit keys, |beta|), so that scaling, the self entry and exp are one pass; when
    that bound exceeds ``BOUND_SHIFT_MAX`` (and for the gaussian kernel) the row's maximum
    is taken instead. The shift cancels in the softmax.
    """
    m = att.shape[0]
    N = x.shape[0]
    beta, inv_sqrt_d, self_score = p[0], p[2], p[3]
    one, two, limit, inf = p[5], p[6], p[7], p[8]  # in x's dtype (zero + 1 is a float64)
    zero = beta - beta
    np.dot(x[r0 : r0 + m], x.T, s)  # s: (m, N) scratch
    maxnorm = zero
    if kernel == DOT:
        for j in range(N):
            maxnorm = norms[j] if norms[j] > maxnorm else maxnorm
    by_cols = kernel == GLOM_PYTORCH
    lonely = False
    for r in range(m):
        i = r0 + r
        row = s[r]
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
            total = _exp_row(row, scale, inv_norms, by_cols, bound,
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
            mx = row[0]  # not -inf, a float64: see _local_row
            for j in range(1, N):
                mx = row[j] if row[j] > mx else mx
            if mx == -inf:  # every entry excluded: a column alone keeps its state
                for j in range(N):
                    row[j] = zero
                lonely = True
                continue
            total = _exp_row(row, one, inv_norms, False, mx, -1, zero, fast, ec)
        if total == 0:  # every entry excluded (the bound's largest term is >= e^-60)
            lonely = True
            continue
        inv = one / total
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


# no loop fusion: the second loop reads what the first writes for other rows
@njit(parallel={"fusion": False})
def step_all(
    prev, delayed, inputs, out,
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos,
    identity, mix, net_tasks, netbuf,
    kernels, self_excl, params, dense, indptr, indices, max_k,
    norms, sqnorms, inv_norms, tiny,
    norm_id, ln_eps, fast_erf, erf_c, gelu_c, block, rows, group, nonfinite, scratch,
    bu0_ready,
):  # fmt: skip
    """E[t] (``out``) from E[t-1] (``prev``), E[t-d] (``delayed``) and the inputs, for M
    ensemble members at once: states (M, L, N, D), inputs (M, N, D); nets and positional
    codes carry a leading member axis of length M or 1 (shared by all members).

    Two parallel loops. The first runs the tasks of ``net_tasks`` (T, 5). A task
    (2, level, member, first row, 0) computes the norms of ``rows`` rows of E[t-1] (and
    the key scales of the glom_pytorch kernel, ``inv_norms`` (M, L, N)) where attention
    is on; these tasks
    are spread evenly among the others, so an even split of the loop stays balanced (a
    loop of their own cost a parallel region a step). A net task (net: 0 bottom-up or 1
    top-down, level, first member, first row, hidden chunk) runs one net on ``group``
    members x ``block`` rows, restricted to one of the S chunks its hidden layer is cut
    into (weights (M, L, S, D, H/S) and (M, L, S, H/S, D)), as two matrix products; it
    writes its output (with the last bias for chunk 0) to ``netbuf`` (2, S, L, M, N, D),
    and the chunks are added in a fixed order. All net tasks cost the same, so an even
    split over the threads is balanced (one task per (level, block) running both nets
    left a thread idle at the top level, which has no top-down net). With shared nets a
    group of whole members runs its nets as one product over all its rows, so an ensemble
    of small runs makes few large BLAS calls instead of many tiny ones. The second loop,
    per (level, member, block of ``rows`` rows): attention, the weighted combination and
    the normalisation (blocks of at most 128 rows: five 256-row levels left one of two
    threads idle a fifth of the loop).

    ``mix`` (L, 4) in the state's dtype, with the top level's top-down weight already 0;
    contributions of weight 0 are skipped (and not listed in ``net_tasks``). With identity
    nets ``net_tasks`` is empty and the contributions are read directly.
    With ``bu0_ready`` netbuf[0, 0, 0] already holds level 0's whole bottom-up output
    (chunks added, bias in) from an earlier step of the same run: that net reads only
    the inputs, which do not change during a run, so ``net_tasks`` leaves it out and its
    chunks are not added again (glom-pytorch recomputes it every step).
    ``indptr`` (L, N+1) points into the concatenated ``indices`` of all levels.
    ``nonfinite`` (L * M * blocks,) is set to 1 for each (level, member, block) task whose
    new rows hold a NaN or an infinity, so the caller need not scan the state again.
    ``scratch`` = per-thread buffers (threads, rows, ...): net inputs (group x block, D),
    hidden (group x block, H/S), net outputs (group x block, D), attention (rows, D),
    dense scores (rows, N).
    """
    M, L, N, D = prev.shape
    shared = bu_w1.shape[0] == 1
    nb = (N + rows - 1) // rows
    # per-thread scratch (indexed by numba's thread id): allocating ~1 MB a task instead
    # page-faulted whenever malloc had handed memory back (~5% of a dim-256 step)
    xbuf, hbuf, ybuf, abuf, sbuf = scratch
    for it in prange(net_tasks.shape[0]):
        kind = net_tasks[it, 0]
        level = net_tasks[it, 1]
        g0 = net_tasks[it, 2]
        r0 = net_tasks[it, 3]
        chunk = net_tasks[it, 4]
        if kind == 2:  # norms (and key scales) of one member's block of rows
            _key_rows(prev[g0, level], r0, min(N, r0 + rows), kernels[level] == GLOM_PYTORCH,
                      tiny, norms[g0, level], sqnorms[g0, level],
                      inv_norms[g0, level])  # fmt: skip
            continue
        g1 = min(M, g0 + group)
        G = g1 - g0
        r1 = min(N, r0 + block)
        m = r1 - r0
        wm = 0 if shared else g0
        tid = get_thread_id()
        x = xbuf[tid, : G * m]
        for gm in range(G):
            if kind == 0:
                src = inputs[g0 + gm] if level == 0 else prev[g0 + gm, level - 1]
                for r in range(m):
                    for k in range(D):
                        x[gm * m + r, k] = src[r0 + r, k]
            else:
                src = delayed[g0 + gm, level + 1]
                p = pos[0 if shared else g0 + gm]
                for r in range(m):
                    for k in range(D):
                        x[gm * m + r, k] = src[r0 + r, k] + p[r0 + r, k]
        w1 = bu_w1[wm, level, chunk] if kind == 0 else td_w1[wm, level, chunk]
        b1 = bu_b1[wm, level, chunk] if kind == 0 else td_b1[wm, level, chunk]
        w2 = bu_w2[wm, level, chunk] if kind == 0 else td_w2[wm, level, chunk]
        b2 = bu_b2[wm, level] if kind == 0 else td_b2[wm, level]
        h = hbuf[tid, : G * m]
        np.dot(x, w1, h)
        _gelu_rows(h, b1, fast_erf, erf_c, gelu_c)
        y = ybuf[tid, : G * m]
        np.dot(h, w2, y)
        for gm in range(G):
            dst = netbuf[kind, chunk, level, g0 + gm]
            if chunk == 0:
                for r in range(m):
                    for k in range(D):
                        dst[r0 + r, k] = y[gm * m + r, k] + b2[k]
            else:
                for r in range(m):
                    for k in range(D):
                        dst[r0 + r, k] = y[gm * m + r, k]
    for task in prange(L * M * nb):
        level = task // (M * nb)
        member = (task // nb) % M
        r0 = (task % nb) * rows
        r1 = min(N, r0 + rows)
        m = r1 - r0
        w = mix[level]
        zero = w[0] - w[0]
        total = zero
        for c in range(4):
            if w[c] > 0:
                total += w[c]
        x = prev[member, level]
        tid = get_thread_id()
        att = abuf[tid, :m]
        if w[3] > 0:
            if dense[level]:
                _dense_block(
                    x, r0, kernels[level], self_excl[level], params[level],
                    norms[member, level], sqnorms[member, level], inv_norms[member, level], att,
                    fast_erf, erf_c, sbuf[tid, :m],
                )  # fmt: skip
            else:
                scores = np.empty(max_k, dtype=prev.dtype)
                for r in range(m):
                    _local_row(
                        x, r0 + r, indptr[level], indices, kernels[level], self_excl[level],
                        params[level], norms[member, level], scores, att[r],
                    )  # fmt: skip
        S = netbuf.shape[1]
        if identity:
            bu = inputs[member] if level == 0 else prev[member, level - 1]
            td = delayed[member, min(level + 1, L - 1)]
        else:
            bu = netbuf[0, 0, level, member]
            td = netbuf[1, 0, level, member]
            for c in range(1, S):  # nets cut along the hidden layer: add the other chunks
                more_bu = netbuf[0, c, level, member]
                more_td = netbuf[1, c, level, member]
                for r in range(m):
                    i = r0 + r
                    if w[0] > 0 and not (level == 0 and bu0_ready):
                        for k in range(D):
                            bu[i, k] += more_bu[i, k]
                    if level < L - 1 and w[1] > 0:
                        for k in range(D):
                            td[i, k] += more_td[i, k]
        p = pos[0 if pos.shape[0] == 1 else member]
        o = out[member, level]
        check = zero  # stays exactly 0 while every entry is finite (x - x)
        for r in range(m):
            i = r0 + r
            orow = o[i]
            for k in range(D):
                orow[k] = zero
            if w[0] > 0:
                for k in range(D):
                    orow[k] += w[0] * bu[i, k]
            if level < L - 1 and w[1] > 0:
                if identity:
                    for k in range(D):
                        orow[k] += w[1] * (td[i, k] + p[i, k])
                else:
                    for k in range(D):
                        orow[k] += w[1] * td[i, k]
            if w[2] > 0:
                for k in range(D):
                    orow[k] += w[2] * x[i, k]
            if w[3] > 0:
                for k in range(D):
                    orow[k] += w[3] * att[r, k]
            for k in range(D):
                orow[k] = orow[k] / total
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
                den = math.sqrt(var + ln_eps)
                for k in range(D):
                    orow[k] = (orow[k] - mean) / den
            for k in range(D):
                check += orow[k] - orow[k]
        nonfinite[task] = 0 if check == 0 else 1


@njit
def run_steps(
    steps, out, ring, record_every, delay, inputs,
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos,
    identity, mixes, tasks, task_ptr, runs_bu0, chunk, where, netbuf,
    kernels, self_excl, params, dense, indptr, indices, max_k,
    norms, sqnorms, inv_norms, tiny,
    norm_id, ln_eps, fast_erf, erf_c, gelu_c, block, rows, group, nonfinite, scratch,
):  # fmt: skip
    """Steps 1..steps of :func:`step_all` without returning to Python in between, for
    runs that need nothing between steps (no custom rule, settling test, summaries or
    progress bar). States carry a member axis: ``out`` (records, M, L, N, D).

    Members go through all their steps ``chunk`` at a time (a multiple of ``group``, so
    nets see the same groups of rows): a chunk's states stay in the cores' caches from one
    step to the next, where stepping all members of a large ensemble together streamed
    every state through memory each step. Members never interact, so the order changes
    nothing; ``tasks`` must be those of a chunk of ``chunk`` members (the last chunk may
    be shorter: its tasks are those whose first member is inside it).

    With ``record_every`` 1, E[t] is computed in place in out[t]; otherwise ``ring``
    (delay + 1, M, L, N, D) holds the last states (slot t % (delay + 1) holds E[t], E[0]
    already in slot 0) and every record_every-th state and the last are copied to
    out[1], out[2], ... ``mixes`` (S+1, L, 4) are the mixing weights of steps 0..S (step
    t uses min(t, S)) and ``tasks[task_ptr[s]:task_ptr[s + 1]]`` their net tasks;
    ``tasks[task_ptr[S + 1 + s]:task_ptr[S + 2 + s]]`` are the same without level 0's
    bottom-up net, for the steps after one has computed it (its input is constant);
    ``runs_bu0[q]`` tells whether table q runs that net.
    Returns the first step whose state holds a NaN or an infinity, or steps + 1; for a
    failed run ``where`` (2,) receives the first (member, level) that failed at that step.
    Every member is computed through the step before the one returned.
    """
    S = mixes.shape[0] - 1
    M = out.shape[1]
    L = out.shape[2]
    N = out.shape[3]
    nb = (N + rows - 1) // rows
    per_member_nets = bu_w1.shape[0] > 1
    per_member_pos = pos.shape[0] > 1
    failed = steps + 1
    for m0 in range(0, M, chunk):
        m1 = min(M, m0 + chunk)
        mc = m1 - m0
        w0 = m0 if per_member_nets else 0
        w1 = m1 if per_member_nets else 1
        p0 = m0 if per_member_pos else 0
        p1 = m1 if per_member_pos else 1
        n_rec = 1
        bu0_ready = False  # netbuf holds this chunk's level-0 bottom-up output
        for t in range(1, min(steps, failed - 1) + 1):
            s = min(t, S)
            if record_every == 1:
                prev = out[t - 1][m0:m1]
                delayed = out[max(t - delay, 0)][m0:m1]
                new = out[t][m0:m1]
            else:
                prev = ring[(t - 1) % (delay + 1)][m0:m1]
                delayed = ring[max(t - delay, 0) % (delay + 1)][m0:m1]
                new = ring[t % (delay + 1)][m0:m1]
            q0 = s + (S + 1 if bu0_ready else 0)
            step_tasks = tasks[task_ptr[q0] : task_ptr[q0 + 1]]
            if mc < chunk:  # the last, shorter chunk: only tasks of its members
                keep = 0
                for q in range(step_tasks.shape[0]):
                    if step_tasks[q, 2] < mc:
                        keep += 1
                short = np.empty((keep, 5), dtype=step_tasks.dtype)
                keep = 0
                for q in range(step_tasks.shape[0]):
                    if step_tasks[q, 2] < mc:
                        short[keep] = step_tasks[q]
                        keep += 1
                step_tasks = short
            step_all(
                prev, delayed, inputs[m0:m1], new, bu_w1[w0:w1], bu_b1[w0:w1], bu_w2[w0:w1],
                bu_b2[w0:w1], td_w1[w0:w1], td_b1[w0:w1], td_w2[w0:w1], td_b2[w0:w1],
                pos[p0:p1], identity, mixes[s], step_tasks, netbuf, kernels, self_excl,
                params, dense, indptr, indices, max_k, norms, sqnorms, inv_norms, tiny,
                norm_id, ln_eps, fast_erf, erf_c, gelu_c, block, rows, group, nonfinite,
                scratch, bu0_ready,
            )  # fmt: skip
            if runs_bu0[q0]:
                bu0_ready = True
            # the lowest failing member at this step, then its lowest level (tasks are
            # numbered level-major); best_m stays M while every state is finite
            best_m, best_l = M, L
            for q in range(L * mc * nb):
                if nonfinite[q] != 0:
                    lv = q // (mc * nb)
                    mb = (q // nb) % mc
                    if mb < best_m or (mb == best_m and lv < best_l):
                        best_m, best_l = mb, lv
            if best_m < M:
                if t < failed:
                    failed = t
                    where[0] = m0 + best_m
                    where[1] = best_l
                break
            if record_every != 1 and (t % record_every == 0 or t == steps):
                out[n_rec][m0:m1] = new
                n_rec += 1
    return failed
