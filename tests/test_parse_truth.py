"""The parse tree against the scene's true parents: analysis.hierarchy.parse_truth and
parent_nesting. Properties: a perfect parse scores 1, shuffled islands score low, the
trivial parses score low on the objects, and label names do not matter."""

import numpy as np
import pytest

import glomsim as gs
from analysis.hierarchy import PARSE_BASELINES, parent_nesting, parse_truth
from glomsim.scenes import make_scene


def scene_labels(seed=0):
    scene = make_scene(grid=(12, 12), dim=32, levels=4, n_objects=2, parts_per_object=3,
                       textures_per_part=2, noise=0.0, seed=seed)  # fmt: skip
    return np.asarray(scene.labels), scene


def truth_ds(scene, labels):
    """A simulation whose states are one-hot codes of ``labels`` (level, column), so its
    global islands at cosine 0.99 are exactly those labels."""
    levels, n = labels.shape
    dim = int(labels.max()) + 1
    cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(12, 12), steps=0)
    init = np.stack([np.eye(dim)[lab] for lab in labels])
    tokens = np.eye(dim)[labels[0]]
    ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=tokens, init=init)
    return ds.assign(label=(("level", "column"), np.asarray(scene.labels)))


def naive(lower, upper, true_upper, scored):
    """One column at a time, each true label's island the one holding most of its columns
    (the one-to-one matching's choice as long as no two labels pick the same island)."""
    out = []
    for c in np.nonzero(scored)[0]:
        parent = true_upper[c]
        members = true_upper == parent
        ids, counts = np.unique(upper[members], return_counts=True)
        best = ids[np.argmax(counts)]
        island = lower == lower[c]
        out.append(bool(np.all(upper[island] == best)))
    return float(np.mean(out))


def test_a_perfect_parse_scores_one_at_every_level_pair():
    labels, _ = scene_labels()
    for level in range(labels.shape[0] - 1):
        assert parent_nesting(labels[level], labels[level + 1], labels[level + 1]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_islands_score_low(seed):
    labels, _ = scene_labels(seed)
    rng = np.random.default_rng(seed)
    objects = labels[2] > 0
    for level in range(2):
        lower = rng.permutation(labels[level])  # the same island sizes, scattered
        upper = rng.permutation(labels[level + 1])
        score = parent_nesting(lower, upper, labels[level + 1], objects)
        assert score < 0.2, (level, score)


def test_label_names_do_not_matter():
    labels, _ = scene_labels(1)
    rng = np.random.default_rng(5)
    # an imperfect parse: level 1's islands are the textures (the truth one level late)
    lower, upper, true_upper = labels[0], labels[0].copy(), labels[1]
    upper[:20] = 99  # and some damage
    base = parent_nesting(lower, upper, true_upper)
    assert 0 < base < 1

    def rename(a):
        values = np.unique(a)
        return dict(zip(values, rng.permutation(values) * 7 + 3, strict=True))

    for _ in range(5):
        ml, mu, mt = rename(lower), rename(upper), rename(true_upper)
        got = parent_nesting([ml[v] for v in lower], [mu[v] for v in upper],
                             [mt[v] for v in true_upper])  # fmt: skip
        assert got == pytest.approx(base)


def test_the_score_is_nesting_into_the_true_parents_island():
    labels, _ = scene_labels(2)
    rng = np.random.default_rng(0)
    lower, upper = labels[1].copy(), labels[1].copy()
    # merge two objects' parts at the upper level and split a few columns off
    upper[upper == labels[1][labels[2] == 2][0]] = labels[1][labels[2] == 1][0]
    upper[rng.choice(upper.size, 10, replace=False)] = 50 + np.arange(10)
    scored = labels[2] > 0
    assert parent_nesting(lower, upper, labels[2], scored) == pytest.approx(
        naive(lower, upper, labels[2], scored)
    )


def test_one_island_everywhere_scores_only_the_largest_true_label():
    labels, _ = scene_labels()
    one = np.zeros(labels.shape[1], dtype=int)
    objects = labels[2] > 0
    # over the objects' columns, the one island is matched to the background, not to them
    assert parent_nesting(one, one, labels[2], objects) == 0.0
    share = np.bincount(labels[2]).max() / labels.shape[1]
    assert parent_nesting(one, one, labels[2]) == pytest.approx(share)


def test_parse_truth_on_islands_equal_to_the_truth():
    labels, scene = scene_labels()
    ds = truth_ds(scene, labels)
    out = parse_truth(ds, connectivity="global", threshold=0.99)
    score = out.parent_score.values[0]
    assert score[:3].tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(score[3])
    assert float(out.parse_truth_score[0]) == 1.0
    objects = parse_truth(ds, objects_only=True, connectivity="global", threshold=0.99)
    assert objects.parent_score.values[0, :3].tolist() == [1.0, 1.0, 1.0]
    assert objects.columns_scored.values[:3].tolist() == [int((labels[2] > 0).sum())] * 3
    # the trivial parses score below the truth on the objects
    base = objects.baseline_parent_score
    assert list(base.baseline.values) == list(PARSE_BASELINES)
    assert (base.sel(baseline="one_island").values[:2] == 0).all()
    # ... except below the scene level, whose truth is one island
    assert float(base.sel(baseline="one_island", level=2)) == 1.0
    assert (base.sel(baseline="background_and_singletons").values[:3] < 0.2).all()
    assert (base.sel(baseline="finer_truth").values[:2] < 0.8).all()


def test_parse_truth_one_level_late_scores_like_its_baseline():
    labels, scene = scene_labels()
    late = labels.copy()
    late[1:3] = labels[0:2]  # level l's islands are level l-1's labels
    out = parse_truth(truth_ds(scene, late), objects_only=True, connectivity="global",
                      threshold=0.99)  # fmt: skip
    got = out.parent_score.values[0]
    want = out.baseline_parent_score.sel(baseline="finer_truth").values
    assert got[1] == pytest.approx(want[1])


def test_parse_truth_needs_a_ground_truth():
    cfg = gs.GlomConfig(levels=2, dim=2, grid=(1, 4), steps=0)
    ds = gs.simulate(cfg, gs.identity_weights(cfg))
    with pytest.raises(ValueError, match="ground truth"):
        parse_truth(ds)
