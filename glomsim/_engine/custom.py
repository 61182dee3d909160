"""Custom rules (``simulate(..., rule=...)``) on the same numba contributions as the
built-in rule: the fused step evaluates every contribution of every level and keeps
them, the user's rule combines them per level in Python, and the shared normalisation
primitive finishes each level."""

from __future__ import annotations

import numpy as np

__all__ = ["custom_step"]


def custom_step(plan, prev, delayed, inputs, t: int, out, rule, frame: int = 0) -> bool:
    """E[t] (L, N, D) into ``out`` by ``rule(previous, bottom_up, top_down, attention,
    mix) -> new`` per level; False when it holds a NaN or an infinity. The rule gets
    fresh (columns, dim) arrays (``top_down`` None at the top level) and that level's
    float64 weights of step t."""
    from .._kernels.normalise import normalise_rows
    from .._kernels.step import change_sums_of

    plan.step(prev, delayed, inputs, t, out, keep_att=True, frame=frame)  # ``out`` is overwritten
    L = plan.cfg.levels
    mix = plan.tasks.mix(t)
    att = plan.attention_out()
    for level in range(L):
        bu, td = _nets_out(plan, prev, delayed, inputs, level)
        try:
            new = rule(prev[level].copy(), bu, td, att[level, 0].copy(), mix[level].copy())
        except Exception as exc:
            exc.add_note(f"raised by the rule at step {t}, level {level}")
            raise
        new = np.asarray(new)
        if new.shape != prev[level].shape:
            raise ValueError(
                f"rule returned shape {new.shape} at step {t}, level {level}; expected "
                f"{prev[level].shape} = (columns, dim)"
            )
        out[level] = new
        normalise_rows(out[level], plan.norm)
    # the step's change from the rule's states, not the built-in rule's
    wide = (lambda a: a) if prev.ndim == 4 else (lambda a: a[None])
    change_sums_of(wide(out), wide(prev), plan.split.rows, plan.bufs.change_sums)
    return bool(np.isfinite(out).all())


def _nets_out(plan, prev, delayed, inputs, level):
    """Copies of the bottom-up and top-down contributions of ``level`` (None above the
    top) from the step just run: the nets' outputs in ``netbuf`` (chunks added, biases
    in), or the inputs themselves with identity nets."""
    top = level == plan.cfg.levels - 1
    if plan.identity:
        bu = (inputs if level == 0 else prev[level - 1]).copy()
        td = None if top else delayed[level + 1] + plan.nets.pos[0]
        return bu, td
    netbuf = plan.bufs.netbuf
    return netbuf[0, 0, level, 0].copy(), None if top else netbuf[1, 0, level, 0].copy()
