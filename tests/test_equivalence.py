"""The numba path equals glomsim.reference, the executable spec, on generated configs:
every kernel, radius, include_self, per-level mix and attention, schedules, delays 1 and 2,
every normalisation; float64 within 1e-10, float32 within 1e-4 (relative)."""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import glomsim as gs
import glomsim.testing as gt
from glomsim import reference


def _rel(a, b):
    return np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1.0)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@given(data=st.data())
def test_numba_equals_reference(dtype, tol, data):
    cfg = data.draw(gt.configs(dtypes=(dtype,), steps=(1, 5)))
    w = data.draw(gt.weights_for(cfg))
    init = data.draw(gt.states(cfg, scale=1.0))
    inputs = data.draw(gt.states(cfg, scale=1.0))[0]
    if cfg.normalize == "l2":
        # l2 of an exactly cancelling sum is +-1 or 0 by round-off alone: rounded states
        # made (-0.2 - 1.0 + 1.2) / 3 exactly 0 in float32 and 1e-17 in float64 (x1 against
        # x0 after normalising); a small jitter breaks such exact ties
        rng = np.random.default_rng(0)
        init = init + (1e-3 * rng.standard_normal(init.shape)).astype(init.dtype)
        inputs = inputs + (1e-3 * rng.standard_normal(inputs.shape)).astype(inputs.dtype)
    note(repr(cfg))
    ds = gs.simulate(cfg, w, inputs=inputs, init=init)
    want = reference.simulate(cfg, w, inputs, init)
    assert ds.embedding.dtype == np.dtype(dtype)
    assert _rel(ds.embedding.values, want) < tol


@pytest.mark.parametrize("kernel", ["dot", "cosine", "gaussian", "bounded", "glom_pytorch"])
@pytest.mark.parametrize("delay", [1, 2])
def test_every_kernel_on_a_realistic_grid(kernel, delay):
    """A larger grid than the property test: 6x7 columns, 3 levels, per-level radii."""
    atts = tuple(
        gs.Attention(kernel=kernel, beta=b, epsilon=1.5, radius=r, include_self=s)
        for b, r, s in ((2.0, 1.0, True), (0.5, 2.5, False), (1.0, float("inf"), True))
    )
    mix = (gs.Mix(), gs.Mix(previous=[0.0, 0.5, 1.0]), gs.Mix(bottom_up=2.0, attention=0.5))
    cfg = gs.GlomConfig(
        levels=3,
        dim=8,
        grid=(6, 7),
        steps=6,
        attention=atts,
        mix=mix,
        top_down_delay=delay,
        dtype="float64",
        normalize="layernorm",
    )
    w = gs.random_weights(cfg, seed=1)
    u = np.random.default_rng(2).standard_normal((cfg.n_columns, cfg.dim))
    ds = gs.simulate(cfg, w, inputs=u)
    want = reference.simulate(cfg, w, u, ds.embedding.values[0])
    assert _rel(ds.embedding.values, want) < 1e-10


@pytest.mark.parametrize(
    "dim,grid,hidden",
    [
        (128, (4, 4), None),  # one row block: each net cut in two along its hidden layer
        (8, (20, 30), 30),  # 600 columns: three row blocks of 200
        (8, (6, 6), 513),  # odd hidden width: not cut (3 MFLOP a step: on all threads)
    ],
)
def test_how_the_step_splits_work_does_not_change_results(dim, grid, hidden):
    """The fused step cuts nets into tasks by rows and hidden units; every split agrees
    with the reference and gives the same numbers on one thread as on several."""
    import numba

    cfg = gs.GlomConfig(levels=3, dim=dim, grid=grid, hidden=hidden, steps=3,
                        attention=gs.Attention(kernel="glom_pytorch", radius=1.5),
                        dtype="float64")  # fmt: skip
    w = gs.random_weights(cfg, seed=3)
    u = np.random.default_rng(4).standard_normal((cfg.n_columns, cfg.dim))
    ds = gs.simulate(cfg, w, inputs=u)
    want = reference.simulate(cfg, w, u, ds.embedding.values[0])
    assert _rel(ds.embedding.values, want) < 1e-10
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = gs.simulate(cfg, w, inputs=u).embedding.values
    finally:
        numba.set_num_threads(n)
    np.testing.assert_array_equal(one, ds.embedding.values)


@pytest.mark.parametrize("dim,grid", [(128, (4, 4)), (8, (5, 6))])
@pytest.mark.parametrize("way", ["in_numba", "step_by_step"])
def test_level0_bottom_up_computed_once_per_run(dim, grid, way):
    """Level 0's bottom-up net reads only the inputs, so the fused step computes it once per
    run and reuses it. Here its weight is 0 on step 1 (not computed there) and positive
    from step 2, with the net cut along its hidden layer (dim 128) and not (dim 8); both
    ways of running the steps, and a second run with other inputs on the same plan, agree
    with the reference, which computes it every step."""
    cfg = gs.GlomConfig(levels=3, dim=dim, grid=grid, steps=4, dtype="float64",
                        mix=gs.Mix(bottom_up=[0.0, 1.0, 0.5]),
                        attention=gs.Attention(kernel="glom_pytorch"))  # fmt: skip
    w = gs.random_weights(cfg, seed=8)
    rng = np.random.default_rng(9)
    for _ in range(2):
        u = rng.standard_normal((cfg.n_columns, cfg.dim))
        if way == "in_numba":
            got = gs.simulate(cfg, w, inputs=u).embedding.values
        else:  # summaries and the settling test run step by step from Python
            got = gs.simulate(cfg, w, inputs=u, stop_when_settled=1e-300).embedding.values
        want = reference.simulate(cfg, w, u, got[0])
        assert got.shape[0] == cfg.steps + 1
        assert _rel(got, want) < 1e-10
