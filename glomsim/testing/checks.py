"""Invariant checks for the built-in update rule or a user's rule.

Each check runs steps through :func:`glomsim.simulate` (so a user ``rule`` goes through
exactly the path a real run takes) and raises ``AssertionError`` naming what broke.

What the mechanisms of issue 13 do to the invariants:

- the contrastive kernel with ``repulsion > 0``: its attention contribution leaves the
  convex hull of the neighbours' states (it pushes away); the update is still a convex
  combination of its four contributions, which is what
  :func:`check_convex_combination` checks, and agreement is still a fixed point (all
  cosines are 1, so nobody is pushed);
- sampled neighbourhoods: drawn in column order, so relabelling columns changes the
  draws and the permutation invariant holds only in distribution;
  :func:`check_permutation_equivariance` refuses such configs with a ValueError. The
  other checks hold (a step's draw depends on (seed, step, level) only);
- the nets' activations change nothing here (the checks that need it use identity nets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import GlomConfig
from ..weights import GlomWeights

__all__ = [
    "Case",
    "run_one_step",
    "check_convex_combination",
    "check_permutation_equivariance",
    "check_consensus_fixed_point",
    "check_finite_and_deterministic",
]


@dataclass(frozen=True)
class Case:
    """A config, weights, level-0 inputs (N, D) and a state (L, N, D) to step from."""

    cfg: GlomConfig
    weights: GlomWeights
    inputs: np.ndarray
    state: np.ndarray


def _tol(cfg):
    return 1e-10 if cfg.dtype == "float64" else 1e-4


def run_one_step(case: Case, *, rule=None, steps: int = 1) -> np.ndarray:
    """The states after ``steps`` steps from ``case.state``, shape (steps + 1, L, N, D)."""
    from ..simulation import simulate

    ds = simulate(
        case.cfg, case.weights, inputs=case.inputs, init=case.state, steps=steps, rule=rule
    )
    return ds["embedding"].values


def _contributions(case: Case):
    """Per level, the (N, D) contributions a step combines (identity nets assumed)."""
    from ..reference import attention

    cfg, w, x = case.cfg, case.weights, case.state
    positions = cfg.position_array()
    out = []
    for level in range(cfg.levels):
        below = case.inputs if level == 0 else x[level - 1]
        att = attention(x[level], positions, cfg.attention_at(level), seed=cfg.seed, step=1,
                        level=level)  # fmt: skip
        items = [below, x[level], att]
        if level < cfg.levels - 1:
            items.append(x[level + 1] + w.pos_code.astype(x.dtype))
        out.append(items)
    return out


def check_convex_combination(case: Case, *, rule=None) -> None:
    """With identity nets and positive weights (normalize="none"), every new embedding lies
    in the convex hull of its contributions: checked per feature as
    min(contributions) <= new <= max(contributions), and the new state's norm is at most the
    largest contribution norm."""
    if not case.weights.identity:
        raise ValueError("check_convex_combination needs identity weights (identity_weights(cfg))")
    if case.cfg.normalize != "none":
        raise ValueError("check_convex_combination needs normalize='none'")
    new = run_one_step(case, rule=rule)[1]
    tol = _tol(case.cfg)
    for level, items in enumerate(_contributions(case)):
        stack = np.stack(items)  # (k, N, D)
        scale = max(float(np.abs(stack).max()), 1.0)
        lo = stack.min(axis=0) - tol * scale
        hi = stack.max(axis=0) + tol * scale
        bad = (new[level] < lo) | (new[level] > hi)
        if bad.any():
            col, feat = np.argwhere(bad)[0]
            raise AssertionError(
                f"level {level}, column {col}, feature {feat}: new value {new[level][col, feat]!r} "
                f"is outside the range of its contributions [{lo[col, feat]!r}, {hi[col, feat]!r}]"
            )
        norms = np.sqrt((stack**2).sum(-1)).max(axis=0)
        new_norm = np.sqrt((new[level] ** 2).sum(-1))
        if (new_norm > norms + tol * scale).any():
            col = int(np.argmax(new_norm - norms))
            raise AssertionError(
                f"level {level}, column {col}: the new norm {new_norm[col]!r} exceeds the "
                f"largest contribution norm {norms[col]!r}"
            )


def check_permutation_equivariance(case: Case, *, rule=None, seed: int = 0, steps: int = 2):
    """Relabelling columns together with their positions, positional codes and inputs
    permutes the result the same way (not for sampled neighbourhoods: a ValueError)."""
    cfg, w = case.cfg, case.weights
    sampled = [lv for lv in range(cfg.levels) if cfg.attention_at(lv).sample is not None]
    if sampled:
        raise ValueError(
            f"check_permutation_equivariance: level {sampled[0]} samples its neighbourhoods "
            "(attention.sample), drawn in column order, so relabelling columns changes the "
            "draws; give configs with attention.sample=None"
        )
    perm = np.random.default_rng(seed).permutation(cfg.n_columns)
    pos = cfg.position_array()[perm]
    cfg_p = cfg.replace(grid=None, positions=tuple(map(tuple, pos)))
    w_p = replace(w, pos_code=w.pos_code[perm], meta=dict(w.meta))
    case_p = Case(cfg_p, w_p, case.inputs[perm], case.state[:, perm])
    a = run_one_step(case, rule=rule, steps=steps)
    b = run_one_step(case_p, rule=rule, steps=steps)
    expect = a[:, :, perm]
    err = np.abs(b - expect).max() / max(np.abs(expect).max(), 1.0)
    if not err <= _tol(cfg) * 10:
        raise AssertionError(
            f"permuting columns with their positions changed the result beyond a permutation: "
            f"relative error {err:.3g} (permutation {perm.tolist()})"
        )


def check_consensus_fixed_point(case: Case, *, rule=None, steps: int = 3):
    """Pure consensus (bottom_up = top_down = 0, normalize="none"): a state where all
    columns agree at every level is a fixed point."""
    cfg = case.cfg
    for level in range(cfg.levels):
        m = cfg.mix_at(level)
        for step in range(1, steps + 1):
            bu, td, _, _ = m.at(step)
            if bu != 0 or (level < cfg.levels - 1 and td != 0):
                raise ValueError(
                    "check_consensus_fixed_point needs pure consensus: mix bottom_up=0 and top_down=0"
                )
    if cfg.normalize != "none":
        raise ValueError("check_consensus_fixed_point needs normalize='none'")
    agreed = np.ascontiguousarray(
        np.broadcast_to(case.state[:, :1, :], case.state.shape), dtype=case.state.dtype
    )
    out = run_one_step(Case(cfg, case.weights, case.inputs, agreed), rule=rule, steps=steps)
    err = np.abs(out - agreed[None]).max() / max(np.abs(agreed).max(), 1.0)
    if not err <= _tol(cfg):
        raise AssertionError(
            f"a state where all columns agree moved by {err:.3g} (relative) under pure consensus"
        )


def check_finite_and_deterministic(case: Case, *, rule=None, steps: int = 3):
    """Two runs from the same case give bit-identical, finite results."""
    a = run_one_step(case, rule=rule, steps=steps)
    b = run_one_step(case, rule=rule, steps=steps)
    if not np.all(np.isfinite(a)):
        raise AssertionError("the result contains NaN or inf")
    if not np.array_equal(a, b):
        raise AssertionError(
            f"two identical runs differ (max difference {np.abs(a - b).max():.3g})"
        )
