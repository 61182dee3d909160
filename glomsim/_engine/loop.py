"""The integration loop: steps a plan from a start state under the runtime's thread
policy, recording what the recorder asks, and stops early once settled."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..runtime import stepping
from .custom import custom_step

__all__ = ["integrate", "Diverged", "Result"]


class Result(NamedTuple):
    """What a run kept: the recorded ``states`` and their ``times`` (the steps' own
    indices), the ``last`` local step computed, the per-step ``summaries`` (``change``
    always; ``rms`` too for summaries-only runs) and the delay's ``history`` at the last
    step where the records lack it (None otherwise)."""

    states: np.ndarray
    times: list
    last: int
    summaries: dict
    history: np.ndarray | None
    summaries_only: bool = False


class Diverged(Exception):
    """The state became non-finite at ``step``: the first failing ``level`` and
    ``member`` (None for a single run), what was kept before it (``kept``, a
    :class:`Result`) and ``what`` describes it. The entry points turn it into
    :class:`glomsim.SimulationDiverged`."""

    def __init__(self, step, level, member, kept, what):
        super().__init__(f"non-finite state at step {step}, level {level}")
        self.step, self.level, self.member = step, level, member
        self.kept = kept
        self.what = what


def integrate(plan, start, tokens, steps: int, recorder, *, per_frame: int = 1, rule=None,
              settle=None, progress=None):  # fmt: skip
    """Step ``plan`` ``steps`` times from ``start`` (a :class:`glomsim.inputs.Start`:
    E[t0] (L, N, D), or (M, L, N, D) for M members, and the delay's history) and return
    a :class:`Result`. ``tokens``: the frames of level 0's input, frame first, (F, N, D)
    or (F, M, N, D) (F = 1: a static input); step t reads frame min((t - 1) //
    ``per_frame``, F - 1). ``rule``: a custom rule; ``settle``: stop once the RMS change
    of every level in one step is below it; ``progress``: an object with ``update(n)``
    and ``close()``. Raises :class:`Diverged`."""
    rec = recorder.start(start, steps, plan.cfg.top_down_delay)
    if settle is None:  # every record will be written (unless the run diverges)
        rec.prefault()
    members = start.state0.ndim == 4
    plan.begin()
    try:
        with stepping(plan.work_per_step(), numpy_blas=rule is not None):
            between = rule is not None or settle is not None or progress is not None
            if rec.in_numba and not between and not plan.sampled:
                # nothing to do between steps in Python: the whole run is one numba call,
                # so threads go from one step to the next without sleeping (~15% of a
                # small step); sampled levels redraw their lists every step, in Python
                last = _in_numba(plan, rec, steps, tokens, per_frame, members)
            else:
                last = _step_by_step(plan, rec, steps, tokens, per_frame, rule, settle,
                                     progress, members)  # fmt: skip
    finally:
        if progress is not None:
            progress.close()
    return Result(*_kept(rec, last))


def _kept(rec, upto):
    states, times, summaries, history = rec.kept(upto)
    return states, times, upto, summaries, history, rec.summaries_only


def _in_numba(plan, rec, steps, tokens, per_frame, members) -> int:
    failed = plan.run(rec, steps, tokens, per_frame)
    last = min(failed - 1, steps)
    rec.after_numba(last)
    if failed <= steps:
        member, level = (int(v) for v in plan.bufs.where)
        raise _diverged(rec, failed, level, member if members else None)
    return last


def _step_by_step(plan, rec, steps, tokens, per_frame, rule, settle, progress, members):
    F = tokens.shape[0]
    t0 = rec.t0
    last = 0
    for t in range(1, steps + 1):
        prev, delayed, new = rec.slots(t)
        step = t0 + t
        frame = min((step - 1) // per_frame, F - 1)
        if rule is None:
            ok = plan.step(prev, delayed, tokens[frame], step, new, frame=frame)
        else:
            ok = custom_step(plan, prev, delayed, tokens[frame], step, new, rule, frame=frame)
        if not ok:
            # the first failing (member, level): (L,) or (M, L) flags
            finite = np.isfinite(new).all(axis=(-2, -1))
            member, level = (int(v) for v in np.argwhere(~finite.reshape(-1, finite.shape[-1]))[0])
            raise _diverged(rec, t, level, member if members else None)
        last = t
        change, rms = plan.last_change(prev.ndim == 4)
        settled = settle is not None and bool((change < settle).all())
        rec.after(t, new, change, rms, settled)
        if progress is not None:
            progress.update(1)
        if settled:
            break
    return last


def _diverged(rec, t, level, member) -> Diverged:
    return Diverged(rec.t0 + t, level, member, Result(*_kept(rec, t - 1)), rec.describe(t - 1))
