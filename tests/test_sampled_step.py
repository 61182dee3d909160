"""One whole fused step (step_all) with the mechanisms of issue 13 against the readable
reference, on hypothesis-generated configs: every activation, the contrastive kernel
(thresholds, repulsion, with and without self, local and dense) and sampled
neighbourhoods; float64 within 1e-10, float32 within 1e-4 (relative).

The kernels' arguments are built here as the engine is to build them (see ``fused_step``:
the activation ids in ``Nets.act``, the contrastive parameters in the parameter rows,
each sampled level's lists from :func:`glomsim.neighbours.attention_csr` for (seed,
step, level)), and the oracle step composes the reference's functions with the step and
level of the draw. Also the draw itself: distinct, within the radius, reproducible,
Gaussian-weighted."""

import math

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import glomsim as gs
import glomsim.testing as gt
from glomsim import reference
from glomsim._engine.nets import stacked_nets
from glomsim._engine.split import TaskTables, hidden_splits, work_split
from glomsim._engine.tables import attention_tables, buffers, maths_of, norm_of
from glomsim._kernels import ids
from glomsim._kernels.args import StepTasks
from glomsim._kernels.step import step_all
from glomsim.config import ACTIVATIONS, KERNELS
from glomsim.neighbours import (
    grid_positions,
    neighbour_csr,
    sampled_csr,
    sampling_attrs,
    within_radius,
)

TOL = {"float64": 1e-10, "float32": 1e-4}


def rel(a, b):
    b = np.asarray(b, np.float64)
    return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1.0)


def tables_at(cfg, t):
    """The attention tables of step t (the engine's builder): the contrastive parameters
    in each row, and each sampled level's own lists (on the local path)."""
    return attention_tables(cfg, step=t)


def fused_step(cfg, w, prev, delayed, inputs, t):
    """E[t] by step_all from E[t-1] ``prev`` and E[t-d] ``delayed`` (L, N, D)."""
    dt = cfg.np_dtype
    splits = hidden_splits(cfg.n_columns, cfg.hidden_width)
    split = work_split(cfg, 1, True, prev.nbytes)
    mix, tasks, _ = TaskTables(cfg, 1, split, splits, w.identity).step(t)
    act = np.array([ids.ACTIVATION_IDS[cfg.bottom_up_activation],
                    ids.ACTIVATION_IDS[cfg.top_down_activation]], dtype=np.int64)  # fmt: skip
    nets = stacked_nets((w,), dt, splits)._replace(act=act)
    out = np.empty_like(prev)[None]
    step_all(prev[None], delayed[None], inputs[None], out, StepTasks(mix, tasks, False), nets,
             tables_at(cfg, t), norm_of(cfg), maths_of(dt), split,
             buffers(cfg, 1, split, splits, w.identity))  # fmt: skip
    return out[0]


def oracle_step(cfg, w, prev, delayed, inputs, t):
    """E[t] by the reference's functions: nets with the config's activations, attention
    over the neighbourhood drawn for (cfg.seed, t, level)."""
    dt = cfg.np_dtype
    W = {k: v.astype(dt) for k, v in w.arrays().items()}
    positions = cfg.position_array()
    mix = cfg.mix_weights(t)
    new = np.empty_like(prev)

    def net(prefix, level, x, activation):
        if w.identity:
            return x
        arrays = [W[f"{prefix}_{k}"][level] for k in ("w1", "b1", "w2", "b2")]
        return reference.mlp(x, *arrays, activation=activation)

    for level in range(cfg.levels):
        w_bu, w_td, w_prev, w_att = (dt.type(v) for v in mix[level])
        parts = [(w_prev, prev[level])]
        if w_bu > 0:
            below = inputs if level == 0 else prev[level - 1]
            parts.append((w_bu, net("bu", level, below, cfg.bottom_up_activation)))
        if level < cfg.levels - 1 and w_td > 0:
            above = delayed[level + 1] + W["pos_code"]
            parts.append((w_td, net("td", level, above, cfg.top_down_activation)))
        if w_att > 0:
            att = cfg.attention_at(level)
            where = dict(seed=cfg.seed, step=t, level=level)
            parts.append((w_att, reference.attention(prev[level], positions, att, **where)))
        parts = [(m, c) for m, c in parts if m > 0]
        acc = sum(m * c for m, c in parts)
        new[level] = reference.normalize(acc / sum(m for m, _ in parts), cfg.normalize)
    return new


def _states(cfg, seed):
    rng = np.random.default_rng(seed)
    state = rng.standard_normal((cfg.levels, cfg.n_columns, cfg.dim))
    delayed = rng.standard_normal((cfg.levels, cfg.n_columns, cfg.dim))
    inputs = rng.standard_normal((cfg.n_columns, cfg.dim))
    return state, delayed, inputs


MECHANISMS = gt.attentions(kernels=KERNELS, samples=[None, None, 1, 2, 4],
                           radii=(1.0, 1.5, 2.5, math.inf))  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@settings(max_examples=40)
@given(data=st.data())
def test_fused_step_equals_the_reference(dtype, data):
    space = gt.configs(dtypes=(dtype,), attention=MECHANISMS, max_side=5,
                       normalizations=("none", "layernorm"))  # fmt: skip
    cfg = data.draw(gt.with_activations(space, activations=ACTIVATIONS))
    w = data.draw(gt.weights_for(cfg))
    t = data.draw(st.integers(1, 6))
    given = [a.astype(dtype) for a in _states(cfg, data.draw(st.integers(0, 2**16)))]
    note(repr(cfg))
    got = fused_step(cfg, w, *given, t)
    # the spec in float64 from the same (rounded) values
    want = oracle_step(cfg.replace(dtype="float64"), w, *(a.astype(np.float64) for a in given), t)
    assert got.dtype == np.dtype(dtype)
    assert rel(got, want) < TOL[dtype]


def test_the_oracle_is_reference_step_without_the_mechanisms():
    """With GELU nets and no sampling the oracle is reference.step itself."""
    cfg = gs.GlomConfig(levels=3, dim=5, grid=(3, 4), dtype="float64", top_down_delay=2,
                        attention=gs.Attention(kernel="cosine", radius=1.5),
                        mix=gs.Mix(previous=0.5))  # fmt: skip
    w = gs.random_weights(cfg, seed=2)
    state, delayed, inputs = _states(cfg, 3)
    want = reference.step(cfg, w, [delayed, state], inputs, 2)
    assert rel(oracle_step(cfg, w, state, delayed, inputs, 2), want) < 1e-13


# ----- the draw --------------------------------------------------------------------------
def _draw(att, grid=(6, 6), seed=0, step=1, level=0):
    return sampled_csr(grid_positions(*grid), att, seed=seed, step=step,
                       level=level)  # fmt: skip


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("radius", [1.0, 2.5, math.inf])
def test_each_column_draws_k_distinct_others_within_the_radius(include_self, radius):
    att = gs.Attention(sample=3, sample_width=1.5, radius=radius, include_self=include_self)
    pos = grid_positions(6, 6)
    indptr, indices = _draw(att)
    ball = within_radius(pos, radius)
    for i in range(36):
        got = indices[indptr[i] : indptr[i + 1]]
        others = got[got != i]
        assert len(set(others.tolist())) == len(others) == min(3, int(ball[i].sum()) - 1)
        assert ball[i, others].all()
        assert (i in got) == include_self
        assert np.all(np.diff(got) > 0)  # sorted by j


def test_the_draw_depends_on_seed_step_and_level_only():
    att = gs.Attention(sample=2, radius=2.0)
    a = _draw(att)
    assert all(np.array_equal(x, y) for x, y in zip(a, _draw(att), strict=True))
    for other in (dict(seed=1), dict(step=2), dict(level=1)):
        assert not np.array_equal(a[1], _draw(att, **other)[1])


def test_a_narrow_width_draws_near_columns_and_inf_draws_uniformly():
    """Frequencies over many steps follow exp(-d^2 / (2 s^2)) among a column's ball."""
    pos = grid_positions(1, 9)
    counts = {}
    for width in (0.7, math.inf):
        att = gs.Attention(sample=1, sample_width=width, radius=4.0, include_self=False)
        c = np.zeros(9)
        for step in range(1, 4001):
            indptr, indices = sampled_csr(pos, att, seed=5, step=step, level=0)
            c[indices[indptr[4] : indptr[5]]] += 1
        counts[width] = c / c.sum()
    d = np.abs(np.arange(9) - 4.0)
    p = np.where(d > 0, np.exp(-(d**2) / (2 * 0.7**2)), 0)
    assert np.abs(counts[0.7] - p / p.sum()).max() < 0.03
    assert np.abs(counts[math.inf] - np.where(d > 0, 1 / 8, 0)).max() < 0.03


def test_more_samples_than_the_ball_keeps_the_whole_ball():
    att = gs.Attention(sample=50, radius=1.5)
    pos = grid_positions(4, 4)
    full = neighbour_csr(pos, att)
    got = sampled_csr(pos, att, seed=0, step=9, level=2)
    assert all(np.array_equal(x, y) for x, y in zip(full, got, strict=True))


def test_sampling_is_recorded_and_refused_where_it_cannot_be_drawn():
    cfg = gs.GlomConfig(levels=2, dim=2, grid=(2, 2), attention=gs.Attention(sample=1), seed=3)
    attrs = sampling_attrs(cfg)
    assert (
        attrs["sampling_seed"] == 3
        and "default_rng((seed, t, l))" in attrs["sampled_neighbourhoods"]
    )
    assert sampling_attrs(cfg.replace(attention=gs.Attention())) == {}
    with pytest.raises(ValueError, match="seed=-1"):
        cfg.replace(seed=-1)
    with pytest.raises(ValueError, match="give seed=, step= and level="):
        reference.attention(np.ones((4, 2)), cfg.position_array(), gs.Attention(sample=1))
