"""analysis.tracking: island identities over time and tracking lag behind a movie."""

import itertools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import analysis as an
from analysis._common import canonical_labels
from analysis.tracking import match_islands


def _islands(labels, times=None, **extra):
    """An islands-like Dataset from labels (time, level, column)."""
    labels = np.asarray(labels, dtype=np.int64)
    t, lv, n = labels.shape
    canon = np.stack([[canonical_labels(labels[i, j]) for j in range(lv)] for i in range(t)])
    coords = {"time": np.arange(t) if times is None else times, "level": np.arange(lv),
              "column": np.arange(n)}  # fmt: skip
    ds = xr.Dataset({"labels": (("time", "level", "column"), canon)}, coords=coords)
    for k, v in extra.items():
        ds = ds.assign_coords({k: v}) if k == "frame" else ds.assign({k: v})
    return ds


def _block(n, start, width):
    lab = np.zeros(n, dtype=np.int64)
    lab[start : start + width] = 1
    return lab


def test_a_translated_island_keeps_its_identity():
    n = 30
    labels = np.stack([_block(n, s, 6) for s in range(0, 20, 2)])[:, None, :]
    tr = an.track(_islands(labels))
    ids = tr.track.values[:, 0]
    for t, s in enumerate(range(0, 20, 2)):
        assert np.all(ids[t, s : s + 6] == ids[0, 0])  # the block's identity
        assert np.all(np.delete(ids[t], np.arange(s, s + 6)) == ids[0, 10])  # background's
    assert tr.births.values[1:, 0].sum() == 0 and tr.deaths.values[1:, 0].sum() == 0
    assert tr.lifetime.values[0].tolist() == [9, 9]  # recorded at times 0..9
    assert np.all(tr.alive_at_end.values[0])


def test_lifetime_uses_the_time_coordinate():
    labels = np.stack([_block(12, s, 4) for s in (0, 1, 2)])[:, None, :]
    tr = an.track(_islands(labels, times=np.array([0, 5, 10])))
    assert tr.lifetime.values[0].tolist() == [10, 10]
    assert tr.first_time.values[0].tolist() == [0, 0]


def test_a_split_gives_a_new_identity_to_the_smaller_part():
    before = np.zeros(20, dtype=np.int64)
    before[10:] = 1  # two islands of 10
    after = before.copy()
    after[17:] = 2  # island 1 splits into 7 + 3
    tr = an.track(_islands(np.stack([before, after])[:, None, :]))
    ids = tr.track.values[:, 0]
    assert np.all(ids[1, 10:17] == ids[0, 10])  # the larger part keeps it
    assert ids[1, 17] not in set(ids[0])  # the smaller part gets a new one
    assert tr.births.values[1, 0] == 1 and tr.deaths.values[1, 0] == 0
    assert tr.kept_fraction.values[1, 0] == pytest.approx(17 / 20)
    assert tr.lifetime.values[0].tolist() == [1, 1, 0]


def test_a_merge_keeps_the_larger_identity_and_ends_the_other():
    before = np.zeros(20, dtype=np.int64)
    before[12:] = 1  # 12 + 8
    after = np.zeros(20, dtype=np.int64)
    tr = an.track(_islands(np.stack([before, after])[:, None, :]))
    ids = tr.track.values[:, 0]
    assert np.all(ids[1] == ids[0, 0])
    assert tr.deaths.values[1, 0] == 1 and tr.births.values[1, 0] == 0
    assert tr.alive_at_end.values[0].tolist() == [True, False]


def test_no_overlap_above_the_minimum_is_no_match():
    # a block that jumps by more than its width: a new identity
    labels = np.stack([_block(20, 0, 3), _block(20, 10, 3)])[:, None, :]
    tr = an.track(_islands(labels))
    assert tr.track.values[1, 0, 10] != tr.track.values[0, 0, 0]
    assert tr.births.values[1, 0] == 1 and tr.deaths.values[1, 0] == 1


def _best_total(a, b, min_overlap):
    """Largest summed Jaccard index of a one-to-one matching, by brute force."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    jac = np.zeros((na, nb))
    for i in range(na):
        for j in range(nb):
            inter = np.sum((a == i) & (b == j))
            jac[i, j] = inter / np.sum((a == i) | (b == j))
    jac[jac < min_overlap] = 0.0
    best = 0.0
    small, large = (na, nb) if na <= nb else (nb, na)
    mat = jac if na <= nb else jac.T
    for perm in itertools.permutations(range(large), small):
        best = max(best, sum(mat[i, perm[i]] for i in range(small)))
    return best, jac


@given(
    a=st.lists(st.integers(0, 3), min_size=6, max_size=12),
    seed=st.integers(0, 2**16),
    min_overlap=st.sampled_from([0.1, 0.2, 0.5]),
)
def test_matching_is_one_to_one_and_maximal(a, seed, min_overlap):
    a = canonical_labels(np.array(a))
    b = canonical_labels(np.random.default_rng(seed).integers(0, 4, a.size))
    match = match_islands(a, b, min_overlap)
    assert match.shape == (b.max() + 1,)
    paired = match[match >= 0]
    assert len(set(paired.tolist())) == paired.size  # one-to-one
    best, jac = _best_total(a, b, min_overlap)
    got = sum(jac[match[j], j] for j in range(match.size) if match[j] >= 0)
    assert all(jac[match[j], j] >= min_overlap for j in range(match.size) if match[j] >= 0)
    assert got == pytest.approx(best)


@given(steps=st.lists(st.lists(st.integers(0, 3), min_size=8, max_size=8), min_size=1, max_size=6))
def test_identities_are_a_relabelling_of_each_steps_islands(steps):
    labels = np.array(steps)[:, None, :]
    tr = an.track(_islands(labels))
    ids = tr.track.values[:, 0]
    canon = _islands(labels).labels.values
    for t in range(len(steps)):
        # the same partition, one identity per island
        np.testing.assert_array_equal(canonical_labels(ids[t]), canon[t, 0])
    assert tr.births.values[:, 0].sum() == tr.sizes["identity"]
    assert np.all(tr.lifetime.values >= 0)
    assert np.all(tr.islands.values[:, 0] == [len(np.unique(s)) for s in steps])


def test_track_on_a_simulation_with_dask_and_input_untouched():
    import glomsim as gs

    cfg = gs.GlomConfig(levels=2, dim=4, grid=(5, 5), steps=6, dtype="float64",
                        attention=gs.Attention(kernel="cosine", beta=5.0, radius=1.5))  # fmt: skip
    rng = np.random.default_rng(0)
    ds = gs.simulate(cfg, gs.random_weights(cfg, seed=0), inputs=rng.standard_normal((25, 4)))
    before = ds.embedding.values.copy()
    plain = an.track(ds, threshold=0.9)
    lazy = an.track(ds.chunk({"time": 2}), threshold=0.9)
    np.testing.assert_array_equal(plain.track.values, lazy.track.values)
    np.testing.assert_array_equal(ds.embedding.values, before)
    for name in ("track", "lifetime", "kept_fraction", "births"):
        assert {"long_name", "units", "description"} <= set(plain[name].attrs)
    assert "analysis.track(" in plain.attrs["history"]


def _movie_islands(truth, frame, delay):
    """Islands that show the labels of the frame read ``delay`` steps earlier."""
    frame = np.asarray(frame)
    labels = np.stack([truth[frame[max(t - delay, 0)]] for t in range(len(frame))])
    return _islands(labels, label=(("frame", "level", "column"), truth), frame=("time", frame))


def _random_truth(n_frames, levels, n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, (n_frames, levels, n))  # frames share almost nothing


def test_lag_is_zero_when_the_islands_already_match():
    truth = _random_truth(4, 2, 40, 0)
    frame = np.repeat(np.arange(4), 5)
    out = an.tracking_lag(_movie_islands(truth, frame, delay=0))
    assert np.isnan(out.lag.values[0]).all()  # frame 0 is no change
    np.testing.assert_array_equal(out.lag.values[1:], 0.0)
    np.testing.assert_array_equal(out.settled_ari.values, 1.0)
    assert out.change_time.values.tolist() == [0, 5, 10, 15]
    for name in ("lag", "ari", "settled_ari", "mean_lag"):
        assert {"long_name", "units", "description"} <= set(out[name].attrs)


@pytest.mark.parametrize("delay", [1, 2, 3])
def test_lag_equals_a_known_delay(delay):
    truth = _random_truth(5, 3, 60, delay)
    frame = np.repeat(np.arange(5), 6)
    out = an.tracking_lag(_movie_islands(truth, frame, delay=delay))
    np.testing.assert_array_equal(out.lag.values[1:], float(delay))
    np.testing.assert_array_equal(out.mean_lag.values, float(delay))


def test_lag_is_nan_where_a_frame_is_never_recorded_or_never_agreed():
    truth = _random_truth(3, 1, 30, 5)
    frame = np.array([0, 0, 0, 2, 2, 2])  # frame 1 skipped by the recording
    isl = _movie_islands(truth, frame, delay=0)
    out = an.tracking_lag(isl)
    assert np.isnan(out.lag.values[1, 0]) and out.change_time.values[1] == -1
    assert out.lag.values[2, 0] == 0.0
    # islands that never agree: all singletons give ARI 0, no lag
    lone = isl.copy(deep=True)
    lone["labels"] = lone.labels * 0 + np.arange(30)
    assert np.isnan(an.tracking_lag(lone).lag.values[1:]).all()


def test_background_is_left_out_of_the_scores():
    # a large background and two objects that the islands merge into one
    truth = np.zeros((2, 1, 40), dtype=np.int64)
    truth[:, 0, 30:35], truth[:, 0, 35:] = 1, 2
    labels = np.zeros((4, 1, 40), dtype=np.int64)
    labels[:, 0, 30:] = 1
    isl = _islands(labels, label=(("frame", "level", "column"), truth),
                   frame=("time", [0, 0, 1, 1]))  # fmt: skip
    with_bg = an.tracking_lag(isl).ari.values
    without = an.tracking_lag(isl, background=0).ari.values
    assert np.all(with_bg > 0.5) and np.all(without == 0.0)


def test_tracking_lag_from_a_simulation_passes_island_options():
    # embeddings: one-hot codes of the labels of the frame read two steps earlier
    truth = _random_truth(3, 1, 36, 7) % 3
    frame = np.repeat(np.arange(3), 5)
    codes = np.eye(3)
    emb = np.stack([codes[truth[frame[max(t - 2, 0)], 0]] for t in range(15)])[:, None]
    y, x = np.divmod(np.arange(36), 6)
    ds = xr.Dataset(
        {"embedding": (("time", "level", "column", "feature"), emb),
         "label": (("frame", "level", "column"), truth)},
        coords={"time": np.arange(15), "frame": ("time", frame), "level": [0],
                "column": np.arange(36), "y": ("column", y * 1.0), "x": ("column", x * 1.0)},
    )  # fmt: skip
    out = an.tracking_lag(ds.chunk({"time": 4}), connectivity="global", threshold=0.9)
    np.testing.assert_array_equal(out.lag.values[1:, 0], 2.0)
    assert "connectivity='global'" in out.attrs["history"]


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda isl: an.track(isl, min_overlap=0), "min_overlap"),
        (lambda isl: an.track(isl, min_overlap=1.5), "min_overlap"),
        (lambda isl: an.track(isl, threshold=0.9), "island options"),
        (lambda isl: an.tracking_lag(isl, fraction=0), "fraction"),
        (lambda isl: an.tracking_lag(isl, background="bg"), "background"),
        (lambda isl: an.tracking_lag(isl.drop_vars("frame")), "frame"),
        (lambda isl: match_islands([0, 1], [0, 1, 1]), "same columns"),
    ],
)
def test_bad_input_gets_one_line_naming_the_field(call, field):
    truth = _random_truth(2, 1, 10, 0)
    isl = _movie_islands(truth, [0, 0, 1, 1], delay=0)
    with pytest.raises(ValueError, match=field) as err:
        call(isl)
    assert "\n" not in str(err.value)
