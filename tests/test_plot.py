"""Figures: structure, labels taken from attrs, and PNG output."""

import matplotlib
import numpy as np
import pytest
import xarray as xr

import glomsim as gs
from analysis import islands, plot
from glomsim.dataset import create_dataset

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def run():
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(4, 5), steps=0, dtype="float64")
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((4, 2, 20, 4))
    emb[-1, :, :10] = emb[-1, :, :1]  # an island in the last step
    return create_dataset(cfg, gs.identity_weights(cfg), emb, [0, 1, 2, 5], np.zeros((20, 4)))


def _png(fig, path):
    fig.savefig(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_island_maps(run, tmp_path):
    isl = islands(run, threshold=0.98)
    fig = plot.island_maps(isl)
    assert len(fig.axes) == 2 * 4  # levels x times
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[3].startswith("step 5: ")
    count = int(isl["count"].sel(time=5, level=0))
    assert titles[3] == f"step 5: {count} islands"
    assert fig.axes[0].get_ylabel() == "level 0" and fig.axes[4].get_ylabel() == "level 1"
    assert "threshold=0.98" in fig.get_suptitle()
    # grid layout is drawn as an image with the grid's shape
    assert fig.axes[0].images[0].get_array().shape[:2] == (4, 5)
    _png(fig, tmp_path / "maps.png")


def test_island_maps_selection_and_scattered_positions(run, tmp_path):
    fig = plot.island_maps(run, times=[-1], levels=[1], threshold=0.9)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "level 1"
    cfg = gs.GlomConfig(levels=1, dim=2, positions=[(0, 0), (0.5, 2.0), (3, 1)])
    ds = gs.simulate(cfg, gs.identity_weights(cfg), steps=0)
    fig = plot.island_maps(ds)
    assert len(fig.axes) == 1 and len(fig.axes[0].collections) == 1  # points, not an image
    _png(fig, tmp_path / "scatter.png")
    with pytest.raises(ValueError, match="threshold"):
        plot.island_maps(islands(run), threshold=0.5)


def test_convergence_curves(tmp_path):
    time = np.arange(6)
    residual = np.array(
        [[np.nan, np.nan], [1e-1, 1.0], [1e-2, 0.5], [1e-3, 0.25], [0, 0.1], [0, 0.05]]
    )
    conv = xr.Dataset(
        {
            "residual": (("time", "level"), residual, {"long_name": "RMS change", "units": "1"}),
            "settled_step": ("level", [3, -1]),
            "rate": ("level", [0.1, np.nan]),
        },
        coords={"time": ("time", time, {"long_name": "step", "units": "1"}), "level": [0, 1]},
    )
    fig = plot.convergence_curves(conv)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel() == "RMS change" and ax.get_xlabel() == "step"
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("level")]
    assert [ln.get_label() for ln in lines] == ["level 0 (rate 0.1)", "level 1"]
    # one dotted line at the settling step of level 0 only
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]) == 1
    _png(fig, tmp_path / "conv.png")
    with pytest.raises(ValueError, match="residual"):
        plot.convergence_curves(xr.Dataset())


def test_convergence_curves_from_analysis(tmp_path):
    from analysis import convergence

    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=8)
    fig = plot.convergence_curves(convergence(gs.simulate(cfg)))
    assert len(fig.axes[0].get_lines()) >= 2
    _png(fig, tmp_path / "conv2.png")


@pytest.mark.parametrize("form", ["complex", "parts"])
def test_spectrum(form, tmp_path):
    eig = np.array([0.9, 0.5 + 0.5j, 0.5 - 0.5j, np.nan])
    if form == "complex":
        stab = xr.Dataset({"eigenvalues": ("mode", eig, {"long_name": "eigenvalue"})})
    else:
        stab = xr.Dataset(
            {
                "eigenvalues_real": ("mode", eig.real, {"long_name": "eigenvalue (real part)"}),
                "eigenvalues_imag": ("mode", eig.imag),
                "spectral_radius": ((), 0.9),
            }
        )
    fig = plot.spectrum(stab)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Re" and ax.get_ylabel() == "Im"
    assert ax.get_title().startswith("eigenvalues")
    points = ax.collections[0].get_offsets()
    assert len(points) == 3  # NaN padding dropped
    np.testing.assert_allclose(sorted(points[:, 1]), [-0.5, 0.0, 0.5])
    circle = ax.get_lines()[0].get_xydata()
    np.testing.assert_allclose(np.hypot(circle[:, 0], circle[:, 1]), 1.0)
    if form == "parts":
        assert "spectral radius 0.9" in ax.get_title()
    _png(fig, tmp_path / f"spec-{form}.png")
    with pytest.raises(ValueError, match="eigenvalues"):
        plot.spectrum(xr.Dataset())


def test_projection(run, tmp_path):
    fig = plot.projection(run, time=-1, level=0, threshold=0.98)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    assert ax.get_title().startswith("embedding, level 0, step 5:")
    assert len(ax.collections[0].get_offsets()) == 20
    isl = islands(run, threshold=0.98)
    colours = ax.collections[0].get_facecolors()
    # the ten columns of the island share one colour
    assert len(np.unique(colours[:10], axis=0)) == 1
    assert plot.projection(run, islands=isl).axes[0].get_title() == ax.get_title()
    _png(fig, tmp_path / "proj.png")
    with pytest.raises(ValueError, match="level"):
        plot.projection(run, level=5)


def test_projection_of_a_consensus_state():
    cfg = gs.GlomConfig(levels=1, dim=1, grid=(2, 2), steps=0)
    fig = plot.projection(gs.simulate(cfg, gs.identity_weights(cfg)))
    assert fig.axes[0].get_xlabel() == "PC1 (0.0 % of variance)"
