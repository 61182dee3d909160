"""A plan: everything fixed for a run of one config, as the kernels' grouped arguments,
and the buffers they write; it runs one step, or all steps in one numba call."""

from __future__ import annotations

import numpy as np

from .._kernels.args import Buffers, Record, StepTasks
from .nets import stacked_nets
from .split import TaskTables, hidden_splits, work_split
from .tables import attention_tables, buffers, maths_of, norm_of

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
        self.norm = norm_of(cfg)
        self.maths = maths_of(dt)
        self.tasks = TaskTables(cfg, members, self.split, self.splits, self.identity)
        self.nets = stacked_nets(tuple(wlist), dt, self.splits)
        self.bufs = buffers(cfg, members, self.split, self.splits, self.identity)
        self._with_att = None  # the buffers that keep attention (custom rules), on demand
        self._bu0_ready = False  # step by step: netbuf holds level 0's bottom-up output
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
        self.nets = stacked_nets((weights,), self.dtype, self.splits)

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

    def step(self, prev, delayed, inputs, t, out, keep_att: bool = False) -> bool:
        """E[t] into ``out`` from E[t-1] (``prev``), E[t-d] (``delayed``) and the inputs:
        states (L, N, D) of one simulation, or (M, L, N, D) of M members with inputs
        (M, N, D). False when the new state holds a NaN or an infinity. With ``keep_att``
        every contribution is evaluated and kept (custom rules: ``attention_out`` and
        ``netbuf``). After step 1, level 0's bottom-up output is reused from the run's
        earlier steps (its input is constant), so the steps of a run must come in order,
        with the same inputs."""
        from .._kernels.step import step_all

        if prev.ndim == 3:
            prev, delayed, out, inputs = prev[None], delayed[None], out[None], inputs[None]
        if t <= 1:
            self._bu0_ready = False
        ready = self._bu0_ready
        mix, tasks, runs_bu0 = self.tasks.step(t, ready, all_on=keep_att)
        bufs = self._keeping_att() if keep_att else self.bufs
        step_all(prev, delayed, inputs, out, StepTasks(mix, tasks, ready), self.nets,
                 self.attn, self.norm, self.maths, self.split, bufs)  # fmt: skip
        self._bu0_ready = ready or runs_bu0
        return not bufs.nonfinite.any()

    def _keeping_att(self) -> Buffers:
        if self._with_att is None:
            cfg = self.cfg
            shape = (cfg.levels, self.members, cfg.n_columns, cfg.dim)
            self._with_att = self.bufs._replace(att_out=np.empty(shape, self.dtype), keep_att=True)
            self._nbytes = None
        return self._with_att

    def run(self, out, ring, steps, record_every, inputs) -> int:
        """Steps 1..steps of the built-in rule in one numba call (see
        ``_kernels.step.run_steps``): states in place in ``out`` (record_every 1) or in
        ``ring`` with every record_every-th and the last copied to ``out``, members
        ``split.chunk`` at a time. Returns the first step whose state is not finite, or
        steps + 1, with the first failing (member, level) in ``bufs.where``."""
        from .._kernels.step import run_steps

        if out.ndim == 4:  # one simulation: a member axis of length 1
            out, inputs = out[:, None], inputs[None]
            ring = None if ring is None else ring[:, None]
        if ring is None:
            ring = np.empty((1,) * out.ndim, dtype=out.dtype)
        return run_steps(steps, self.cfg.top_down_delay, inputs, Record(out, ring, record_every),
                         self.tasks.schedule(), self.nets, self.attn, self.norm, self.maths,
                         self.split, self.bufs)  # fmt: skip
