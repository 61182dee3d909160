"""Frames: ``simulate(cfg, w, frames=F, steps_per_frame=k)``. Step t >= 1 feeds level 0
frame min((t - 1) // k, F - 1); level 0's bottom-up net runs again on each new frame.
The numba path equals the reference (which runs every net every step) on generated
configs; frames that all equal a static input give the static run bit for bit."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import glomsim as gs
import glomsim.testing as gt
from glomsim import reference


def _rel(a, b):
    return np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1.0)


def _cfg(**kw):
    base = dict(levels=3, dim=6, grid=(3, 4), steps=9, dtype="float64",
                attention=gs.Attention(kernel="cosine", radius=1.5))  # fmt: skip
    base.update(kw)
    return gs.GlomConfig(**base)


class _Meter:
    def update(self, n):
        pass

    def close(self):
        pass


def _frames(cfg, n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, cfg.n_columns, cfg.dim))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@given(data=st.data())
def test_numba_equals_reference_with_frames(dtype, tol, data):
    cfg = data.draw(gt.configs(dtypes=(dtype,), steps=(1, 7)))
    w = data.draw(gt.weights_for(cfg))
    init = data.draw(gt.states(cfg, scale=1.0))
    n = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(1, 3))
    frames = np.stack([data.draw(gt.states(cfg, scale=1.0))[0] for _ in range(n)])
    if cfg.normalize == "l2":  # break exact ties, as in test_equivalence
        rng = np.random.default_rng(0)
        init = init + (1e-3 * rng.standard_normal(init.shape)).astype(init.dtype)
        frames = frames + (1e-3 * rng.standard_normal(frames.shape)).astype(frames.dtype)
    note(f"{cfg!r}, {n} frames, {k} steps each")
    ds = gs.simulate(cfg, w, frames=frames, steps_per_frame=k, init=init)
    want = reference.simulate(cfg, w, frames, init, steps_per_frame=k)
    assert _rel(ds.embedding.values, want) < tol
    # the step by step path (a progress meter runs it) computes the same states
    slow = gs.simulate(cfg, w, frames=frames, steps_per_frame=k, init=init, progress=_Meter())
    np.testing.assert_array_equal(slow.embedding.values, ds.embedding.values)


@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("delay", [1, 2])
def test_frames_equal_to_a_static_input_give_the_static_run_bit_for_bit(identity, delay):
    cfg = _cfg(dtype="float32", top_down_delay=delay, dim=128, grid=(4, 4))  # nets cut in two
    w = gs.identity_weights(cfg) if identity else gs.random_weights(cfg, seed=1)
    u = _frames(cfg, 1)[0]
    static = gs.simulate(cfg, w, inputs=u)
    for k in (1, 2, 5):
        framed = gs.simulate(cfg, w, frames=np.stack([u] * 3), steps_per_frame=k)
        np.testing.assert_array_equal(framed.embedding.values, static.embedding.values)
        np.testing.assert_array_equal(framed.change.values, static.change.values)


def test_level0_bottom_up_net_runs_again_on_a_new_frame():
    """Two very different frames: a run that kept the first frame's bottom-up output
    would differ from the reference from the first step of the second frame on."""
    cfg = _cfg(steps=8)
    w = gs.random_weights(cfg, seed=2)
    frames = _frames(cfg, 2, seed=3) * np.array([1.0, 5.0])[:, None, None]
    ds = gs.simulate(cfg, w, frames=frames, steps_per_frame=3)
    want = reference.simulate(cfg, w, frames, ds.embedding.values[0], steps_per_frame=3)
    assert _rel(ds.embedding.values, want) < 1e-10
    # and the second frame matters: it is not the run on the first frame alone
    alone = gs.simulate(cfg, w, inputs=frames[0])
    assert np.abs(ds.embedding.values[4:] - alone.embedding.values[4:]).max() > 1e-3
    np.testing.assert_array_equal(ds.embedding.values[:4], alone.embedding.values[:4])


def test_dataset_holds_the_frames_and_the_frame_each_step_read():
    cfg = _cfg(steps=7)
    frames = _frames(cfg, 3)
    ds = gs.simulate(cfg, gs.random_weights(cfg, seed=0), frames=frames, steps_per_frame=2,
                     record_every=3)  # fmt: skip
    assert ds.input.dims == ("frame", "column", "feature")
    np.testing.assert_array_equal(ds.input.values, frames)
    assert [int(t) for t in ds.time] == [0, 3, 6, 7]
    # step t reads frame min((t - 1) // 2, 2): 0 at step 0, then 1, 2, 2
    assert [int(f) for f in ds.frame] == [0, 1, 2, 2]
    assert ds.frame.dims == ("time",)
    assert ds.attrs["steps_per_frame"] == 2
    assert ds.change.sizes["step"] == 8  # every step's change, though thinned


def test_a_movie_gives_its_labels_and_images_go_through_the_patch_embedding():
    cfg = _cfg(grid=(2, 3), levels=2)
    w = gs.random_weights(cfg, seed=0, patch_size=2, channels=1)
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 1, 4, 6))
    labels = rng.integers(0, 3, size=(4, 3, cfg.n_columns))  # a movie of 3 levels
    movie = SimpleNamespace(tokens=rng.standard_normal((4, 6, 6)), images=images, labels=labels)
    ds = gs.simulate(cfg, w, frames=movie, steps_per_frame=2)
    assert ds.label.dims == ("frame", "level", "column")
    np.testing.assert_array_equal(ds.label.values, labels[:, :2])
    embedded = np.stack([reference.patch_tokens(im, w) for im in images])
    np.testing.assert_allclose(ds.input.values, embedded, rtol=1e-12)
    same = gs.simulate(cfg, w, frames=images, steps_per_frame=2)
    np.testing.assert_array_equal(same.embedding.values, ds.embedding.values)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_summaries_only_and_ensembles_with_frames(dtype):
    cfg = _cfg(dtype=dtype, top_down_delay=2)
    w = gs.random_weights(cfg, seed=4)
    per_member = [_frames(cfg, 3, seed=m) for m in range(3)]
    full = [gs.simulate(cfg, w, frames=f, steps_per_frame=2) for f in per_member]
    small = gs.simulate(cfg, w, frames=per_member[0], steps_per_frame=2, summaries_only=True)
    np.testing.assert_array_equal(small.embedding.values[-1], full[0].embedding.values[-1])
    assert [int(f) for f in small.frame] == [0, 2]
    np.testing.assert_array_equal(small.change.values, full[0].change.values)
    ens = gs.simulate_ensemble(cfg, w, frames=np.stack(per_member), steps_per_frame=2)
    assert ens.input.dims == ("member", "frame", "column", "feature")
    tol = 0 if dtype == "float64" else 1e-5
    for m in range(3):
        assert _rel(ens.embedding.values[m], full[m].embedding.values) <= tol


def test_stop_when_settled_with_frames_waits_for_the_last_frame():
    """A run on frames that settles on each: it cannot have settled before the last
    frame is shown, since the new frame moves level 0."""
    cfg = _cfg(steps=400, mix=gs.Mix(top_down=0), attention=gs.Attention(beta=0.0, radius=1.0))
    w = gs.identity_weights(cfg)
    frames = np.stack([np.ones((cfg.n_columns, cfg.dim)) * v for v in (1.0, 2.0)])
    ds = gs.simulate(cfg, w, frames=frames, steps_per_frame=50, stop_when_settled=1e-9)
    last = int(ds.time[-1])
    assert 50 < last < 400
    assert int(ds.frame[-1]) == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(inputs=np.zeros((12, 6)), frames=np.zeros((2, 12, 6))), "inputs and frames"),
        (dict(steps_per_frame=2), "steps_per_frame=2 without frames"),
        (dict(frames=np.zeros((2, 12, 6)), steps_per_frame=0), "steps_per_frame=0"),
        (dict(frames=np.zeros((2, 12, 5))), r"frames has shape \(2, 12, 5\)"),
        (dict(frames=np.zeros((0, 12, 6))), "no frame"),
        (dict(frames=np.full((2, 12, 6), np.nan)), "frames contains NaN"),
    ],
)
def test_bad_frames_are_named(kwargs, match):
    cfg = _cfg(grid=(3, 4))
    with pytest.raises((ValueError, TypeError), match=match):
        gs.simulate(cfg, gs.random_weights(cfg, seed=0), **kwargs)


@given(data=st.data())
def test_the_public_frames_strategy_drives_numba_and_the_reference_alike(data):
    """glomsim.testing.frames_for: what users property-test frames runs with."""
    cfg = data.draw(gt.with_activations(gt.configs(dtypes=("float64",), steps=(1, 6))))
    w = data.draw(gt.weights_for(cfg))
    drawn = data.draw(gt.frames_for(cfg, n_frames=st.integers(2, 3)))
    assert drawn["frames"].shape[1:] == (cfg.n_columns, cfg.dim)
    assert drawn["frames"].dtype == cfg.np_dtype and 2 <= len(drawn["frames"]) <= 3
    init = data.draw(gt.states(cfg, scale=1.0))
    if cfg.normalize == "l2":  # break exact ties, as above
        init = init + 1e-3 * np.random.default_rng(0).standard_normal(init.shape)
    ds = gs.simulate(cfg, w, init=init, **drawn)
    want = reference.simulate(
        cfg, w, drawn["frames"], init, steps_per_frame=drawn["steps_per_frame"]
    )
    assert _rel(ds.embedding.values, want) < 1e-10
