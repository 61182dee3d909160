"""Parse trees, ARI and purity; and islands on scenes with and without attention."""

from itertools import combinations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from analysis import adjusted_rand_index, agreement, hierarchy, islands, purity
from glomsim.dataset import create_dataset
from glomsim.scenes import make_scene

labelings = st.lists(st.integers(0, 4), min_size=1, max_size=25)


def naive_ari(a, b):
    """Hubert-Arabie ARI by counting pairs one by one."""
    pairs = list(combinations(range(len(a)), 2))
    same_a = np.array([a[i] == a[j] for i, j in pairs], dtype=bool)
    same_b = np.array([b[i] == b[j] for i, j in pairs], dtype=bool)
    n_pairs = len(pairs)
    index = float(np.sum(same_a & same_b))
    expected = same_a.sum() * same_b.sum() / n_pairs if n_pairs else 0.0
    top = (same_a.sum() + same_b.sum()) / 2.0
    if top == expected:
        return 1.0
    return (index - expected) / (top - expected)


def make_ds(embedding, grid, labels=None):
    embedding = np.asarray(embedding, dtype=np.float64)
    t, levels, n, dim = embedding.shape
    cfg = gs.GlomConfig(levels=levels, dim=dim, grid=grid, dtype="float64")
    return create_dataset(
        cfg,
        gs.identity_weights(cfg),
        embedding,
        list(range(t)),
        np.zeros((n, dim)),
        labels=labels,
    )


# ----- adjusted Rand index and purity ---------------------------------------------------


@given(labelings)
def test_ari_of_a_partition_with_itself_is_one(a):
    assert adjusted_rand_index(a, a) == 1.0


@given(st.data())
def test_ari_matches_pair_counting_and_is_symmetric(data):
    a = data.draw(labelings)
    b = data.draw(st.lists(st.integers(0, 4), min_size=len(a), max_size=len(a)))
    ari = adjusted_rand_index(a, b)
    assert ari == pytest.approx(naive_ari(a, b), abs=1e-12)
    assert ari == pytest.approx(adjusted_rand_index(b, a), abs=1e-12)
    assert ari <= 1.0 + 1e-12


@given(st.data())
def test_ari_and_purity_ignore_label_names(data):
    a = data.draw(labelings)
    b = data.draw(st.lists(st.integers(0, 4), min_size=len(a), max_size=len(a)))
    rename = data.draw(st.permutations(range(5)))
    renamed = [f"class-{rename[v]}" for v in b]
    assert adjusted_rand_index(a, renamed) == pytest.approx(adjusted_rand_index(a, b), abs=1e-12)
    assert purity(a, renamed) == pytest.approx(purity(a, b))
    assert purity(renamed, a) == pytest.approx(purity(b, a))


def test_ari_of_random_labels_is_near_zero():
    rng = np.random.default_rng(0)
    values = [
        adjusted_rand_index(rng.integers(0, 5, 300), rng.integers(0, 5, 300)) for _ in range(50)
    ]
    assert abs(np.mean(values)) < 0.01
    assert max(abs(v) for v in values) < 0.05


def test_ari_known_values_and_edge_cases():
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand_index([0, 0, 0], [1, 1, 1]) == 1.0
    assert adjusted_rand_index([], []) == 1.0
    assert adjusted_rand_index([0, 1, 2], [0, 0, 0]) == 0.0
    # large inputs: pair counts beyond int64 products must not overflow
    big = np.arange(200_000) % 7
    assert adjusted_rand_index(big, big) == 1.0
    with pytest.raises(ValueError, match="entries"):
        adjusted_rand_index([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="1-D"):
        adjusted_rand_index(np.zeros((2, 2)), np.zeros((2, 2)))


@given(st.data())
def test_purity_is_a_fraction(data):
    a = data.draw(labelings)
    b = data.draw(st.lists(st.integers(0, 4), min_size=len(a), max_size=len(a)))
    p = purity(a, b)
    assert 0.0 < p <= 1.0
    # never below the share of the most common true class
    assert p >= np.bincount(b).max() / len(b) - 1e-12
    assert purity(b, b) == 1.0
    assert purity(np.arange(len(a)), b) == 1.0  # singletons are pure


def test_purity_known_value():
    assert purity([0, 0, 1, 1], [0, 0, 0, 1]) == 0.75
    assert purity([0, 0, 0, 0], [0, 0, 1, 1]) == 0.5


# ----- parse trees ---------------------------------------------------------------------


def test_hierarchy_known_tree():
    # level 0: [a a b b c c], level 1: [A A A A B B], level 2: [X X X Y Y Y]
    e = np.eye(3)
    emb = np.stack([e[[0, 0, 1, 1, 2, 2]], e[[0, 0, 0, 0, 1, 1]], e[[0, 0, 0, 1, 1, 1]]])
    h = hierarchy(make_ds(emb[None], (1, 6)))
    assert h.parent.values[0, 0].tolist() == [0, 0, 1]
    assert h.n_parents.values[0, 0].tolist() == [1, 1, 1]
    # island A (columns 0-3) spans X and Y
    assert h.parent.values[0, 1].tolist() == [-1, 1, -1]
    assert h.n_parents.values[0, 1].tolist() == [2, 1, 0]
    assert h.parent.values[0, 2].tolist() == [-1, -1, -1]
    assert h.column_nesting.values[0, :2].tolist() == [1.0, 2 / 6]
    assert h.island_nesting.values[0, :2].tolist() == [1.0, 0.5]
    assert np.isnan(h.column_nesting.values[0, 2])
    assert float(h.parse_score[0]) == pytest.approx((1 + 2 / 6) / 2)


@given(n=st.integers(2, 30), seed=st.integers(0, 2**16))
def test_coarsened_islands_form_a_perfect_tree(n, seed):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 6, n)
    coarse = fine // 2  # every fine class inside one coarse class
    e = np.eye(6)
    # global islands: position plays no role, so islands are exactly the classes
    emb = np.stack([e[fine], e[coarse], e[np.zeros(n, dtype=int)]])[None]
    h = hierarchy(make_ds(emb, (1, n)), connectivity="global")
    assert float(h.parse_score[0]) == 1.0
    assert np.all(h.n_parents.values[0, :2][h.parent.values[0, :2] >= 0] == 1)


def test_hierarchy_accepts_islands_and_records_history():
    emb = np.ones((2, 2, 4, 3))
    ds = make_ds(emb, (2, 2))
    isl = islands(ds)
    a, b = hierarchy(isl), hierarchy(ds)
    xr.testing.assert_equal(a.parent, b.parent)
    assert "analysis.hierarchy(" in a.attrs["history"].splitlines()[-1]
    assert "analysis.islands(" in a.attrs["history"].splitlines()[-2]
    for name in a.data_vars:
        assert a[name].attrs["long_name"] and "units" in a[name].attrs
    with pytest.raises(ValueError, match="threshold"):
        hierarchy(isl, threshold=0.5)


def test_agreement_with_ground_truth():
    scene = make_scene(grid=(8, 8), dim=8, levels=3, n_objects=2, noise=0.0, seed=4)
    # one distinct code per label; level 2 holds the texture partition, not the objects
    init = np.stack([scene.codes[scene.labels[lv]] for lv in (0, 1, 0)])
    labels = np.array(scene.labels)
    labels[2, :5] = -1  # unknown ground truth is left out
    ds = make_ds(init[None], (8, 8), labels=labels)
    ag = agreement(ds, connectivity="global")
    assert ag.ari.values[0, :2].tolist() == [1.0, 1.0]
    assert ag.purity.values[0, 0] == 1.0 and ag.inverse_purity.values[0, 0] == 1.0
    # level 2: pure islands, but objects split into several
    assert ag.purity.values[0, 2] == 1.0 and ag.ari.values[0, 2] < 1.0
    assert ag.ari.dims == ("time", "level")
    for name in ag.data_vars:
        assert ag[name].attrs["long_name"] and "units" in ag[name].attrs
    isl = islands(ds, connectivity="global")
    xr.testing.assert_equal(agreement(ds, islands=isl).ari, ag.ari)
    xr.testing.assert_equal(agreement(isl).ari, ag.ari)  # islands carry the ground truth
    labels[1] = -1
    ag = agreement(make_ds(init[None], (8, 8), labels=labels))
    assert np.isnan(ag.ari.values[0, 1])
    with pytest.raises(ValueError, match="label"):
        agreement(make_ds(init[None], (8, 8)))


# ----- islands on scenes: attention makes them, its absence does not ---------------------


@pytest.fixture(scope="module")
def scene_runs():
    """A 12 x 12 scene through identity nets, with and without attention.

    Level 0 reads noisy tokens (noise 0.3: raw tokens of one texture have cos ~0.92, below
    the 0.95 threshold); a cosine kernel with beta 10 averages mostly within a texture,
    so attention removes the noise and islands appear.
    """
    scene = make_scene(grid=(12, 12), dim=16, levels=3, n_objects=3, noise=0.3, seed=0)
    runs = {}
    for name, weight in (("attention", 3.0), ("none", 0.0)):
        cfg = gs.GlomConfig(
            levels=3,
            dim=16,
            grid=(12, 12),
            steps=30,
            mix=gs.Mix(bottom_up=1, top_down=1, previous=1, attention=weight),
            attention=gs.Attention(kernel="cosine", beta=10.0, radius=1.5),
            normalize="l2",
        )
        ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene)
        isl = islands(ds, threshold=0.95, time=-1)
        runs[name] = (isl, agreement(ds, islands=isl), hierarchy(isl))
    return runs


def test_attention_forms_islands_that_match_the_scene(scene_runs):
    isl, ag, h = scene_runs["attention"]
    n = isl.sizes["column"]
    count = isl["count"].values[0]
    assert np.all(count < n / 4)
    assert np.all(isl.largest_fraction.values[0] > 0.3)
    # level 0 finds the textures, level 1 the parts
    assert ag.ari.sel(level=0).item() > 0.9
    assert ag.ari.sel(level=1).item() > 0.9
    assert ag.ari.sel(level=2).item() > 0.8
    assert np.all(ag.purity.values > 0.95)
    assert float(h.parse_score[0]) > 0.9
    # spatially coherent: shuffled over positions the same embeddings make many more islands
    assert np.all(isl.baseline_count.values[0] > 2 * count)


def test_without_attention_no_islands_form(scene_runs):
    isl, ag, _ = scene_runs["none"]
    n = isl.sizes["column"]
    assert np.all(isl["count"].values[0] > n / 2)
    assert np.all(isl.largest_fraction.values[0] < 0.1)
    assert np.all(ag.ari.values < 0.1)
    # nothing spatial to find: the shuffled baseline looks the same
    assert np.all(isl.baseline_count.values[0] > 0.8 * isl["count"].values[0])
    assert np.all(isl.baseline_largest_fraction.values[0] < 0.1)


def test_attention_and_no_attention_are_told_apart(scene_runs):
    with_att, ag_att, _ = scene_runs["attention"]
    without, ag_none, _ = scene_runs["none"]
    assert np.all(with_att["count"].values < without["count"].values / 4)
    assert np.all(with_att.largest_fraction.values > 3 * without.largest_fraction.values)
    assert np.all(ag_att.ari.values > ag_none.ari.values + 0.7)
