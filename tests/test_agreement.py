"""analysis.agreement's scores the background cannot inflate: objects-only and excluded-label
scores, trivial baselines, boundary leak and the threshold-free cosine contrast."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import glomsim as gs
from analysis import adjusted_rand_index, agreement, purity
from analysis.agreement import (
    BASELINES,
    background_columns,
    boundary_leak,
    cosine_contrast,
)
from glomsim.dataset import create_dataset
from glomsim.neighbours import neighbour_pairs
from glomsim.scenes import make_scene

GRID = (12, 12)


@pytest.fixture(scope="module")
def scene():
    return make_scene(grid=GRID, dim=16, levels=3, n_objects=2, noise=0.0, seed=3)


def _ds(embedding, labels, grid=GRID):
    """A Dataset of one recorded state (level, column, feature) with ground truth."""
    embedding = np.asarray(embedding, dtype=np.float64)[None]
    _, levels, n, dim = embedding.shape
    cfg = gs.GlomConfig(levels=levels, dim=dim, grid=grid, dtype="float64")
    w = gs.identity_weights(cfg)
    return create_dataset(cfg, w, embedding, [0], np.zeros((n, dim)), labels=labels)


def _one_hot(labels, dim):
    """One orthogonal code per label value: islands at any threshold follow the labels."""
    return np.eye(dim)[np.asarray(labels)]


def _codes_of(partition):
    """(level, column, feature) embeddings whose islands are the given partitions."""
    partition = np.asarray(partition)
    dim = int(partition.max()) + 1
    return np.stack([_one_hot(p, dim) for p in partition])


def _trivial(labels):
    """The background one island, every other column alone (per level)."""
    bg = background_columns(labels)
    alone = np.where(bg, 0, 1 + np.arange(labels.shape[1]))
    return np.repeat(alone[None], labels.shape[0], axis=0)


def test_background_is_object_zero_at_every_level(scene):
    bg = background_columns(scene.labels)
    assert bg.dtype == bool and 0.3 < bg.mean() < 0.7
    for level in range(3):
        np.testing.assert_array_equal(scene.labels[level] == 0, bg)
    two = make_scene(grid=GRID, dim=16, levels=2, n_objects=2, noise=0.0, seed=3)
    np.testing.assert_array_equal(background_columns(two.labels), two.labels[1] == 0)
    with pytest.raises(ValueError, match="label has shape"):
        background_columns(scene.labels[0])


def test_a_perfect_partition_scores_one_and_leaks_nothing(scene):
    labels = np.asarray(scene.labels)
    ds = _ds(_codes_of(labels), labels)
    for kwargs in ({}, {"objects_only": True}, {"exclude": 0}):
        ag = agreement(ds, connectivity="global", **kwargs)
        for name in ("ari", "purity", "inverse_purity", "cosine_contrast"):
            np.testing.assert_array_equal(ag[name].values, 1.0, err_msg=f"{name} {kwargs}")
        # objects do not touch: without the background, level 2 has no boundary pairs
        across = ag.boundary_pairs.values > 0
        assert across[:2].all() and across[2] == (not kwargs)
        np.testing.assert_array_equal(ag.boundary_leak.values[:, across], 0.0)
        assert np.isnan(ag.boundary_leak.values[:, ~across]).all()


def test_everything_one_island_leaks_everywhere_and_has_no_contrast(scene):
    labels = np.asarray(scene.labels)
    emb = np.ones((3, labels.shape[1], 4))
    ag = agreement(_ds(emb, labels))
    np.testing.assert_array_equal(ag.boundary_leak.values, 1.0)
    np.testing.assert_allclose(ag.cosine_contrast.values, 0.0, atol=1e-12)
    assert (ag.ari.values == 0).all()  # one island against several classes


def test_the_trivial_baseline_scores_zero_without_the_background(scene):
    """Background one island, every other column alone: high ARI with the background,
    exactly 0 without it, at every level; and islands equal to it score the baseline."""
    labels = np.asarray(scene.labels)
    ds = _ds(_codes_of(_trivial(labels)), labels)
    everything = agreement(ds, connectivity="global")
    objects = agreement(ds, connectivity="global", objects_only=True)
    trivial = "background_and_singletons"
    # the background inflates: about half the grid in one correct island
    assert (everything.ari.values[0] > 0.4).all()
    np.testing.assert_array_equal(objects.ari.values, 0.0)
    np.testing.assert_array_equal(objects.baseline_ari.sel(baseline=trivial).values, 0.0)
    for name in ("ari", "purity", "inverse_purity"):
        np.testing.assert_allclose(
            everything[name].values[0], everything[f"baseline_{name}"].sel(baseline=trivial)
        )
    assert objects.columns_scored.values.tolist() == [int((~background_columns(labels)).sum())] * 3
    assert everything.columns_scored.values.tolist() == [labels.shape[1]] * 3


def test_the_finer_truth_baseline_is_the_level_below(scene):
    labels = np.asarray(scene.labels)
    ds = _ds(_codes_of(labels), labels)
    for kwargs in ({}, {"objects_only": True}):
        ag = agreement(ds, connectivity="global", **kwargs)
        finer = ag.sel(baseline="finer_truth")
        assert np.isnan(finer.baseline_ari.values[0])  # nothing below level 0
        keep = ~background_columns(labels) if kwargs else np.ones(labels.shape[1], bool)
        for level in (1, 2):
            low, high = labels[level - 1][keep], labels[level][keep]
            expect = adjusted_rand_index(low, high)
            assert float(finer.baseline_ari[level]) == pytest.approx(expect, abs=1e-15)
            # a finer partition nests in the coarser one: pure, not inversely pure
            assert float(finer.baseline_purity[level]) == 1.0
            assert float(finer.baseline_inverse_purity[level]) == purity(high, low) < 1.0
    assert ag.baseline.values.tolist() == list(BASELINES)


def test_exclude_scores_the_other_columns_as_by_hand(scene):
    labels = np.asarray(scene.labels)
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 5, size=labels.shape)
    ds = _ds(_codes_of(pred), labels)
    ag = agreement(ds, connectivity="global", exclude=1)
    for level in range(3):
        keep = labels[level] != 1
        expect = adjusted_rand_index(pred[level][keep], labels[level][keep])
        assert float(ag.ari[0, level]) == pytest.approx(expect, abs=1e-12)
        assert float(ag.purity[0, level]) == pytest.approx(
            purity(pred[level][keep], labels[level][keep])
        )
    # the background is label 0 at levels 0-2: exclude=0 is objects_only there
    a = agreement(ds, connectivity="global", exclude=0)
    b = agreement(ds, connectivity="global", objects_only=True)
    for name in ("ari", "purity", "inverse_purity", "boundary_leak", "cosine_contrast"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert "not 0" in a.attrs["scored_columns"]
    assert b.attrs["scored_columns"].startswith("objects only")
    assert "objects_only=True" in b.attrs["history"].splitlines()[-1]


def test_outputs_are_labelled_from_the_registry(scene):
    labels = np.asarray(scene.labels)
    ag = agreement(_ds(_codes_of(labels), labels), connectivity="global")
    for name in ag.variables:
        assert ag[name].attrs.get("long_name"), name
        assert "units" in ag[name].attrs, name
    assert ag.boundary_leak.dims == ("time", "level")
    assert ag.baseline_ari.dims == ("baseline", "level")


def test_an_islands_dataset_alone_has_no_embedding_scores(scene):
    import analysis as an

    labels = np.asarray(scene.labels)
    isl = an.islands(_ds(_codes_of(labels), labels), connectivity="global")
    ag = agreement(isl)
    assert "boundary_leak" not in ag and "cosine_contrast" not in ag
    assert (ag.ari.values == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"exclude": "background"}, ValueError, "exclude='background'"),
        ({"exclude": 1.5}, ValueError, "exclude=1.5"),
        ({"exclude": True}, ValueError, "exclude=True"),
        ({"objects_only": "yes"}, TypeError, "objects_only='yes'"),
        ({"objects_only": True, "exclude": 0}, ValueError, "one or the other"),
    ],
)
def test_bad_options_are_refused_in_one_line(scene, kwargs, error, match):
    labels = np.asarray(scene.labels)
    ds = _ds(_codes_of(labels), labels)
    with pytest.raises(error, match=match) as info:
        agreement(ds, connectivity="global", **kwargs)
    assert "\n" not in str(info.value)


def test_islands_of_other_steps_are_refused(scene):
    import analysis as an

    labels = np.asarray(scene.labels)
    ds = _ds(_codes_of(labels), labels)
    isl = an.islands(ds, connectivity="global").assign_coords(time=[5])
    with pytest.raises(ValueError, match="step"):
        agreement(ds, islands=isl)


# ----- the two embedding scores against pair-by-pair counts ----------------------------
def _naive_contrast(x, truth):
    n = len(truth)
    norms = np.linalg.norm(x, axis=1)
    within, between = [], []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if norms[i] == 0 and norms[j] == 0:
                cos = 1.0
            elif norms[i] == 0 or norms[j] == 0:
                cos = 0.0
            else:
                cos = x[i] @ x[j] / (norms[i] * norms[j])
            (within if truth[i] == truth[j] else between).append(cos)
    if not within or not between:
        return np.nan
    return np.mean(within) - np.mean(between)


@given(
    x=arrays(np.float64, (9, 3), elements=st.sampled_from([-1.0, 0.0, 0.5, 2.0])),
    truth=arrays(np.int64, 9, elements=st.integers(0, 2)),
)
def test_cosine_contrast_counts_every_pair(x, truth):
    expect = _naive_contrast(x, truth)
    got = cosine_contrast(x, truth)
    if np.isnan(expect):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expect, abs=1e-12)


@given(
    x=arrays(np.float64, (9, 2), elements=st.sampled_from([-1.0, 0.0, 1.0])),
    truth=arrays(np.int64, 9, elements=st.integers(0, 2)),
    threshold=st.sampled_from([0.5, 0.99]),
)
def test_boundary_leak_counts_agreeing_neighbours_across_boundaries(x, truth, threshold):
    pos = np.array([(r, c) for r in range(3) for c in range(3)], dtype=np.float64)
    pairs = neighbour_pairs(pos, 1.0)
    agree, across = 0, 0
    for i, j in pairs:
        if truth[i] == truth[j]:
            continue
        across += 1
        ni, nj = np.linalg.norm(x[i]), np.linalg.norm(x[j])
        cos = 1.0 if ni == nj == 0 else (0.0 if ni * nj == 0 else x[i] @ x[j] / (ni * nj))
        agree += cos >= threshold - 1e-12
    got = boundary_leak(x, truth, pairs, threshold)
    if across == 0:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(agree / across, abs=1e-15)
