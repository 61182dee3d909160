"""One whole step of the built-in rule: one numba function with two parallel loops.

The first loop runs every net of the step as an equal task (about 256 rows, two matrix
products against packed weights, :mod:`.gemm`, with bias and activation between) and,
spread among them, the norms of attention; the second runs attention, the combination and
the normalisation per block of rows (see :func:`step_all`). :func:`run_steps` loops over steps
without returning to Python. Mixing BLAS's own threads with numba's made a step up to 100x
slower on 2 cores (idle OpenBLAS threads spin); here there is only one pool of threads.
Task boundaries depend on the sizes of the run only, never on the thread count, so results
are the same for any number of threads.

Custom rules run the same step with ``bufs.keep_att`` set, then read every contribution
(:mod:`glomsim._engine.custom`). Arguments come grouped (:mod:`.args`); ids and parameter
slots from :mod:`.ids`.

Two variants (:data:`VARIANTS`), so that a run compiles only what it needs: the kernels as
written (``full``: every activation and attention kernel) and ``lean`` (GELU nets, no
contrastive kernel: most runs), made by :func:`.jit.variant` from the same code with the
lean primitives in place of the full ones. Each loop body of the step is a function of its
own (:func:`net_task`, :func:`combine_task`): numba's parallel passes then work on a small
function. Cold-start CPU time of the small benchmark config (glom_pytorch, dim 64, 8x8,
float32) fell from 45 to 32 s on a quiet-ish machine (75-82 to 53-57 s under load) this
way, results bit for bit the same.
"""

import numpy as np
from numba import get_thread_id

from .args import Nets, StepTasks
from .attention import (
    dense_block,
    dense_block_lean,
    key_rows,
    local_rows,
    local_rows_lean,
    pack_rows,
)
from .ids import CONTRASTIVE, GELU, GLOM_PYTORCH, TINY
from .jit import REASSOC, njit, prange, variant
from .nets import net_rows, net_rows_lean
from .normalise import normalise_row


# no loop fusion: the second loop reads what the first writes for other rows
@njit(parallel={"fusion": False})
def step_all(prev, delayed, inputs, out, step, nets, attn, norm, maths, split, bufs):
    """E[t] (``out``) from E[t-1] (``prev``), E[t-d] (``delayed``) and the inputs, for M
    ensemble members at once: states (M, L, N, D), inputs (M, N, D); ``step`` a
    :class:`.args.StepTasks`, the others the groups of :mod:`.args` (nets and positional
    codes carry a leading member axis of length M or 1, shared by all members).

    Two parallel loops. The first runs the net tasks ``step.tasks`` (T, 5). A task
    (2, level, member, first row, 0) computes the norms of ``rows`` rows of E[t-1] (and
    the key scales of the glom_pytorch kernel, ``inv_norms`` (M, L, N)) where attention
    is on, and at a level of global attention packs those rows for its two products
    (``bufs.keys``, ``bufs.values``: :func:`.attention.pack_rows`); these tasks
    are spread evenly among the others, so an even split of the loop stays balanced (a
    loop of their own cost a parallel region a step). A net task (net: 0 bottom-up or 1
    top-down, level, first member, first row, hidden chunk) runs one net on ``group``
    members x ``block`` rows, restricted to one of the S chunks its hidden layer is cut
    into (weights packed by :func:`glomsim._engine.nets.pack_net`: (M, L, S, P1, D, W)
    and (M, L, S, P2, Hp, W)), as two matrix products; it
    writes its output (with the last bias for chunk 0) to ``netbuf`` (2, S, L, M, N, D),
    and the chunks are added in a fixed order. All net tasks cost the same, so an even
    split over the threads is balanced (one task per (level, block) running both nets
    left a thread idle at the top level, which has no top-down net). With shared nets a
    group of whole members runs its nets as one product over all its rows, so an ensemble
    of small runs makes few large products instead of many tiny ones. The second loop,
    per (level, member, block of ``rows`` rows): attention, the weighted combination and
    the normalisation (blocks of at most 128 rows: five 256-row levels left one of two
    threads idle a fifth of the loop).

    ``step.mix`` (L, 4) in the state's dtype, with the top level's top-down weight
    already 0; contributions of weight 0 are skipped (and not listed in the tasks). With identity
    nets ``net_tasks`` is empty and the contributions are read directly.
    With ``step.bu0_ready`` netbuf[0, 0, 0] already holds level 0's whole bottom-up
    output (chunks added, bias in) from an earlier step of the same run: that net reads
    only the inputs, which do not change during a run, so the tasks leave it out and its
    chunks are not added again (glom-pytorch recomputes it every step).
    ``bufs.nonfinite`` (L * M * blocks,) is set to 1 for each (level, member, block) task whose
    new rows hold a NaN or an infinity, so the caller need not scan the state again, and
    ``bufs.change_sums`` (2, tasks) receives each task's float64 sums of squares of
    E_t - E_{t-1} and of E_t (:func:`reduce_change` makes the RMS change and size per
    level from them, in a fixed order).
    With ``bufs.keep_att`` every attention contribution is copied to ``bufs.att_out``.
    """
    # unpacked before the parallel loops, which then see plain arrays, scalars and the
    # groups their tasks read; each loop's body is a function of its own (:func:`net_task`,
    # :func:`combine_task`): numba's parallel passes then work on a small function, which
    # had cost most of a cold start's compiling when the bodies were written out here
    mix, net_tasks, bu0_ready = step
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos, identity, act = nets
    kernels, self_excl, params, dense, indptr, indices, max_k = attn
    norm_id, ln_eps = norm
    fast, poly, gelu = maths
    block, rows, group = split.block, split.rows, split.group
    netbuf, norms, sqnorms, inv_norms = bufs.netbuf, bufs.norms, bufs.sqnorms, bufs.inv_norms
    keys, values = bufs.keys, bufs.values
    nonfinite, att_out, keep_att = bufs.nonfinite, bufs.att_out, bufs.keep_att
    change_sums = bufs.change_sums
    # per-thread scratch (indexed by numba's thread id): allocating ~1 MB a task instead
    # page-faulted whenever malloc had handed memory back (~5% of a dim-256 step)
    xbuf, hbuf, ybuf, abuf, sbuf = bufs.scratch
    M, L, N, D = prev.shape
    nb = (N + rows - 1) // rows
    for it in prange(net_tasks.shape[0]):
        tid = get_thread_id()
        # groups made again inside the loop: a parallel loop passes arrays and scalars
        net_task(net_tasks[it], (prev, delayed, inputs),
                 (bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos, act),
                 (fast, poly, gelu), (kernels, params, dense), (block, rows, group),
                 (netbuf, norms, sqnorms, inv_norms, keys, values),
                 (xbuf[tid], hbuf[tid], ybuf[tid]))  # fmt: skip
    for task in prange(L * M * nb):
        tid = get_thread_id()
        # an int64 index, as in typing: the loop's own (uint64 in the parallel lowering)
        # had compiled the task a second time
        combine_task(np.int64(task), (prev, delayed, inputs, out), (mix, bu0_ready),
                     (pos, identity), (kernels, self_excl, params, dense, indptr, indices,
                     max_k), (norm_id, ln_eps), (fast, poly), rows,
                     (netbuf, norms, sqnorms, inv_norms, keys, values, nonfinite, att_out,
                     keep_att, change_sums), (abuf[tid], sbuf[tid]))  # fmt: skip


@njit(internal=True)
def net_task(task, states, nets, maths, attn, sizes, outs, scratch):
    """One task of :func:`step_all`'s first loop, ``task`` a row of its net tasks: the
    norms (and key scales) of one member's block of rows, or one net on a group of
    members x a block of rows, one hidden chunk, into ``netbuf``; ``xbuf``, ``hbuf``,
    ``ybuf``: the thread's scratch (the groups are :func:`step_all`'s arrays, grouped
    again: a parallel loop passes arrays and scalars, not groups of groups)."""
    prev, delayed, inputs = states
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos, act = nets
    kernels, params, dense = attn
    block, rows, group = sizes
    netbuf, norms, sqnorms, inv_norms, keys, values = outs
    xbuf, hbuf, ybuf = scratch
    M, L, N, D = prev.shape
    shared = bu_w1.shape[0] == 1
    kind = task[0]
    level = task[1]
    g0 = task[2]
    r0 = task[3]
    chunk = task[4]
    if kind == 2:  # norms (and key scales) of one member's block of rows
        r1 = min(N, r0 + rows)
        key_rows(prev[g0, level], r0, r1, kernels[level] == GLOM_PYTORCH,
                 params[level, TINY], norms[g0, level], sqnorms[g0, level],
                 inv_norms[g0, level])  # fmt: skip
        if dense[level]:  # and those rows packed for the dense block's products
            pack_rows(prev[g0, level], r0, r1, keys[g0, level], values[g0, level])
        return
    g1 = min(M, g0 + group)
    G = g1 - g0
    r1 = min(N, r0 + block)
    m = r1 - r0
    wm = 0 if shared else g0
    x = xbuf[: G * m]
    in_place = kind == 0 and G == 1  # a bottom-up net reads one member's rows as they are
    if in_place:
        src = inputs[g0] if level == 0 else prev[g0, level - 1]
        x = np.ascontiguousarray(src[r0:r1])  # no copy for C-contiguous states
    for gm in range(0 if in_place else G):  # else rows (plus positions) into scratch
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
    h = hbuf[: G * m]
    y = ybuf[: G * m]
    direct = G == 1 and ybuf.shape[1] == D  # outputs fill whole panels: no copy to netbuf
    if direct:
        y = np.ascontiguousarray(netbuf[kind, chunk, level, g0, r0:r1])
    net_rows(x, w1, b1, w2, act[kind], maths, h, y)
    if direct:
        if chunk == 0:
            _add_bias(y, b2)
    else:
        _to_netbuf(y, netbuf[kind, chunk, level], g0, G, r0, m, b2 if chunk == 0 else None)


@njit(inline="always")
def _add_bias(y, b):
    """y[r, :] += b over the rows of y, in place."""
    for r in range(y.shape[0]):
        row = y[r]
        for k in range(b.shape[0]):
            row[k] += b[k]


@njit(inline="always")
def _to_netbuf(y, dst, g0, G, r0, m, bias):
    """Rows of ``G`` members x ``m`` rows of the scratch ``y`` (first D columns) into
    their members' rows r0.. of ``dst`` (M, N, D), with ``bias`` added when given."""
    D = dst.shape[2]
    for gm in range(G):
        out = dst[g0 + gm]
        for r in range(m):
            if bias is None:
                for k in range(D):
                    out[r0 + r, k] = y[gm * m + r, k]
            else:
                for k in range(D):
                    out[r0 + r, k] = y[gm * m + r, k] + bias[k]


@njit(internal=True)
def combine_task(task, states, step, nets, attn, norm, maths, rows, bufs, scratch):  # noqa: C901
    """One task of :func:`step_all`'s second loop, per (level, member, block of rows):
    attention, the weighted combination and the normalisation of those rows of ``out``,
    with the task's non-finite flag and sums of squares; ``scratch``: the thread's (the
    groups are :func:`step_all`'s arrays, grouped again)."""
    prev, delayed, inputs, out = states
    mix, bu0_ready = step
    pos, identity = nets
    kernels, self_excl, params, dense, indptr, indices, max_k = attn
    norm_id, ln_eps = norm
    fast_erf, erf_c = maths
    netbuf, norms, sqnorms, inv_norms, keys, values, nonfinite, att_out, keep_att, change_sums = (
        bufs
    )
    abuf, sbuf = scratch
    M, L, N, D = prev.shape
    nb = (N + rows - 1) // rows
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
    att = abuf[:m]
    if w[3] > 0:
        if dense[level]:
            dense_block(
                x, r0, kernels[level], self_excl[level], params[level],
                (norms[member, level], sqnorms[member, level], inv_norms[member, level]),
                (keys[member, level], values[member, level]), att, fast_erf, erf_c, sbuf[:m],
            )  # fmt: skip
        else:
            scores = np.empty(max_k, dtype=prev.dtype)
            local_rows(x, r0, att, (indptr[level], indices), kernels[level], self_excl[level],
                       params[level], norms[member, level], scores, (fast_erf, erf_c))  # fmt: skip
        if keep_att:  # the custom-rule path reads every contribution
            kept = att_out[level, member]
            for r in range(m):  # a loop, not a slice assignment: see _copy_rows
                for k in range(D):
                    kept[r0 + r, k] = att[r, k]
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
    check = 0.0  # stays exactly 0 while every entry is finite (x - x, in row_sums)
    moved = 0.0  # sums of squares of E_t - E_{t-1} and of E_t over these rows (float64)
    total_sq = 0.0
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
        normalise_row(orow, norm_id, ln_eps)
        dm, dt, dc = row_sums(orow, x[i])
        moved += dm
        total_sq += dt
        check += dc
    nonfinite[task] = 0 if check == 0 else 1
    change_sums[0, task] = moved
    change_sums[1, task] = total_sq


@njit(fastmath=REASSOC, internal=True)
def row_sums(a, b):
    """(sum of (a - b)^2, sum of a^2, sum of a - a) over one row, in float64: vectorised,
    in an order fixed by the row's length (never by threads). The last is exactly 0
    while every entry is finite (a NaN or an infinity makes it NaN): as a loop of its own
    without reassociation, that check was a chain of dependent additions, ~17 us of a
    dim-64 8x8 step's ~20 us outside nets and attention. Not inlined, so that it keeps
    its fastmath flags."""
    moved = 0.0
    size = 0.0
    check = 0.0
    for k in range(a.shape[0]):
        ak = np.float64(a[k])
        dlt = ak - np.float64(b[k])
        moved += dlt * dlt
        size += ak * ak
        check += ak - ak
    return moved, size, check


@njit
def reduce_change(sums, levels, members, blocks, size, change, rms):
    """The RMS change and the RMS size (members, levels) into ``change`` and ``rms`` from
    the per-task sums of squares ``sums`` (2, tasks) of :func:`step_all` (tasks numbered
    level-major, then member, then block), added block by block in order."""
    for mm in range(members):
        for lv in range(levels):
            base = (lv * members + mm) * blocks
            moved = 0.0
            total = 0.0
            for b in range(blocks):
                moved += sums[0, base + b]
                total += sums[1, base + b]
            change[mm, lv] = np.sqrt(moved / size)
            rms[mm, lv] = np.sqrt(total / size)


@njit
def change_sums_of(new, prev, rows, sums):
    """The per-task sums of squares ``sums`` (2, tasks) of ``new - prev`` and of ``new``
    (M, L, N, D) as :func:`step_all` makes them, for states made elsewhere (custom
    rules)."""
    M, L, N, D = new.shape
    nb = (N + rows - 1) // rows
    for task in range(L * M * nb):
        level = task // (M * nb)
        member = (task // nb) % M
        r0 = (task % nb) * rows
        moved = 0.0
        total = 0.0
        for i in range(r0, min(N, r0 + rows)):
            dm, dt, _ = row_sums(new[member, level, i], prev[member, level, i])
            moved += dm
            total += dt
        sums[0, task] = moved
        sums[1, task] = total


@njit
def run_steps(span, inputs, record, sched, nets, attn, norm, maths, split, bufs):  # noqa: C901
    """Steps t0+1..t0+steps of :func:`step_all` without returning to Python in between,
    for runs that need nothing between steps (no custom rule, settling test, summaries or
    progress bar). ``span`` (:class:`.args.Span`): the first state's step t0, the number
    of steps, the top-down delay and the steps per frame. States carry a member axis:
    ``out`` (records, M, L, N, D); ``inputs`` (F, M, N, D): step t reads frame
    min((t - 1) // per_frame, F - 1) (F = 1: a static input).

    Members go through all their steps ``chunk`` at a time (a multiple of ``group``, so
    nets see the same groups of rows): a chunk's states stay in the cores' caches from one
    step to the next, where stepping all members of a large ensemble together streamed
    every state through memory each step. Members never interact, so the order changes
    nothing; ``tasks`` must be those of a chunk of ``chunk`` members (the last chunk may
    be shorter: its tasks are those whose first member is inside it).

    ``record`` (:class:`.args.Record`): with ``every`` 1, the state of local step s (step
    t0 + s) is computed in place in out[s]; otherwise ``ring``
    (delay + 1, M, L, N, D) holds the last states (slot s % (delay + 1) holds local step
    s, the start already in slot 0) and the states of every step that is a multiple of
    ``every``, and the last, are copied to out[1], out[2], ... The delay reads local
    steps before 0 from ``history`` (history[j] is local step -1 - j). ``change[s]`` and
    ``rms[s]`` receive each member's RMS change and RMS size per level. ``sched`` (:class:`.args.Schedule`):
    ``mixes`` (S+1, L, 4) are the mixing weights of steps 0..S (step t uses min(t, S))
    and ``tasks[task_ptr[s]:task_ptr[s + 1]]`` their net tasks;
    ``tasks[task_ptr[S + 1 + s]:task_ptr[S + 2 + s]]`` are the same without level 0's
    bottom-up net, for the steps after one has computed it from the same frame;
    ``runs_bu0[q]`` tells whether table q runs that net (a new frame runs it again).
    Returns the first local step whose state holds a NaN or an infinity, or steps + 1;
    for a failed run ``bufs.where`` (2,) receives the first (member, level) that failed
    at that step. Every member is computed through the step before the one returned.
    """
    t0, steps, delay, per_frame = span
    out, ring, record_every, history, change, rms = record
    mixes, tasks, task_ptr, runs_bu0 = sched
    bu_w1, bu_b1, bu_w2, bu_b2, td_w1, td_b1, td_w2, td_b2, pos, identity, act = nets
    rows, chunk = split.rows, split.chunk
    nonfinite, where, change_sums = bufs.nonfinite, bufs.where, bufs.change_sums
    S = mixes.shape[0] - 1
    F = inputs.shape[0]
    M = out.shape[1]
    L = out.shape[2]
    N = out.shape[3]
    D = out.shape[4]
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
        chunk_nets = Nets(bu_w1[w0:w1], bu_b1[w0:w1], bu_w2[w0:w1], bu_b2[w0:w1],
                          td_w1[w0:w1], td_b1[w0:w1], td_w2[w0:w1], td_b2[w0:w1],
                          pos[p0:p1], identity, act)  # fmt: skip
        n_rec = 1
        bu0_ready = False  # netbuf holds this chunk's level-0 bottom-up output of frame f
        f = -1
        for t in range(1, min(steps, failed - 1) + 1):
            step = t0 + t
            s = min(step, S)
            frame = min((step - 1) // per_frame, F - 1)
            if frame != f:  # a new frame: level 0's bottom-up net runs again
                f = frame
                bu0_ready = False
            j = t - delay  # the delayed state's local step
            if record_every == 1:
                prev = out[t - 1][m0:m1]
                delayed = (out[j] if j >= 0 else history[-1 - j])[m0:m1]
                new = out[t][m0:m1]
            else:
                prev = ring[(t - 1) % (delay + 1)][m0:m1]
                delayed = (ring[j % (delay + 1)] if j >= 0 else history[-1 - j])[m0:m1]
                new = ring[t % (delay + 1)][m0:m1]
            q0 = s + (S + 1 if bu0_ready else 0)
            step_tasks = tasks[task_ptr[q0] : task_ptr[q0 + 1]]
            if mc < chunk:  # the last, shorter chunk: only tasks of its members
                step_tasks = _tasks_below(step_tasks, mc)
            step_all(prev, delayed, inputs[f][m0:m1], new,
                     StepTasks(mixes[s], step_tasks, bu0_ready), chunk_nets, attn, norm,
                     maths, split, bufs)  # fmt: skip
            if runs_bu0[q0]:
                bu0_ready = True
            best_m, best_l = _first_failure(nonfinite, L, mc, nb)
            if best_m < mc:
                if t < failed:
                    failed = t
                    where[0] = m0 + best_m
                    where[1] = best_l
                break
            reduce_change(change_sums, L, mc, nb, N * D, change[t][m0:m1], rms[t][m0:m1])
            if record_every != 1 and (step % record_every == 0 or t == steps):
                _copy_rows(new, out[n_rec][m0:m1])
                n_rec += 1
    return failed


@njit(inline="always")
def _tasks_below(tasks, members):
    """The net tasks whose first member is below ``members`` (a last, shorter chunk)."""
    keep = 0
    for q in range(tasks.shape[0]):
        if tasks[q, 2] < members:
            keep += 1
    short = np.empty((keep, 5), dtype=tasks.dtype)
    keep = 0
    for q in range(tasks.shape[0]):
        if tasks[q, 2] < members:
            for c in range(5):
                short[keep, c] = tasks[q, c]
            keep += 1
    return short


@njit(inline="always")
def _first_failure(nonfinite, levels, members, blocks):
    """The lowest failing member of a step, then its lowest level (tasks are numbered
    level-major); (members, levels) while every state is finite."""
    best_m, best_l = members, levels
    for q in range(levels * members * blocks):
        if nonfinite[q] != 0:
            lv = q // (members * blocks)
            mb = (q // blocks) % members
            if mb < best_m or (mb == best_m and lv < best_l):
                best_m, best_l = mb, lv
    return best_m, best_l


@njit(internal=True)
def _copy_rows(src, dst):
    """dst[...] = src for two (M, L, N, D) arrays of one shape, as loops: numba compiles
    a slice assignment with an error message of the shapes (string formatting: ~6 s of
    CPU time on a cold start, once per rank)."""
    M, L, N, D = src.shape
    for a in range(M):
        for b in range(L):
            for i in range(N):
                for k in range(D):
                    dst[a, b, i, k] = src[a, b, i, k]


# The lean variants: GELU nets and no contrastive kernel (most runs). A run compiles only
# the variant it runs (:func:`variant_of`); ``glomsim warmup`` compiles both.
net_task_lean = variant(net_task, "_lean", net_rows=net_rows_lean)
combine_task_lean = variant(combine_task, "_lean", local_rows=local_rows_lean,
                            dense_block=dense_block_lean)  # fmt: skip
step_all_lean = variant(step_all, "_lean", net_task=net_task_lean,
                        combine_task=combine_task_lean)  # fmt: skip
run_steps_lean = variant(run_steps, "_lean", step_all=step_all_lean)

#: (step_all, run_steps) of each variant: "lean" and "full".
VARIANTS = {"lean": (step_all_lean, run_steps_lean), "full": (step_all, run_steps)}


def variant_of(nets, attn) -> str:
    """The variant a run needs: "lean" when every net is GELU (or the nets are
    identities) and no level uses the contrastive kernel, else "full"."""
    gelu = bool(nets.identity) or bool(np.all(np.asarray(nets.act) == GELU))
    contrastive = bool(np.any(np.asarray(attn.kernels) == CONTRASTIVE))
    return "lean" if gelu and not contrastive else "full"
