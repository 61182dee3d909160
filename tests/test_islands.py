"""Islands of agreement: partitions, invariance to column order, summaries, baseline, metadata."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from analysis import islands
from analysis._common import canonical_labels
from glomsim.dataset import create_dataset


def make_ds(embedding, grid, positions=None):
    """A simulation-like Dataset holding ``embedding`` (T, L, N, D) on a grid."""
    embedding = np.asarray(embedding, dtype=np.float64)
    t, levels, n, dim = embedding.shape
    if positions is None:
        cfg = gs.GlomConfig(levels=levels, dim=dim, grid=grid, steps=t - 1, dtype="float64")
    else:
        cfg = gs.GlomConfig(levels=levels, dim=dim, positions=positions, dtype="float64")
    w = gs.identity_weights(cfg)
    return create_dataset(cfg, w, embedding, list(range(t)), np.zeros((n, dim)))


def clustered(rng, n, dim, k, jitter=1e-4):
    """Embeddings of n columns drawn from k well-separated random directions."""
    centres = rng.standard_normal((k, dim))
    which = rng.integers(0, k, size=n)
    return centres[which] + jitter * rng.standard_normal((n, dim)), which


def same_partition(a, b):
    return np.array_equal(canonical_labels(a), canonical_labels(b))


def test_known_line():
    init = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [1, 0]], dtype=float)
    ds = make_ds(init[None, None], (1, 6))
    spatial = islands(ds)
    assert spatial.labels.values[0, 0].tolist() == [0, 0, 0, 1, 1, 2]
    assert int(spatial["count"][0, 0]) == 3
    assert spatial["sizes"].values[0, 0].tolist() == [3, 2, 1]
    assert float(spatial.largest_fraction[0, 0]) == 0.5
    glob = islands(ds, connectivity="global")
    assert glob.labels.values[0, 0].tolist() == [0, 0, 0, 1, 1, 0]
    # a radius reaching every column makes spatial islands global
    assert islands(ds, radius=np.inf).labels.values[0, 0].tolist() == [0, 0, 0, 1, 1, 0]


def test_zero_vectors_agree_and_spread_is_zero_in_consensus():
    cfg = gs.GlomConfig(levels=2, dim=3, grid=(3, 3), steps=0)
    ds = gs.simulate(cfg, gs.identity_weights(cfg))  # all-zero state
    out = islands(ds)
    assert out["count"].values.tolist() == [[1, 1]]
    assert out.spread.values.tolist() == [[0.0, 0.0]]
    assert islands(ds, metric="euclidean")["count"].values.tolist() == [[1, 1]]


@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    metric=st.sampled_from(["cosine", "euclidean"]),
    connectivity=st.sampled_from(["spatial", "global"]),
    radius=st.sampled_from([1.0, 1.5, 2.0]),
)
def test_partition_does_not_depend_on_column_order(
    rows, cols, k, seed, metric, connectivity, radius
):
    rng = np.random.default_rng(seed)
    n = rows * cols
    emb = np.stack([clustered(rng, n, 5, k)[0] for _ in range(2)])[None]  # (1, 2, n, 5)
    ds = make_ds(emb, (rows, cols))
    perm = rng.permutation(n)
    shuffled = ds.isel(column=perm)  # columns move together with their y, x
    kw = dict(threshold=0.99, metric=metric, connectivity=connectivity, radius=radius)
    a = islands(ds, **kw)
    b = islands(shuffled, **kw)
    for level in range(2):
        assert same_partition(a.labels.values[0, level][perm], b.labels.values[0, level])
    np.testing.assert_array_equal(a["count"].values, b["count"].values)
    np.testing.assert_allclose(a.spread.values, b.spread.values, rtol=1e-12, atol=1e-15)


@given(
    n=st.integers(1, 40),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    connectivity=st.sampled_from(["spatial", "global"]),
    jitter=st.sampled_from([1e-4, 0.3]),
)
def test_summaries_are_consistent(n, k, seed, connectivity, jitter):
    rng = np.random.default_rng(seed)
    x, _ = clustered(rng, n, 4, k, jitter)
    out = islands(make_ds(x[None, None], (1, n)), connectivity=connectivity)
    labels = out.labels.values[0, 0]
    count = int(out["count"][0, 0])
    assert 1 <= count <= n
    # canonical: islands numbered in order of their first column
    firsts = [int(np.argmax(labels == i)) for i in range(count)]
    assert firsts == sorted(firsts) and set(labels) == set(range(count))
    sizes = out["sizes"].values[0, 0]
    assert sizes.sum() == n and np.all(sizes[:count] > 0) and np.all(sizes[count:] == 0)
    np.testing.assert_array_equal(sizes[:count], np.bincount(labels))
    assert float(out.largest_fraction[0, 0]) == sizes.max() / n
    means = np.stack([x[labels == i].mean(axis=0) for i in range(count)])
    spread = np.sqrt(((x - means[labels]) ** 2).sum(axis=1).mean())
    np.testing.assert_allclose(float(out.spread[0, 0]), spread, rtol=1e-10, atol=1e-14)


@given(n=st.integers(2, 30), seed=st.integers(0, 2**16), threshold=st.floats(0.0, 0.99))
def test_global_single_linkage_matches_scipy(n, seed, threshold):
    from scipy.cluster.hierarchy import fcluster, linkage

    x = np.random.default_rng(seed).standard_normal((n, 3))
    out = islands(make_ds(x[None, None], (1, n)), threshold=threshold, connectivity="global")
    cut = 1.0 - threshold
    d = linkage(x, method="single", metric="cosine")
    # ties at the cut are decided by round-off differently: skip those rare draws
    if np.any(np.abs(d[:, 2] - cut) < 1e-9):
        return
    expect = fcluster(d, t=cut, criterion="distance")
    assert same_partition(out.labels.values[0, 0], expect)


def test_average_linkage_and_euclidean_threshold():
    rng = np.random.default_rng(0)
    x, which = clustered(rng, 30, 6, 3, jitter=1e-3)
    ds = make_ds(x[None, None], (5, 6))
    for linkage in ("single", "average", "complete"):
        out = islands(ds, connectivity="global", linkage=linkage)
        assert same_partition(out.labels.values[0, 0], which)
    # euclidean: within (1 - threshold) of the RMS norm; scaling the state changes nothing
    a = islands(ds, metric="euclidean", connectivity="global")
    b = islands(make_ds(1e3 * x[None, None], (5, 6)), metric="euclidean", connectivity="global")
    assert same_partition(a.labels.values[0, 0], which)
    np.testing.assert_array_equal(a.labels.values, b.labels.values)


def test_spatial_islands_are_contiguous():
    # two regions with the same embedding, separated by a different one
    emb = np.zeros((1, 1, 9, 2))
    emb[..., :, 0] = 1.0
    emb[0, 0, [3, 4, 5], :] = [0.0, 1.0]  # the middle row of a 3 x 3 grid
    ds = make_ds(emb, (3, 3))
    assert int(islands(ds)["count"][0, 0]) == 3
    assert int(islands(ds, connectivity="global")["count"][0, 0]) == 2
    # diagonal neighbours do not bridge a full row either
    assert int(islands(ds, radius=1.5)["count"][0, 0]) == 3


def test_baseline_separates_coherent_islands_from_chance():
    # four quadrants of a 12 x 12 grid, one direction each: coherent islands
    rows = cols = 12
    y, x = np.divmod(np.arange(rows * cols), cols)
    quadrant = 2 * (y >= 6) + (x >= 6)
    centres = np.eye(4)
    emb = centres[quadrant][None, None]
    out = islands(make_ds(emb, (rows, cols)))
    assert int(out["count"][0, 0]) == 4
    assert int(out.baseline_count[0, 0]) > 4 * 4
    assert float(out.baseline_largest_fraction[0, 0]) < float(out.largest_fraction[0, 0])
    again = islands(make_ds(emb, (rows, cols)))
    assert int(again.baseline_count[0, 0]) == int(out.baseline_count[0, 0])
    other = islands(make_ds(emb, (rows, cols)), baseline_seed=1)
    assert other.baseline_count.dims == ("time", "level")


def test_dask_input_same_result_and_input_untouched():
    rng = np.random.default_rng(1)
    emb = np.stack([np.stack([clustered(rng, 16, 3, 3, 0.2)[0] for _ in range(2)])] * 3)
    ds = make_ds(emb, (4, 4))
    ds["label"] = (("level", "column"), np.zeros((2, 16), dtype=np.int64))
    before = ds.copy(deep=True)
    eager = islands(ds)
    lazy = islands(ds.chunk({"time": 2}))
    xr.testing.assert_identical(ds, before)
    assert ds.attrs == before.attrs
    for name in ("labels", "count", "largest_fraction", "spread", "sizes", "baseline_count"):
        np.testing.assert_array_equal(eager[name].values, lazy[name].values)
    xr.testing.assert_equal(eager.label, ds.label)


def test_time_selection():
    rng = np.random.default_rng(2)
    emb = np.stack([clustered(rng, 9, 3, 2, 0.1)[0][None] for _ in range(4)])
    ds = make_ds(emb, (3, 3))
    full = islands(ds)
    last = islands(ds, time=-1)
    assert last.time.values.tolist() == [3]
    np.testing.assert_array_equal(last.labels.values[0], full.labels.values[-1])
    assert islands(ds, time=[0, 2]).time.values.tolist() == [0, 2]
    # one step picked with isel(time=k) is a run of one recorded step
    np.testing.assert_array_equal(islands(ds.isel(time=1)).labels.values, full.labels.values[1:2])
    with pytest.raises(ValueError, match="time"):
        islands(ds, time=4)
    with pytest.raises(ValueError, match="time"):
        islands(ds, time=0.5)


def test_metadata():
    ds = make_ds(np.ones((2, 2, 4, 3)), (2, 2))
    out = islands(ds, threshold=0.9)
    for name in list(out.data_vars) + ["island"]:
        assert out[name].attrs.get("long_name"), name
        assert "units" in out[name].attrs, name
    assert out.labels.dims == ("time", "level", "column")
    assert out["sizes"].dims == ("time", "level", "island")
    history = out.attrs["history"].splitlines()
    assert history[0] == ds.attrs["history"]
    assert "analysis.islands(threshold=0.9" in history[-1]
    assert out.attrs["island_threshold"] == 0.9
    assert out.attrs["glomsim_config"] == ds.attrs["glomsim_config"]
    assert out.labels.dtype == np.int64 and out["count"].dtype == np.int64


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(metric="manhattan"), "metric"),
        (dict(connectivity="local"), "connectivity"),
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=-2.0), "threshold"),
        (dict(threshold="0.9"), "threshold"),
        (dict(radius=-1.0), "radius"),
        (dict(baseline_seed=-3), "baseline_seed"),
        (dict(linkage="ward"), "linkage"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    ds = make_ds(np.ones((1, 1, 4, 2)), (2, 2))
    with pytest.raises(ValueError, match=field):
        islands(ds, **kwargs)


def test_needs_a_simulation():
    with pytest.raises(ValueError, match="embedding"):
        islands(xr.Dataset({"x": ("a", [1, 2])}))
