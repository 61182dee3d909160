"""The work split of the fused step, a function of the run's sizes only (so results never
depend on the number of threads), and the tables of net tasks it runs."""

from __future__ import annotations

import numpy as np

from .._kernels.args import Schedule, Split

__all__ = ["work_split", "hidden_splits", "TaskTables", "runs_bu0"]


def hidden_splits(n_columns: int, hidden: int) -> int:
    """Chunks each net's hidden layer is cut into. When a net would be a single task, it
    is cut in two, along the hidden layer for wide nets (each weight is still packed once
    per step) or else into two row blocks (:func:`work_split`). First chosen because a
    step ran 2L-1 nets, an odd number of equal tasks for two threads; steps after the
    first now run 2L-2 (level 0's bottom-up net runs once per run), and the cut still
    paid: uncut, the nets config (dim 256, 16x16) took 17.9-20.2 against 16.2-18.1 ms an
    iteration, and 64-row tasks on the small config 0.44-0.46 against 0.38 ms. It depends
    on N and H only (not on members), so an ensemble member adds its hidden units in the
    same order as the same run alone."""
    return 2 if (n_columns <= 256 and hidden >= 512 and hidden % 2 == 0) else 1


def work_split(cfg, members: int, shared: bool, state_bytes: int) -> Split:
    """Rows and members per task. A net task multiplies about 256 rows (chosen when BLAS
    repacked the weights on every call and 128-row tasks cost 10% more per FLOP than
    256-row ones on dim-256 nets; the packed products of :mod:`glomsim._kernels.gemm` cost
    the same per FLOP from 30 rows up, and fewer tasks still mean less scheduling).
    Members sharing one set of nets run them as one product over a group of whole members
    (about 256 rows); one member per task when each has its own nets.
    ``state_bytes`` is one member's state (L N D x itemsize)."""
    N = cfg.n_columns
    group = 256 // N if (shared and members > 1 and N <= 128) else 1
    ng = -(-members // group)
    nb = 1 if group > 1 else -(-N // 256)
    block = -(-N // nb)
    if nb * ng == 1 and hidden_splits(N, cfg.hidden_width) == 1 and N >= 16:
        block = -(-N // 2)
    # members per chunk of the in-numba run (see _kernels.step.run_steps): whole groups,
    # about 256 KB of states. 256 runs of 8x8 columns, dim 16: 0.94 s on one thread
    # stepping all members together, 0.66-0.69 s in chunks of 8-64; on two threads
    # ~0.57 s together, 0.36-0.47 s in chunks of 20 (this rule's choice)
    per = max(1, (256 * 1024) // state_bytes)
    chunk = min(members, max(group, per // group * group))
    # rows per task of attention and combination: at most 128, so that few large levels
    # still split evenly over two threads
    return Split(block=block, rows=min(block, 128), group=group, chunk=chunk)


def runs_bu0(tasks: np.ndarray) -> bool:
    """Whether these net tasks run level 0's bottom-up net: after such a step its output
    is kept for the rest of the run."""
    return bool(np.any((tasks[:, 0] == 0) & (tasks[:, 1] == 0)))


class TaskTables:
    """The net tasks of a plan's steps (see ``_kernels.step.step_all``), built once per
    mixing pattern and cached (plans are reused)."""

    def __init__(self, cfg, members: int, split: Split, splits: int, identity: bool):
        self.cfg = cfg
        self.members = members
        self.split = split
        self.splits = splits
        self.identity = identity
        self._schedule_length = cfg.schedule_length
        self._mix: dict[int, np.ndarray] = {}
        self._steps: dict[tuple, tuple] = {}
        self._tasks: dict[tuple, np.ndarray] = {}
        self._schedule = None

    def mix(self, t: int) -> np.ndarray:
        """The (L, 4) float64 mixing weights of step t (cached: constant after the
        schedule, and Python-side work per step showed at ~20% of a small step)."""
        key = min(t, self._schedule_length)
        w = self._mix.get(key)
        if w is None:
            w = self._mix[key] = self.cfg.mix_weights(key)
        return w

    def step(self, t: int, bu0_ready: bool = False, all_on: bool = False) -> tuple:
        """(mix in the run's dtype, net tasks, whether they run level 0's bottom-up net)
        of step t; with ``bu0_ready`` the tasks leave that net out; with ``all_on`` every
        contribution is evaluated (custom rules: the top level still has no top-down)."""
        key = (min(t, self._schedule_length), bu0_ready, all_on)
        hit = self._steps.get(key)
        if hit is None:
            mix = self.mix(t).astype(self.cfg.np_dtype)
            if all_on:
                mix = np.ones_like(mix)
                mix[-1, 1] = 0
            tasks = self.net_tasks(mix, bu0_ready=bu0_ready)
            hit = self._steps[key] = (mix, tasks, runs_bu0(tasks))
        return hit

    def schedule(self) -> Schedule:
        """Mixing weights (S+1, L, 4) of steps 0..S in the run's dtype (constant after the
        schedule's length S), and all their net tasks for a chunk of members with the row
        offsets of each step, then again without level 0's bottom-up net, and whether
        each step's tasks run that net."""
        if self._schedule is None:
            S = self._schedule_length
            mixes = np.stack([self.step(s)[0] for s in range(S + 1)])
            chunked = [
                self.net_tasks(mix, self.split.chunk, bu0_ready=ready)
                for ready in (False, True)
                for mix in mixes
            ]
            task_ptr = np.zeros(2 * S + 3, dtype=np.int64)
            task_ptr[1:] = np.cumsum([len(t) for t in chunked])
            tasks = np.concatenate(chunked).reshape(-1, 5).astype(np.int64)
            has_bu0 = np.array([runs_bu0(t) for t in chunked], dtype=np.bool_)
            self._schedule = Schedule(mixes, tasks, task_ptr, has_bu0)
        return self._schedule

    def net_tasks(self, mix, members: int | None = None, bu0_ready: bool = False):
        """The first loop's tasks for these mixing weights: (net, level, first member,
        first row, hidden chunk) of every net to run (bottom-up where its weight is > 0,
        top-down below the top where its weight is > 0, none for identity nets), and
        (2, level, member, first row, 0) for the norms (and key scales) of every block of
        rows where attention is on, spread evenly among them. With ``bu0_ready``, without
        level 0's bottom-up net (computed by an earlier step of the run: its input is
        constant)."""
        M = self.members if members is None else members
        key = (M, bu0_ready, *(mix > 0).ravel())
        tasks = self._tasks.get(key)
        if tasks is None:
            tasks = self._tasks[key] = self._build(mix, M, bu0_ready)
        return tasks

    def _build(self, mix, M, bu0_ready):
        L, N = self.cfg.levels, self.cfg.n_columns
        group, block, rows = self.split.group, self.split.block, self.split.rows
        nets = [
            (kind, level, g0, r0, s)
            for kind in (0, 1)
            for level in range(L)
            if not self.identity and mix[level, kind] > 0 and (kind == 0 or level < L - 1)
            if not (bu0_ready and kind == 0 and level == 0)
            for g0 in range(0, M, group)
            for r0 in range(0, N, block)
            for s in range(self.splits)
        ]
        keys = [
            (2, level, member, r0, 0)
            for level in range(L)
            if mix[level, 3] > 0
            for member in range(M)
            for r0 in range(0, N, rows)
        ]
        # merge by relative position, so any contiguous share of the loop holds its share
        # of both kinds
        order = sorted(
            [((i + 0.5) / len(nets), 0, i) for i in range(len(nets))]
            + [((j + 0.5) / len(keys), 1, j) for j in range(len(keys))]
        )
        picked = [(nets if kind == 0 else keys)[i] for _, kind, i in order]
        return np.array(picked, dtype=np.int64).reshape(-1, 5)
