"""The nets' packed matrix products (glomsim._kernels.gemm) against numpy's in float64:
every row count (the tiles of 6 and the remainder's 1-5), columns that fill a panel or
leave it padded, one inner dimension up to several hundred; and views the step passes
(the first rows of a larger scratch buffer, rows longer than the inner dimension)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from glomsim._kernels.gemm import (
    ALIGN,
    aligned,
    aligned_empty,
    gemm_packed,
    pack_panels,
    padded,
    panel_width,
)
from glomsim._kernels.jit import njit

TOL = {np.float32: 3e-6, np.float64: 1e-13}


@njit
def _product(a, m, bp, c):
    gemm_packed(a[:m], bp, c[:m])


@given(
    m=st.integers(1, 40),
    k=st.integers(1, 300),
    n=st.integers(1, 70),
    dtype=st.sampled_from([np.float32, np.float64]),
    wider=st.sampled_from([0, 0, 5]),
    seed=st.integers(0, 2**16),
)
def test_the_packed_product_is_the_matrix_product(m, k, n, dtype, wider, seed):
    rng = np.random.default_rng(seed)
    # the first m rows of a larger buffer, and rows wider than k (padded scores)
    a = rng.standard_normal((m + 3, k + wider)).astype(dtype)
    a[:, k:] = np.nan  # never read
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m + 3, padded(n, dtype)), np.nan, dtype)
    _product(a, m, pack_panels(b, dtype), c)
    want = a[:m, :k].astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a[:m, :k]).astype(np.float64) @ np.abs(b).astype(np.float64)  # error size
    assert np.all(np.abs(c[:m, :n] - want) <= TOL[dtype] * k * np.maximum(scale, 1e-30))
    assert np.all(c[:m, n:] == 0)  # padded columns: zero weights, zero outputs
    assert np.isnan(c[m:]).all()  # rows past m untouched


def test_panels_hold_the_columns_in_order_and_zeros_after():
    W = panel_width(np.float32)
    assert W in (16, 32)  # two vectors of 256 or 512 bits
    n = W + 4  # a full panel and a padded one
    w = np.arange(3 * n, dtype=np.float64).reshape(3, n)
    p = pack_panels(w, np.float32)
    assert p.shape == (2, 3, W) and p.dtype == np.float32
    back = np.concatenate(list(p), axis=1)  # panels side by side: the matrix, then zeros
    assert np.array_equal(back[:, :n], w) and not back[:, n:].any()


@given(
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=4),
    dtype=st.sampled_from([np.float32, np.float64, np.uint8]),
)
def test_aligned_buffers_start_on_a_cache_line_and_hold_their_values(shape, dtype):
    a = aligned_empty(shape, dtype, fill=7)
    assert (a.size == 0 or a.ctypes.data % ALIGN == 0) and a.flags.c_contiguous  # no data
    assert a.shape == tuple(shape) and a.dtype == dtype and np.all(a == 7)
    b = np.arange(a.size, dtype=dtype).reshape(a.shape)[::1]
    c = aligned(b)
    assert (c.size == 0 or c.ctypes.data % ALIGN == 0) and np.array_equal(c, b)


def test_a_plans_products_and_records_start_on_cache_lines():
    """Packed weights, the step's buffers and scratch and a run's records: split 512-bit
    loads cost the products up to 8% (see gemm.aligned_empty)."""
    import glomsim as gs
    from glomsim._engine.plan import Plan

    cfg = gs.GlomConfig(levels=3, dim=12, grid=(4, 5), steps=3,
                        attention=[gs.Attention(radius=1.5), gs.Attention(), gs.Attention()])  # fmt: skip
    w = gs.random_weights(cfg, seed=1)
    plan = Plan(cfg, w)
    arrays = [plan.nets.bu_w1, plan.nets.bu_w2, plan.nets.td_w1, plan.nets.td_w2,
              plan.bufs.netbuf, plan.bufs.keys, plan.bufs.values, *plan.bufs.scratch]  # fmt: skip
    assert all(a.ctypes.data % ALIGN == 0 for a in arrays)
    for kw in ({}, {"record_every": 2}, {"summaries_only": True}):
        assert gs.simulate(cfg, w, **kw).embedding.values.ctypes.data % ALIGN == 0
