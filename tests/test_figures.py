"""Figures a researcher trusts at a glance: island colours, ground truth, shared scales."""

import matplotlib
import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from analysis import _colours as col
from analysis import plot

matplotlib.use("Agg")


def voronoi_map(rows, cols, n_seeds, seed):
    """A label map of ``n_seeds`` contiguous regions (nearest seed point), numbered 0..K-1."""
    rng = np.random.default_rng(seed)
    points = rng.uniform([0, 0], [rows, cols], size=(n_seeds, 2))
    yy, xx = np.mgrid[0:rows, 0:cols]
    d = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2
    labels = d.argmin(axis=-1)
    return np.unique(labels, return_inverse=True)[1].reshape(rows, cols)


def touching_pairs(label_map):
    """(a, b) label pairs of 8-neighbouring cells with different labels."""
    out = set()
    r, c = label_map.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = label_map[0 : r - dy, max(0, -dx) : c - max(0, dx)]
        b = label_map[dy:r, max(0, dx) : c - max(0, -dx)]
        m = a != b
        out |= set(zip(a[m].tolist(), b[m].tolist(), strict=True))
    return out


def test_palette_has_no_greys_and_no_two_colours_alike():
    p = col.palette()
    assert len(p) >= 24
    lab = col._lab(p)
    assert np.hypot(lab[:, 1], lab[:, 2]).min() >= col.MIN_CHROMA
    d = col.delta_e(p[:, None], p[None])
    assert d[~np.eye(len(p), dtype=bool)].min() >= col.MIN_DELTA_E
    assert col.delta_e(p, col.BACKGROUND).min() >= col.MIN_DELTA_E


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(120, 220))
def test_adjacent_islands_get_different_colours(seed, n):
    label_map = voronoi_map(40, 40, n, seed)
    assert label_map.max() + 1 >= 100
    rgb = plot.island_colours(label_map)
    assert rgb.shape == (40, 40, 3)
    colour_of = {int(v): tuple(rgb[label_map == v][0]) for v in np.unique(label_map)}
    # one colour per island
    for v in np.unique(label_map):
        assert len(np.unique(rgb[label_map == v], axis=0)) == 1
    for a, b in touching_pairs(label_map):
        assert col.delta_e(np.array(colour_of[a]), np.array(colour_of[b])) >= col.MIN_DELTA_E
    # the whole palette is used, so far-apart islands rarely share a colour either
    assert len(set(colour_of.values())) >= min(len(col.palette()), 20)


def test_background_island_is_grey_and_matching_islands_take_the_truth_colours():
    truth = np.zeros((8, 8), dtype=int)
    truth[1:5, 1:5] = 1
    truth[5:8, 2:8] = 2  # objects cover about half the scene, as make_scene's do
    islands = truth.copy()
    islands[5:8, 6:8] = 3  # label 2 split in two islands
    rgb = plot.island_colours(islands, truth=truth.ravel())
    truth_rgb = plot.island_colours(truth, truth=truth.ravel())
    grey = (rgb == col.BACKGROUND).all(axis=-1)
    assert np.array_equal(grey, truth == 0)
    assert np.array_equal(rgb[truth == 1], truth_rgb[truth == 1])  # same colour as truth
    assert not np.array_equal(rgb[5, 2], rgb[5, 7])  # the split's parts differ
    # one island over everything is no background, though it holds every background column
    assert not (plot.island_colours(0 * truth, truth=truth.ravel()) == col.BACKGROUND).any()
    # without truth nothing is grey
    assert not (plot.island_colours(islands) == col.BACKGROUND).all(axis=-1).any()


def _islands_dataset(labels, rows, cols, truth=None):
    """A hand-built analysis.islands result: labels (time, level, column)."""
    t, lv, n = labels.shape
    yy, xx = np.divmod(np.arange(n), cols)
    ds = xr.Dataset(
        {"labels": (("time", "level", "column"), labels)},
        coords={
            "time": ("time", np.arange(t), {"long_name": "step"}),
            "level": np.arange(lv),
            "column": np.arange(n),
            "y": ("column", yy.astype(float)),
            "x": ("column", xx.astype(float)),
        },
    )
    if truth is not None:
        ds["label"] = (("level", "column"), truth)
    return ds


def _panel(ax):
    return np.asarray(ax.images[0].get_array())[..., :3]


def test_colours_stay_with_an_island_across_steps():
    quad = np.zeros((8, 8), dtype=int)
    quad[:4, 4:], quad[4:, :4], quad[4:, 4:] = 1, 2, 3
    later = np.array([3, 0, 2, 1])[quad]  # same islands, other numbers
    later[4:, 6:] = 4  # island 3 (now 1) splits
    labels = np.stack([quad.ravel(), later.ravel()])[:, None]
    fig = plot.island_maps(_islands_dataset(labels, 8, 8))
    first, second = _panel(fig.axes[0]), _panel(fig.axes[1])
    for r, c in ((0, 0), (0, 7), (7, 0)):
        np.testing.assert_array_equal(first[r, c], second[r, c])
    assert not np.array_equal(second[7, 4], second[7, 7])


def test_ground_truth_panel_and_agreement_in_titles():
    truth = np.zeros((2, 36), dtype=int)
    truth[:, :12] = 1
    truth[1, 30:] = 2
    labels = np.stack([np.arange(36).reshape(1, 36).repeat(2, 0), truth])  # (time, level, N)
    fig = plot.island_maps(_islands_dataset(labels, 6, 6, truth), name="run.zarr")
    assert len(fig.axes) == 2 * 3  # truth + two steps, per level
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "ground truth: 2 labels" and titles[3] == "ground truth: 3 labels"
    assert titles[1] == "step 0: 36 islands\nARI 0.00"
    assert titles[2] == "step 1: 2 islands\nARI 1.00"
    assert fig.get_suptitle().startswith("run.zarr: ")
    # islands equal to the truth are drawn exactly as the truth
    np.testing.assert_array_equal(_panel(fig.axes[0]), _panel(fig.axes[2]))
    np.testing.assert_array_equal(_panel(fig.axes[3]), _panel(fig.axes[5]))


def test_one_island_is_singular_and_a_summaries_only_title_fits():
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=4)
    ds = gs.simulate(cfg, gs.identity_weights(cfg), summaries_only=True, init=np.ones((2, 9, 4)))
    fig = plot.island_maps(ds, name="a-long-run-name-saved-by-glomsim-run.zarr")
    assert fig.axes[0].get_title().endswith(": 1 island")
    fig.draw_without_rendering()
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width


def _sweep():
    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "ari": (("seed", "level", "beta", "aw"), rng.random((3, 3, 2, 4)),
                    {"long_name": "ARI", "units": "1"}),
            "island_count": (("seed", "level", "beta", "aw"), rng.integers(1, 50, (3, 3, 2, 4)),
                             {"long_name": "islands at the end", "units": "island"}),
        },
        coords={
            "aw": ("aw", [0.0, 0.5, 1.0, 2.0], {"long_name": "attention weight", "units": "1"}),
            "beta": ("beta", [1.0, 4.0], {"long_name": "sharpness", "units": "1/cos"}),
            "level": [0, 1, 2],
        },
        attrs={"sweep_name": "demo"},
    )  # fmt: skip


@pytest.mark.parametrize("var", ["ari", "island_count"])
def test_heatmaps_share_one_labelled_colour_bar(var):
    ds = _sweep()
    fig = plot.heatmaps(ds, var, "aw", "beta")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(bars) == 1 and len(panels) == 3
    assert bars[0].get_ylabel() == ("ARI" if var == "ari" else "islands at the end [island]")
    norms = {(im.norm.vmin, im.norm.vmax) for ax in panels for im in ax.images}
    assert len(norms) == 1  # one colour scale for every panel
    mean = ds[var].mean("seed").values
    assert norms.pop() == pytest.approx((mean.min(), mean.max()))
    assert panels[0].get_xlabel() == "attention weight"
    assert panels[0].get_ylabel() == "sharpness [1/cos]"
    assert fig.get_suptitle().startswith("demo: ") and "mean over 3 seeds" in fig.get_suptitle()
    # text readable on its cell: dark text on light cells, light text on dark ones
    for ax in panels:
        im = ax.images[0]
        grid = im.get_array()
        for text in ax.texts:
            j, i = (int(round(v)) for v in text.get_position())
            cell = col.lightness(np.asarray(im.cmap(im.norm(grid[i, j])))[:3])
            ink = col.lightness(np.asarray(matplotlib.colors.to_rgb(text.get_color())))
            assert abs(cell - ink) > 40
    with pytest.raises(ValueError, match="nope"):
        plot.heatmaps(ds, "nope", "aw", "beta")
    with pytest.raises(ValueError, match="'gamma'"):
        plot.heatmaps(ds, "ari", "gamma", "beta")


def test_convergence_legend_explains_the_settling_markers():
    time = np.arange(5)
    res = np.array([[np.nan, np.nan], [1.0, 1.0], [0.1, 0.5], [0.01, 0.4], [0.001, 0.3]])

    def conv(settled):
        return xr.Dataset(
            {"residual": (("time", "level"), res), "settled_step": ("level", settled)},
            coords={"time": time, "level": [0, 1]},
        )

    ax = plot.convergence_curves(conv([3, -1]), name="run.nc").axes[0]
    entries = [t.get_text() for t in ax.get_legend().get_texts()]
    assert entries[:2] == ["level 0", "level 1"]
    assert len(entries) == 3 and entries[2].startswith("settling step")
    assert ax.get_legend().get_lines()[2].get_linestyle() == ":"
    assert ax.get_title().startswith("run.nc: ")
    ax = plot.convergence_curves(conv([-1, -1])).axes[0]
    assert len(ax.get_legend().get_texts()) == 2  # no marker, no entry


def test_projection_uses_the_island_maps_colours():
    from glomsim.scenes import make_scene

    scene = make_scene(grid=(6, 6), dim=8, levels=2, n_objects=1, noise=0.0, seed=0)
    cfg = gs.GlomConfig(levels=2, dim=8, grid=(6, 6), steps=3)
    ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene,
                     init=np.asarray(scene.tokens)[None].repeat(2, 0))  # fmt: skip
    from analysis import islands

    isl = islands(ds, threshold=0.95)
    maps = plot.island_maps(isl, times=[-1], levels=[0])
    img = _panel(maps.axes[1]).reshape(-1, 3)
    proj = plot.projection(ds, time=-1, level=0, islands=isl)
    points = proj.axes[0].collections[0].get_facecolors()[:, :3]
    np.testing.assert_allclose(points, img)
    assert "ARI" in proj.axes[0].get_title()


def test_colours_follow_the_tracked_identity_of_a_moving_island():
    from analysis import track

    steps = []
    for t in range(6):  # a 3x3 square moving right one column a step, two still islands
        m = np.zeros((8, 12), dtype=int)
        m[5:, :] = 1
        m[1:4, 1 + t : 4 + t] = 2
        steps.append(np.roll([0, 1, 2], t)[m.ravel()])  # numbered otherwise at every step
    isl = _islands_dataset(np.stack(steps)[:, None], 8, 12)
    ids = track(isl).track.values[:, 0]
    fig = plot.island_maps(isl)
    colour_of = {}
    for t, ax in enumerate(fig.axes):
        rgb = _panel(ax).reshape(-1, 3)
        for identity in np.unique(ids[t]):
            c = np.unique(rgb[ids[t] == identity], axis=0)
            assert len(c) == 1
            assert np.array_equal(colour_of.setdefault(int(identity), c[0]), c[0])
    assert len(colour_of) == 3  # the square kept its identity, and its colour, all along
