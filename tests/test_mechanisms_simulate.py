"""Issue 13's mechanisms through ``glomsim.simulate``, against the readable reference
(``glomsim.reference.simulate``): every activation of both nets and the contrastive
kernel (thresholds, repulsion, with and without self, local and global), in one numba
call, step by step from Python (``stop_when_settled``) and through a custom rule;
sampled neighbourhoods continued, thinned and with frames. float64 within 1e-10, float32
within 1e-4 (relative, against the reference in float64)."""

import math

import numpy as np
import pytest

import glomsim as gs
from glomsim import reference

TOL = {"float64": 1e-10, "float32": 1e-4}
#: never reached in a few steps: the run goes step by step from Python to the end
NEVER = 1e-300


def rel(a, b):
    b = np.asarray(b, np.float64)
    return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1.0)


def blend(prev, bu, td, att, mix):
    """A custom rule that is not the weighted average (attention counted twice)."""
    out = 0.5 * prev + 0.3 * bu + 0.4 * att + 0.4 * att
    return out if td is None else out + 0.2 * td


def run_both(cfg, path, *, weights=None, steps=None):
    """(simulate's embedding, the float64 reference's) for one config and path."""
    w = gs.random_weights(cfg, seed=3) if weights is None else weights
    rng = np.random.default_rng(5)
    shape = (cfg.levels, cfg.n_columns, cfg.dim)
    init = rng.standard_normal(shape).astype(cfg.dtype)
    inputs = rng.standard_normal(shape[1:]).astype(cfg.dtype)
    kw = dict(stop_when_settled=NEVER) if path == "stepwise" else {}
    rule = blend if path == "rule" else None
    ds = gs.simulate(cfg, w, inputs=inputs, init=init, rule=rule, steps=steps, **kw)
    want = reference.simulate(cfg.replace(dtype="float64"), w, inputs.astype(np.float64),
                              init.astype(np.float64), steps, rule=rule)  # fmt: skip
    assert ds.embedding.shape == want.shape
    return ds.embedding.values, want


PATHS = ["numba", "stepwise", "rule"]
ACTS = [("relu", "relu"), ("sin", "sin"), ("gelu", "sin"), ("relu", "gelu")]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bottom_up,top_down", ACTS)
def test_every_activation_equals_the_reference(bottom_up, top_down, dtype, path):
    cfg = gs.GlomConfig(levels=3, dim=8, grid=(4, 5), steps=5, dtype=dtype, top_down_delay=2,
                        normalize="layernorm", bottom_up_activation=bottom_up,
                        top_down_activation=top_down)  # fmt: skip
    got, want = run_both(cfg, path)
    assert rel(got, want) < TOL[dtype]


def test_an_activation_changes_the_run_and_plans_never_mix_them():
    """relu and sin runs differ from the gelu run of the same weights (each equal to its
    reference), and a gelu run after them, from the same plan pool and nets cache, is
    the first gelu run bit for bit."""
    base = gs.GlomConfig(levels=2, dim=6, grid=(3, 4), steps=4, dtype="float64")
    w = gs.random_weights(base, seed=1)
    first, _ = run_both(base, "numba", weights=w)
    for act in ("relu", "sin"):
        cfg = base.replace(bottom_up_activation=act, top_down_activation=act)
        got, want = run_both(cfg, "numba", weights=w)
        assert rel(got, want) < 1e-10
        assert rel(got, first) > 1e-3
    again, _ = run_both(base, "numba", weights=w)
    np.testing.assert_array_equal(again, first)


CONTRASTIVE = {
    "local-self": dict(radius=1.5, include_self=True, threshold=0.3, repulsion=0.5),
    "local-noself": dict(radius=2.0, include_self=False, threshold=-0.2, repulsion=2.0),
    "global-self": dict(include_self=True, threshold=0.5, repulsion=1.0),
    "global-noself": dict(include_self=False, threshold=0.0, repulsion=0.25),
    "no-repulsion": dict(radius=1.0, threshold=0.6, repulsion=0.0),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CONTRASTIVE))
def test_the_contrastive_kernel_equals_the_reference(case, dtype, path):
    att = gs.Attention(kernel="contrastive", beta=2.0, **CONTRASTIVE[case])
    cfg = gs.GlomConfig(levels=2, dim=6, grid=(4, 4), steps=5, dtype=dtype, attention=att,
                        mix=gs.Mix(attention=2.0), normalize="l2")  # fmt: skip
    got, want = run_both(cfg, path)
    assert rel(got, want) < TOL[dtype]


def test_threshold_and_repulsion_reach_the_kernel():
    """A non-default threshold and repulsion change the run (they used to run the
    defaults), and with repulsion 0 and threshold -1 it is the cosine kernel's run."""

    def run(**kw):
        cfg = gs.GlomConfig(levels=2, dim=6, grid=(4, 4), steps=4, dtype="float64",
                            attention=gs.Attention(beta=2.0, radius=1.5, **kw))  # fmt: skip
        return run_both(cfg, "numba")[0]

    default = run(kernel="contrastive")
    assert rel(run(kernel="contrastive", threshold=0.5, repulsion=0.3), default) > 1e-3
    cosine = run(kernel="cosine")
    assert rel(run(kernel="contrastive", threshold=-1.0, repulsion=0.0), cosine) < 1e-12


SAMPLED = (gs.Attention(sample=2, sample_width=1.0), gs.Attention(kernel="contrastive",
           sample=3, radius=2.5, threshold=0.2), gs.Attention(sample=1, include_self=False))  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampled_levels_equal_the_reference(dtype, path):
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 5), steps=5, dtype=dtype, attention=SAMPLED,
                        top_down_delay=2, seed=7)  # fmt: skip
    got, want = run_both(cfg, path)
    assert rel(got, want) < TOL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("delay", [1, 2])
def test_a_continued_sampled_run_is_the_one_long_run(delay, dtype):
    """m steps, then n more from the result, draw as one (m + n)-step run: bit for bit."""
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 5), steps=7, dtype=dtype, attention=SAMPLED,
                        top_down_delay=delay, seed=2)  # fmt: skip
    w = gs.random_weights(cfg, seed=0)
    inputs = np.random.default_rng(1).standard_normal((20, 6)).astype(dtype)
    whole = gs.simulate(cfg, w, inputs=inputs)
    part = gs.simulate(cfg, w, inputs=inputs, steps=3)
    more = gs.simulate(cfg, w, inputs=inputs, init=part, steps=4)
    np.testing.assert_array_equal(more.time.values, whole.time.values[3:])
    np.testing.assert_array_equal(more.embedding.values, whole.embedding.values[3:])


def test_sampled_runs_with_frames_thinned_and_summarised():
    """Frames read as the reference reads them; ``record_every`` keeps the same states
    and ``summaries_only`` the same last state and per-step change."""
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 5), steps=6, dtype="float64",
                        attention=SAMPLED, seed=3)  # fmt: skip
    w = gs.random_weights(cfg, seed=0)
    rng = np.random.default_rng(4)
    frames = rng.standard_normal((3, 20, 6))
    init = rng.standard_normal((3, 20, 6))
    ds = gs.simulate(cfg, w, frames=frames, steps_per_frame=2, init=init)
    want = reference.simulate(cfg, w, frames, init, steps_per_frame=2)
    assert rel(ds.embedding.values, want) < 1e-10
    thin = gs.simulate(cfg, w, frames=frames, steps_per_frame=2, init=init, record_every=3)
    np.testing.assert_array_equal(thin.embedding.values, ds.embedding.sel(time=thin.time).values)
    summary = gs.simulate(cfg, w, frames=frames, steps_per_frame=2, init=init,
                          summaries_only=True)  # fmt: skip
    np.testing.assert_array_equal(summary.embedding.values[-1], ds.embedding.values[-1])
    np.testing.assert_array_equal(summary.change.values, ds.change.values)


def test_sampling_attrs_only_where_a_level_samples():
    cfg = gs.GlomConfig(levels=2, dim=2, grid=(3, 3), steps=2, seed=9)
    plain = gs.simulate(cfg, gs.identity_weights(cfg))
    assert "sampled_neighbourhoods" not in plain.attrs and "sampling_seed" not in plain.attrs
    top = cfg.replace(attention=(gs.Attention(), gs.Attention(sample=2, sample_width=math.inf)))
    ds = gs.simulate(top, gs.identity_weights(top))
    assert ds.attrs["sampling_seed"] == 9
    assert "gumbel" in ds.attrs["sampled_neighbourhoods"]


def test_sampled_ensemble_members_equal_their_single_runs():
    """Members share the config, so they share its draws: each is its own simulate."""
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 4), steps=4, dtype="float64",
                        attention=gs.Attention(sample=2, sample_width=1.5), seed=5)  # fmt: skip
    w = gs.random_weights(cfg, seed=0)
    inputs = np.random.default_rng(0).standard_normal((3, 12, 4))
    ens = gs.simulate_ensemble(cfg, w, inputs=inputs)
    for m in range(3):
        one = gs.simulate(cfg, w, inputs=inputs[m], init=ens.embedding.values[m, 0])
        np.testing.assert_allclose(ens.embedding.values[m], one.embedding.values, rtol=0,
                                   atol=1e-12)  # fmt: skip
