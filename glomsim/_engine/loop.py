"""The integration loop: steps a plan from a start state under the runtime's thread
policy, recording what the recorder asks, and stops early once settled."""

from __future__ import annotations

import numpy as np

from ..runtime import stepping
from .custom import custom_step
from .recorders import sum_squares

__all__ = ["integrate", "Diverged"]


class Diverged(Exception):
    """The state became non-finite at ``step``: the first failing ``level`` and
    ``member`` (None for a single run), what was kept before it (``states``, ``times``,
    ``summaries``) and ``what`` describes it. The entry points turn it into
    :class:`glomsim.SimulationDiverged`."""

    def __init__(self, step, level, member, kept, what):
        super().__init__(f"non-finite state at step {step}, level {level}")
        self.step, self.level, self.member = step, level, member
        self.states, self.times, self.summaries = kept
        self.what = what


def integrate(plan, state0, tokens, steps: int, recorder, *, rule=None, settle=None,
              progress=None):  # fmt: skip
    """Step ``plan`` from ``state0`` ((L, N, D), or (M, L, N, D) for M members) and return
    the recorded states, their step indices, the last step computed and the summaries
    (None unless the recorder makes them). ``rule``: a custom rule; ``settle``: stop once
    the RMS change of every level in one step is below it; ``progress``: an object with
    ``update(n)`` and ``close()``. Raises :class:`Diverged`."""
    rec = recorder.start(state0, steps, plan.cfg.top_down_delay)
    members = state0.ndim == 4
    try:
        with stepping(plan.work_per_step(), numpy_blas=rule is not None):
            if rec.in_numba and rule is None and settle is None and progress is None:
                # nothing to do between steps in Python: the whole run is one numba call,
                # so threads go from one step to the next without sleeping (~15% of a
                # small step)
                last = _in_numba(plan, rec, steps, tokens, members)
            else:
                last = _step_by_step(plan, rec, steps, tokens, rule, settle, progress, members)
    finally:
        if progress is not None:
            progress.close()
    states, times, summaries = rec.kept(last)
    return states, times, last, summaries


def _in_numba(plan, rec, steps, tokens, members) -> int:
    failed = plan.run(rec.out, rec.ring, steps, rec.every, tokens)
    last = min(failed - 1, steps)
    rec.after_numba(last)
    if failed <= steps:
        member, level = (int(v) for v in plan.bufs.where)
        raise _diverged(rec, failed, level, member if members else None)
    return last


def _step_by_step(plan, rec, steps, tokens, rule, settle, progress, members) -> int:
    scratch = None  # E_t - E_{t-1}
    if rec.needs_change or settle is not None:
        scratch = np.empty(rec.out.shape[1:], rec.out.dtype)
    size = scratch.shape[-2] * scratch.shape[-1] if scratch is not None else 1
    last = 0
    for t in range(1, steps + 1):
        prev, delayed, new = rec.slots(t)
        if rule is None:
            ok = plan.step(prev, delayed, tokens, t, new)
        else:
            ok = custom_step(plan, prev, delayed, tokens, t, new, rule)
        if not ok:
            # the first failing (member, level): (L,) or (M, L) flags
            finite = np.isfinite(new).all(axis=(-2, -1))
            member, level = (int(v) for v in np.argwhere(~finite.reshape(-1, finite.shape[-1]))[0])
            raise _diverged(rec, t, level, member if members else None)
        last = t
        change = None
        if scratch is not None:
            np.subtract(new, prev, out=scratch)
            change = np.sqrt(sum_squares(scratch) / size)
        settled = settle is not None and bool((change < settle).all())
        rec.after(t, new, change, settled)
        if progress is not None:
            progress.update(1)
        if settled:
            break
    return last


def _diverged(rec, t, level, member) -> Diverged:
    return Diverged(t, level, member, rec.kept(t - 1), rec.describe(t - 1))
