"""Saving and opening results and weights without loss; re-running bit for bit."""

import numpy as np
import pytest
import xarray as xr

import glomsim as gs


@pytest.fixture(scope="module")
def run():
    cfg = gs.GlomConfig(
        levels=2,
        dim=5,
        grid=(3, 3),
        steps=4,
        mix=[gs.Mix(previous=[0.0, 1.0]), gs.Mix()],
        attention=[gs.Attention(radius=1.0), gs.Attention(kernel="bounded", epsilon=2.0)],
    )
    w = gs.random_weights(cfg, seed=7)
    u = np.random.default_rng(0).standard_normal((9, 5))
    return cfg, w, gs.simulate(cfg, w, inputs=u)


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_round_trip_is_lossless(run, tmp_path, suffix):
    cfg, w, ds = run
    path = gs.save(ds, tmp_path / f"run{suffix}", weights=w)
    back = gs.open_dataset(path).load()
    xr.testing.assert_identical(back, ds)
    cfg2, w2, ds2 = gs.load_run(path)
    assert cfg2 == cfg and w2 == w
    again = gs.rerun(ds2, w2)
    np.testing.assert_array_equal(again.embedding.values, ds.embedding.values)


def test_save_refuses_weights_of_another_run(run, tmp_path):
    cfg, _, ds = run
    with pytest.raises(ValueError, match="weights"):
        gs.save(ds, tmp_path / "x.zarr", weights=gs.random_weights(cfg, seed=8))


def test_bad_suffix(run, tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        gs.save(run[2], tmp_path / "x.csv")


def test_weights_npz_round_trip_and_hash(tmp_path):
    cfg = gs.GlomConfig(levels=3, dim=4, grid=(2, 2))
    w = gs.random_weights(cfg, seed=1, patch_size=2)
    w.meta["trained_on"] = "nothing"
    p = w.save(tmp_path / "w.npz")
    w2 = gs.load_weights(p)
    assert w2 == w and w2.content_hash() == w.content_hash() and w2.meta == w.meta
    assert w2.patch_size == 2 and w2.channels == 3
    w3 = gs.random_weights(cfg, seed=2)
    assert w3.content_hash() != w.content_hash()
    ident = gs.identity_weights(cfg)
    assert gs.load_weights(ident.save(tmp_path / "i")) == ident


def test_weights_shape_checks():
    cfg = gs.GlomConfig(levels=2, dim=3, grid=(2, 2))
    w = gs.random_weights(cfg, seed=0)
    arrays = w.arrays()
    arrays["bu_w1"] = arrays["bu_w1"][:, :2]
    with pytest.raises(ValueError, match="bu_w1"):
        gs.GlomWeights(levels=2, dim=3, hidden=12, n_columns=4, **arrays)
    arrays = w.arrays()
    arrays["td_b2"] = arrays["td_b2"] * np.nan
    with pytest.raises(ValueError, match="td_b2"):
        gs.GlomWeights(levels=2, dim=3, hidden=12, n_columns=4, **arrays)
