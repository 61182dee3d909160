"""simulate_ensemble: many same-shape runs in one call equal the runs one by one."""

import numpy as np
import pytest

import glomsim as gs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("radius,dim", [(1.5, 5), (float("inf"), 5), (1.5, 128)])
def test_members_equal_single_runs(dtype, radius, dim):
    """dim 128 (hidden 512): nets cut along the hidden layer, alone and in the ensemble."""
    cfg = gs.GlomConfig(
        levels=3,
        dim=dim,
        grid=(3, 4),
        steps=6,
        dtype=dtype,
        top_down_delay=2,
        attention=gs.Attention(kernel="cosine", beta=3.0, radius=radius),
        normalize="layernorm",
    )
    rng = np.random.default_rng(0)
    ws = [gs.random_weights(cfg, seed=s) for s in range(4)]
    u = rng.standard_normal((4, 12, dim))
    init = rng.standard_normal((4, 3, 12, dim))
    ens = gs.simulate_ensemble(cfg, ws, inputs=u, init=init, record_every=2)
    assert ens.embedding.dims == ("member", "time", "level", "column", "feature")
    assert ens.time.values.tolist() == [0, 2, 4, 6]
    for m in range(4):
        one = gs.simulate(cfg, ws[m], inputs=u[m], init=init[m], record_every=2)
        # same arithmetic per row: identical results, not merely close
        np.testing.assert_array_equal(ens.embedding.isel(member=m).values, one.embedding.values)
    import json

    assert len(set(json.loads(ens.attrs["member_weights_hashes"]))) == 4


def test_shared_weights_and_scenes_keep_labels():
    from glomsim.scenes import make_scene

    cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=3)
    scenes = [make_scene(grid=(8, 8), dim=8, levels=3, seed=s) for s in range(3)]
    ens = gs.simulate_ensemble(cfg, gs.random_weights(cfg, seed=1), inputs=scenes)
    assert ens.label.dims == ("member", "level", "column")
    np.testing.assert_array_equal(ens.label.values[2], scenes[2].labels)


def test_member_count_must_agree():
    cfg = gs.GlomConfig(levels=1, dim=2, grid=(2, 2), steps=1)
    with pytest.raises(ValueError, match="members"):
        gs.simulate_ensemble(cfg, inputs=np.zeros((3, 4, 2)), init=np.zeros((2, 1, 4, 2)))
    with pytest.raises(ValueError, match="members"):
        gs.simulate_ensemble(cfg)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_shared_nets_batched_across_members_match_single_runs(dtype, tol):
    """Members sharing one set of nets run them as one product over all their rows; that
    changes BLAS's blocking, so agreement is to round-off rather than bit for bit."""
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 4), steps=5, dtype=dtype,
                        attention=[gs.Attention(radius=1.5), gs.Attention(kernel="cosine"),
                                   gs.Attention(kernel="bounded", epsilon=3.0)])  # fmt: skip
    w = gs.random_weights(cfg, seed=3)
    rng = np.random.default_rng(1)
    u = rng.standard_normal((37, 16, 6))  # not a multiple of the members per task
    ens = gs.simulate_ensemble(cfg, w, inputs=u).embedding.values
    for m in (0, 17, 36):
        one = gs.simulate(cfg, w, inputs=u[m]).embedding.values
        assert np.abs(ens[m] - one).max() / max(np.abs(one).max(), 1) < tol


def _chunked_case():
    """10 members of 64 KB of float64 state: the in-numba run takes them 4 at a time
    (chunks 0-3, 4-7, 8-9), in whole groups of 4 members for the nets."""
    from glomsim._engine import Plan

    cfg = gs.GlomConfig(levels=2, dim=64, grid=(8, 8), steps=3, dtype="float64",
                        attention=gs.Attention(kernel="glom_pytorch"))  # fmt: skip
    w = gs.random_weights(cfg, seed=5)
    plan = Plan(cfg, w, members=10)
    assert (plan.split.chunk, plan.split.group) == (4, 4)  # else this test no longer tests chunks
    inputs = np.random.default_rng(6).standard_normal((10, 64, 64))
    return cfg, w, inputs


@pytest.mark.parametrize("record_every", [1, 2])
def test_members_run_in_chunks_equal_single_runs(record_every):
    cfg, w, inputs = _chunked_case()
    ds = gs.simulate_ensemble(cfg, w, inputs=inputs, record_every=record_every)
    for m in range(10):
        one = gs.simulate(cfg, w, inputs=inputs[m], record_every=record_every)
        np.testing.assert_allclose(ds.embedding.values[m], one.embedding.values,
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("bad", [[9], [1, 9], [5]])
def test_divergence_in_any_chunk_names_the_first_member(bad):
    """Members that fail in a later chunk than the first: the error names the lowest
    failing member, and every member's steps before the failure are in .partial."""
    cfg, w, inputs = _chunked_case()
    init = np.repeat(gs.simulate(cfg, w, steps=0).embedding.values, 10, axis=0)
    init[bad, 0, 3] = 1e300  # attention scores overflow: level 0 fails at step 1
    with pytest.raises(gs.SimulationDiverged, match=f"step 1, level 0, member {bad[0]};") as e:
        gs.simulate_ensemble(cfg, w, inputs=inputs, init=init)
    assert e.value.step == 1 and e.value.level == 0
    part = e.value.partial
    assert part.embedding.sizes["member"] == 10 and part.time.values.tolist() == [0]
    assert np.isfinite(part.embedding.values).all()


def test_members_with_their_own_weights_run_in_chunks_equal_single_runs():
    """Per-member nets and positional codes are sliced with each chunk of members."""
    from glomsim._engine import Plan

    cfg, _, inputs = _chunked_case()
    ws = [gs.random_weights(cfg, seed=10 + m) for m in range(10)]
    assert Plan(cfg, ws, members=10).split.chunk == 4
    ds = gs.simulate_ensemble(cfg, ws, inputs=inputs)
    for m in range(10):
        one = gs.simulate(cfg, ws[m], inputs=inputs[m])
        np.testing.assert_allclose(ds.embedding.values[m], one.embedding.values,
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
