"""Each numba kernel against the naive loops of tests/naive.py, on many shapes: the
primitives called directly (through the small builders of tests/kernel_args.py), the
fused step through a plan."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from glomsim._engine import Plan
from glomsim.neighbours import neighbour_csr

from . import kernel_args, naive

KERNELS = ["dot", "cosine", "gaussian", "bounded", "glom_pytorch"]


def _rel(a, b):
    return np.abs(np.asarray(a, float) - b).max() / max(np.abs(b).max(), 1.0)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@given(
    n=st.integers(1, 9),
    d=st.integers(1, 7),
    h=st.integers(1, 9),
    seed=st.integers(0, 10**6),
)
def test_mlp_matches_naive(dtype, tol, n, d, h, seed):
    rng = np.random.default_rng(seed)
    cfg = gs.GlomConfig(levels=1, dim=d, positions=np.zeros((n, 2)), hidden=h, dtype=dtype)
    w = gs.random_weights(cfg, seed=seed)
    x = rng.standard_normal((n, d)) * 2
    got = kernel_args.net(cfg, w, x.astype(dtype), "bu", 0)
    want = naive.mlp(x.astype(dtype).astype(float), w.bu_w1[0], w.bu_b1[0], w.bu_w2[0], w.bu_b2[0])
    assert _rel(got, want) < tol


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 5),
    d=st.integers(1, 5),
    radius=st.sampled_from([0.0, 1.0, 1.5, 2.5, math.inf]),
    include_self=st.booleans(),
    beta=st.sampled_from([0.0, 0.7, 3.0]),
    epsilon=st.sampled_from([0.3, 1.0, 2.0]),
    seed=st.integers(0, 10**6),
    rounded=st.booleans(),
)
def test_attention_matches_naive(
    kernel, dtype, tol, rows, cols, d, radius, include_self, beta, epsilon, seed, rounded
):
    """Covers the CSR path (finite radius, bounded) and the dense path (infinite radius)."""
    att = gs.Attention(
        kernel=kernel, beta=beta, epsilon=epsilon, radius=radius, include_self=include_self
    )
    cfg = gs.GlomConfig(levels=1, dim=d, grid=(rows, cols), attention=att, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.n_columns, d))
    if rounded:  # exact ties and exactly-epsilon distances
        x = np.round(x)
    x = x.astype(dtype)
    got = kernel_args.attend(cfg, x)
    want = naive.attend(
        x.astype(float), cfg.position_array(), kernel, beta, epsilon, radius, include_self
    )
    if kernel == "bounded" and dtype == "float32":
        # float32 distances may fall either side of epsilon(1 + 1e-9) in the float64 oracle;
        # compare against the oracle run with the float32 tolerance instead
        want = naive.attend(
            x.astype(float),
            cfg.position_array(),
            kernel,
            beta,
            epsilon * (1 + 1e-6) / (1 + 1e-9),
            radius,
            include_self,
        )
    assert _rel(got, want) < tol


def _fused_attention(cfg, x):
    """The fused step's attention contribution alone: identity nets, a mix of attention
    only and no normalisation make the new level-0 state equal to it."""
    plan = Plan(cfg, gs.identity_weights(cfg))
    state = x[None].copy()  # (levels=1, N, D)
    out = np.empty_like(state)
    plan.step(state, state, x, 1, out)
    return out[0]


@pytest.mark.parametrize("kernel", ["dot", "cosine", "gaussian", "glom_pytorch"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize(
    "dtype,scale,tol",
    [
        ("float64", 0.05, 1e-12),
        ("float64", 1.0, 1e-12),
        ("float64", 4.0, 1e-11),  # dot scores up to ~400: the shift is the maximum
        ("float64", 20.0, 1e-10),  # scores up to ~1e4
        ("float32", 0.05, 1e-5),
        ("float32", 1.0, 1e-5),
    ],
)
def test_fused_dense_attention_matches_naive(kernel, include_self, dtype, scale, tol):
    """Global attention in the fused step, at score ranges where each softmax row is
    shifted by a bound on its scores (small) and by their maximum (large)."""
    rng = np.random.default_rng(7)
    att = gs.Attention(kernel=kernel, beta=1.5, include_self=include_self)
    cfg = gs.GlomConfig(levels=1, dim=6, grid=(5, 7), attention=att, dtype=dtype,
                        mix=gs.Mix(0, 0, 0, 1), normalize="none")  # fmt: skip
    x = (scale * rng.standard_normal((cfg.n_columns, cfg.dim))).astype(dtype)
    got = _fused_attention(cfg, x)
    want = naive.attend(x.astype(float), cfg.position_array(), kernel, 1.5, None,
                        math.inf, include_self)  # fmt: skip
    assert _rel(got, want) < tol


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_attention_when_every_score_sits_at_the_lower_bound(kernel, dtype):
    """Column 0 is v, every other column -v, self excluded: column 0's scores all equal
    minus the bound its softmax is shifted by (e^-2x the bound, near 2e-25 at a bound of
    28), so only a softmax without underflow gives its attention -v, the mean of the
    others."""
    v = np.array([1.0, -2.0, 0.5, 3.0])
    beta = 28.0 / (v @ v) if kernel == "dot" else 28.0
    att = gs.Attention(kernel=kernel, beta=beta, include_self=False)
    cfg = gs.GlomConfig(levels=1, dim=4, grid=(3, 3), attention=att, dtype=dtype,
                        mix=gs.Mix(0, 0, 0, 1), normalize="none")  # fmt: skip
    x = np.tile(-v, (cfg.n_columns, 1)).astype(dtype)
    x[0] = v
    got = _fused_attention(cfg, x)
    np.testing.assert_allclose(got[0], -v, rtol=1e-6)


def test_csr_matches_dense_ball():
    pos = np.random.default_rng(0).uniform(0, 5, size=(40, 2))
    for radius in [0.0, 0.5, 1.0, 2.0, math.inf]:
        for include_self in [True, False]:
            att = gs.Attention(radius=radius, include_self=include_self)
            indptr, indices = neighbour_csr(pos, att)
            for i in range(len(pos)):
                got = sorted(indices[indptr[i] : indptr[i + 1]].tolist())
                assert got == naive.neighbours(pos, i, radius, not include_self)


@pytest.mark.parametrize("norm", ["none", "l2", "layernorm"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_combine_matches_naive(norm, dtype, tol):
    """The fused step's combination and normalisation, with identity nets so that level 0's
    contributions are known arrays: bottom-up = the inputs, top-down = level 1 of the delayed
    state, attention over a radius-0 neighbourhood = the column's own previous embedding."""
    rng = np.random.default_rng(3)
    n, d = 7, 5
    prev, bu, td = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
    bu[0] = 0.0  # a zero row under l2 stays zero only if all parts are zero: make one
    prev[0] = td[0] = 0.0
    for w in ([1, 1, 1, 1], [0.5, 0, 2, 1], [0, 0, 1, 3], [2, 1, 0, 0]):
        cfg = gs.GlomConfig(levels=2, dim=d, grid=(1, n), dtype=dtype, normalize=norm,
                            mix=gs.Mix(*w), attention=gs.Attention(radius=0.0))  # fmt: skip
        plan = Plan(cfg, gs.identity_weights(cfg))
        state = np.stack([prev, rng.standard_normal((n, d)).astype(dtype)])
        delayed = np.stack([state[0], td])
        out = np.empty_like(state)
        plan.step(state, delayed, bu, 1, out)
        want = naive.combine(prev, bu, td, prev, w, norm)
        assert _rel(out[0], want) < tol
        if norm == "l2":
            assert np.all(out[0][0] == 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("grid,rows_per_block", [((3, 4), "one block"), ((20, 15), "3 blocks")])
def test_per_step_change_and_rms_match_naive(dtype, grid, rows_per_block):
    """The step sums squares per block of rows as it writes them; the RMS change and size
    of every step, in float64, equal the naive loops over the recorded states, on the
    in-numba path (thinned too: the change of every step) and step by step."""
    cfg = gs.GlomConfig(levels=2, dim=5, grid=grid, steps=6, dtype=dtype,
                        attention=gs.Attention(radius=1.5))  # fmt: skip
    w = gs.random_weights(cfg, seed=1)
    full = gs.simulate(cfg, w)
    rms, change = naive.rms_and_change(full.embedding.values)
    for ds in (full, gs.simulate(cfg, w, record_every=4),
               gs.simulate(cfg, w, stop_when_settled=1e-300)):  # fmt: skip
        np.testing.assert_allclose(ds.rms.values, rms, rtol=1e-13)
        np.testing.assert_allclose(ds.change.values, change, rtol=1e-12)


def test_frame_index_matches_naive():
    from glomsim.inputs import frame_at

    for k in (1, 2, 3, 7):
        for n in (1, 2, 5):
            got = frame_at(np.arange(0, 30), k, n)
            assert got.tolist() == [naive.frame_at(t, k, n) for t in range(30)]
