"""A plan: everything fixed for a run of one config, as the kernels' grouped arguments,
and the buffers they write; it runs one step, or all steps in one numba call."""

from __future__ import annotations

import numpy as np

from .._kernels.args import Buffers, Record, Span, StepTasks
from .nets import activation_ids, stacked_nets
from .split import TaskTables, hidden_splits, work_split
from .tables import attention_tables, buffers, maths_of, norm_of, sampled_lists, samples

__all__ = ["Plan"]


class Plan:
    """The grouped arguments of the fused step for ``members`` runs of ``cfg``: nets
    (``weights``: one GlomWeights shared by all members, or one per member), attention
    tables, normalisation, the dtype's constants, the work split and its task tables,
    and the buffers (:mod:`glomsim._kernels.args`)."""

    def __init__(self, cfg, weights, members: int = 1):
        wlist = list(weights) if isinstance(weights, (list, tuple)) else [weights]
        dt = self.dtype = cfg.np_dtype
        L, N, D = cfg.levels, cfg.n_columns, cfg.dim
        self.cfg = cfg
        self.members = members
        self.identity = wlist[0].identity
        self.splits = hidden_splits(N, cfg.hidden_width)
        self.split = work_split(cfg, members, len(wlist) == 1, L * N * D * dt.itemsize)
        self.attn = attention_tables(cfg)
        #: some level draws its neighbourhoods every step: such runs step from Python,
        #: each step with its own lists (``run`` cannot redraw them between steps)
        self.sampled = samples(cfg)
        self.norm = norm_of(cfg)
        self.maths = maths_of(dt)
        self.tasks = TaskTables(cfg, members, self.split, self.splits, self.identity)
        self.act = activation_ids(cfg)
        self.nets = stacked_nets(tuple(wlist), dt, self.splits)._replace(act=self.act)
        #: the kernels' variant this run needs ("lean" or "full"): a run compiles only its own
        self.variant = _variant_of(self.nets, self.attn)
        self.bufs = buffers(cfg, members, self.split, self.splits, self.identity)
        self._with_att = None  # the buffers that keep attention (custom rules), on demand
        self._bu0_ready = False  # step by step: netbuf holds level 0's bottom-up output
        self._bu0_frame = 0  # ... of this frame
        self._nbytes = None

    def attention_out(self) -> np.ndarray:
        """Every level's attention contribution of the last step run with
        ``keep_att`` (L, M, N, D)."""
        return self._with_att.att_out

    def nbytes(self) -> int:
        """Bytes of the buffers and tables this plan owns (not the nets: see ``detach``),
        counted once: they never change after planning (the pool asks after every run,
        ~30 us a time right after a kernel)."""
        if self._nbytes is None:
            bufs = self._with_att or self.bufs  # the same buffers, and attention kept
            held = (*bufs, *bufs.scratch, *self.attn)
            self._nbytes = sum(a.nbytes for a in held if isinstance(a, np.ndarray))
        return self._nbytes

    def attach(self, weights):
        """Give a plan from the pool this run's weights (the same content as its own)."""
        self.nets = stacked_nets((weights,), self.dtype, self.splits)._replace(act=self.act)

    def detach(self):
        """Let go of the stacked nets while the plan waits in the pool: they stay in
        ``stacked_nets``'s capped cache, or are freed."""
        self.nets = None

    def work_per_step(self) -> float:
        """Rough floating-point operations of one step (nets and attention), counting the
        2L-1 nets of a first step (``runtime.SERIAL_BELOW`` was chosen with this count)."""
        cfg = self.cfg
        n, d, h = cfg.n_columns, cfg.dim, cfg.hidden_width
        nets = 0 if self.identity else (2 * cfg.levels - 1) * 4 * d * h
        k = self.attn.max_k if not self.attn.dense.any() else n
        return self.members * n * (nets + 4 * cfg.levels * k * d)

    def begin(self) -> None:
        """A new run starts (it may start at any step: a continued run): nothing of an
        earlier run is reused."""
        self._bu0_ready = False

    def step(self, prev, delayed, inputs, t, out, keep_att: bool = False, frame: int = 0) -> bool:
        """E[t] into ``out`` from E[t-1] (``prev``), E[t-d] (``delayed``) and the inputs
        (frame ``frame`` of the run's): states (L, N, D) of one simulation, or (M, L, N,
        D) of M members with inputs (M, N, D). False when the new state holds a NaN or
        an infinity. With ``keep_att`` every contribution is evaluated and kept (custom
        rules: ``attention_out`` and ``netbuf``). Level 0's bottom-up output is reused
        from the run's earlier steps of the same frame (its input is constant), so the
        steps of a run must come in order after :meth:`begin` (or a step 1), with the
        same inputs for the same frame; :meth:`last_change` then gives the step's RMS
        change. Sampled levels attend over the lists drawn for step ``t`` (the absolute
        step: a continued run draws as the one long run)."""
        step_all = _kernels(self.variant)[0]

        if self.sampled:  # this step's draws, for (cfg.seed, t, level)
            self.attn = sampled_lists(self.cfg, self.attn, t)
        if prev.ndim == 3:
            prev, delayed, out, inputs = prev[None], delayed[None], out[None], inputs[None]
        if t <= 1 or frame != self._bu0_frame:
            self._bu0_ready = False
        self._bu0_frame = frame
        ready = self._bu0_ready
        mix, tasks, runs_bu0 = self.tasks.step(t, ready, all_on=keep_att)
        bufs = self._keeping_att() if keep_att else self.bufs
        step_all(prev, delayed, inputs, out, StepTasks(mix, tasks, ready), self.nets,
                 self.attn, self.norm, self.maths, self.split, bufs)  # fmt: skip
        self._bu0_ready = ready or runs_bu0
        return not bufs.nonfinite.any()

    def last_change(self, members: bool):
        """(RMS change, RMS size) per level, each (L,) or (M, L) float64, of the last step
        run (from its per-task sums, added in a fixed order, as the in-numba run does)."""
        from .._kernels.step import reduce_change

        cfg = self.cfg
        L, N, M = cfg.levels, cfg.n_columns, self.members
        change = np.empty((M, L), dtype=np.float64)
        rms = np.empty((M, L), dtype=np.float64)
        nb = -(-N // self.split.rows)
        reduce_change(self.bufs.change_sums, L, M, nb, N * cfg.dim, change, rms)
        return (change, rms) if members else (change[0], rms[0])

    def _keeping_att(self) -> Buffers:
        if self._with_att is None:
            cfg = self.cfg
            shape = (cfg.levels, self.members, cfg.n_columns, cfg.dim)
            self._with_att = self.bufs._replace(att_out=np.empty(shape, self.dtype), keep_att=True)
            self._nbytes = None
        return self._with_att

    def run(self, rec, steps: int, inputs, per_frame: int) -> int:
        """Steps 1..steps (local: steps rec.t0 + 1, ...) of the built-in rule in one
        numba call (see ``_kernels.step.run_steps``) into the storage ``rec`` of an
        :class:`EveryKth` recorder: states in place in ``rec.out`` (record_every 1) or in
        ``rec.ring`` with the kept ones copied to ``rec.out``, members ``split.chunk`` at
        a time, and every step's RMS change and size in ``rec.change``, ``rec.rms``; ``inputs`` (F, N, D) or
        (F, M, N, D) frames. Returns the first local step whose state is not finite, or
        steps + 1, with the first failing (member, level) in ``bufs.where``."""
        run_steps = _kernels(self.variant)[1]

        if self.sampled:  # pragma: no cover - integrate steps these from Python
            raise RuntimeError("a sampled config's steps each need their own lists: step()")
        out, ring, history, sums = rec.out, rec.ring, rec.history, (rec.change, rec.rms)
        if out.ndim == 4:  # one simulation: a member axis of length 1
            out, inputs, history = out[:, None], inputs[:, None], history[:, None]
            ring = None if ring is None else ring[:, None]
            sums = tuple(a[:, None] for a in sums)
        if ring is None:
            ring = np.empty((1,) * out.ndim, dtype=out.dtype)
        span = Span(rec.t0, steps, self.cfg.top_down_delay, per_frame)
        return run_steps(span, inputs, Record(out, ring, rec.every, history, *sums),
                         self.tasks.schedule(), self.nets, self.attn, self.norm, self.maths,
                         self.split, self.bufs)  # fmt: skip


def _kernels(name: str):
    """(step_all, run_steps) of the variant ``name`` (imported on first use: importing the
    engine compiles nothing)."""
    from .._kernels.step import VARIANTS

    return VARIANTS[name]


def _variant_of(nets, attn) -> str:
    from .._kernels.step import variant_of

    return variant_of(nets, attn)
