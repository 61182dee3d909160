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


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_save_refuses_an_existing_path_unless_told(run, tmp_path, suffix):
    cfg, w, ds = run
    path = gs.save(ds, tmp_path / "new" / f"run{suffix}", weights=w)  # the folder is made
    other = gs.simulate(cfg, w, steps=2)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        gs.save(other, path, weights=w)
    xr.testing.assert_identical(gs.open_dataset(path).load(), ds)  # untouched
    gs.save(other, path, weights=w, overwrite=True)
    assert int(gs.open_dataset(path).time[-1]) == 2
    gs.save(ds, path, mode="w")  # the old explicit mode replaces, as it did
    xr.testing.assert_identical(gs.open_dataset(path).load(), ds)
    # replaced without weights: the old weights file went with the old data
    assert not path.with_name(path.name + ".weights.npz").exists()
    assert gs.load_run(path)[1] is None
    with pytest.raises(ValueError, match="mode"):
        gs.save(ds, path, mode="x")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporaries


def test_a_failed_save_keeps_the_old_result(run, tmp_path):
    cfg, w, ds = run
    path = gs.save(ds, tmp_path / "run.nc")
    bad = ds.copy()
    bad.attrs["unwritable"] = {"a dict": "netCDF cannot hold"}
    with pytest.raises((TypeError, ValueError)):
        gs.save(bad, path, overwrite=True)
    xr.testing.assert_identical(gs.open_dataset(path).load(), ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]


def test_load_run_refuses_weights_that_are_not_the_runs(run, tmp_path):
    cfg, w, ds = run
    path = gs.save(ds, tmp_path / "run.zarr", weights=w)
    gs.random_weights(cfg, seed=99).save(path.with_name(path.name + ".weights.npz"))
    with pytest.raises(ValueError, match="weights.npz"):
        gs.load_run(path)


def test_rerun_of_a_summaries_only_run_is_bit_for_bit():
    # float64 and a start from the weights' initial levels: the default start is a
    # broadcast view, whose sums round differently from a copy's
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(5, 5), steps=6, dtype="float64")
    w = gs.random_weights(cfg, seed=3)
    ds = gs.simulate(cfg, w, summaries_only=True)
    again = gs.rerun(ds, w)
    for name in ("rms", "change", "embedding"):
        np.testing.assert_array_equal(again[name].values, ds[name].values)
    # an explicit start reruns from that start, exactly too
    init = np.random.default_rng(0).standard_normal((3, 25, 6))
    ds = gs.simulate(cfg, w, init=init, summaries_only=True)
    np.testing.assert_array_equal(gs.rerun(ds, w).rms.values, ds.rms.values)


@pytest.mark.parametrize("every,steps", [(3, 7), (3, 9), (5, 4), (1, 0)])
def test_rerun_keeps_record_every(every, steps):
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=steps)
    w = gs.random_weights(cfg, seed=1)
    ds = gs.simulate(cfg, w, record_every=every)
    again = gs.rerun(ds, w)
    np.testing.assert_array_equal(again.time.values, ds.time.values)
    np.testing.assert_array_equal(again.embedding.values, ds.embedding.values)


def test_rerun_keeps_the_scene_labels():
    from glomsim.scenes import make_scene

    cfg = gs.GlomConfig(levels=3, dim=8, grid=(12, 12), steps=3)
    w = gs.random_weights(cfg, seed=0)
    ds = gs.simulate(cfg, w, inputs=make_scene(grid=(12, 12), dim=8, levels=3, seed=0))
    again = gs.rerun(ds, w)
    xr.testing.assert_identical(again.label, ds.label)
    np.testing.assert_array_equal(again.embedding.values, ds.embedding.values)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(record_every=4),
        dict(summaries_only=True),
    ],
)
@pytest.mark.parametrize(
    "cfg",
    [
        gs.GlomConfig(levels=3, dim=8, grid=(6, 6), steps=9, attention=gs.Attention(radius=1.5)),
        gs.GlomConfig(levels=2, dim=16, grid=(4, 5), steps=5, dtype="float64", top_down_delay=2),
        gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=3,
                      attention=gs.Attention(kernel="bounded", epsilon=1.0)),
    ],
)  # fmt: skip
def test_the_memory_estimate_covers_what_a_run_holds(cfg, kwargs):
    from glomsim._engine.plan import Plan
    from glomsim._memory import estimate_run_memory

    w = gs.random_weights(cfg, seed=0)
    ds = gs.simulate(cfg, w, **kwargs)
    est = estimate_run_memory(cfg, cfg.steps, kwargs.get("record_every", 1),
                              kwargs.get("summaries_only", False), 1, weights=w)  # fmt: skip
    assert est.states >= ds.embedding.nbytes
    if "rms" in ds:
        assert est.summaries >= ds.rms.nbytes + ds.change.nbytes
    assert est.buffers >= Plan(cfg, w, 1).nbytes()
    assert est.weights >= sum(a.nbytes for a in w.arrays().values())
    assert est.inputs >= ds.input.nbytes
    # and not wildly more than it: recorded states exactly, the rest within a few states
    state = cfg.levels * cfg.n_columns * cfg.dim * cfg.np_dtype.itemsize
    assert est.states <= ds.embedding.nbytes + (cfg.top_down_delay + 2) * state


def test_run_memory_check_names_the_fields_and_what_would_fit():
    from glomsim._memory import check_run_memory, estimate_run_memory

    cfg = gs.GlomConfig(levels=5, dim=64, grid=(64, 64), steps=20000)
    full = estimate_run_memory(cfg)
    assert 97 * 2**30 < full.states < 99 * 2**30  # the 98 GiB
    available = 16 * 2**30
    with pytest.raises(MemoryError) as err:
        check_run_memory(cfg, None, 1, False, 1, available=available)
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    for word in ("steps=20000", "levels=5", "grid=(64, 64)", "dim=64", "summaries_only=True",
                 "--summaries-only", "record_every=", "16.0 GiB"):  # fmt: skip
        assert word in msg, msg
    # what it suggests fits
    k = int(msg.split("record_every=")[1].split(" ")[0])
    assert estimate_run_memory(cfg, None, k).total <= available
    assert estimate_run_memory(cfg, None, 1, True).total <= available
    assert check_run_memory(cfg, None, k, False, 1, available=available).total <= available
    # an impossible run says that even summaries_only does not fit
    huge = gs.GlomConfig(levels=5, dim=32, grid=(10000, 10000), steps=60)
    with pytest.raises(MemoryError, match="even summaries_only=True"):
        check_run_memory(huge, None, 1, False, 1, available=available)


def test_run_memory_check_can_be_turned_off(monkeypatch):
    from glomsim._memory import check_run_memory

    cfg = gs.GlomConfig(levels=5, dim=64, grid=(64, 64), steps=20000)
    monkeypatch.setenv("GLOMSIM_MEMORY_CHECK", "0")
    assert check_run_memory(cfg, None, 1, False, 1, available=1).total > 1


def test_a_cast_that_overflows_names_the_field_and_where():
    from glomsim._memory import cast_checked

    init = np.zeros((2, 4, 3))
    init[1, 2, 0] = 1e39
    with pytest.raises(ValueError) as err:
        cast_checked("init", init, "float32")
    msg = str(err.value)
    assert msg.startswith("init=1e+39") and "(1, 2, 0)" in msg and "float32" in msg
    assert cast_checked("init", init, "float64").dtype == np.float64  # fits there
    out = cast_checked("init", np.full(3, 3e38), "float32")  # fits, though its sum does not
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_the_readme_snippets_run(tmp_path, monkeypatch):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert "opinions" in namespace and namespace["ds"].embedding.shape[1:] == (1, 50, 1)
    # a virtual environment is made and entered before the two commands
    venv = readme.index("python -m venv")
    assert venv < readme.index("python -m pip install -e . && glomsim demo")
    assert "activate" in readme[venv : readme.index("python -m pip install -e . &&")]
