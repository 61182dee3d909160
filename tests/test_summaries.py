"""simulate(..., summaries_only=True): the first and last states plus per-step summaries.

The properties: the last state is the full run's bit for bit; ``rms`` and ``change`` are
what plain numpy computes from the full trajectory; ensembles agree with single runs;
convergence reads the summaries and agrees with the full run; memory does not grow with
the trajectory; the Dataset saves, opens and re-runs; the CLI writes and analyses it.
"""

import json
import tracemalloc

import numpy as np
import pytest
import xarray as xr

import analysis as an
import glomsim as gs
from glomsim.cli import main

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _config(dtype="float64", **kw):
    base = dict(
        levels=3,
        dim=5,
        grid=(3, 4),
        steps=12,
        dtype=dtype,
        top_down_delay=2,
        attention=[
            gs.Attention(kernel="cosine", beta=3.0, radius=1.5),
            gs.Attention(kernel="dot"),
            gs.Attention(kernel="bounded", epsilon=2.0),
        ],
        normalize="layernorm",
    )
    base.update(kw)
    return gs.GlomConfig(**base)


def _numpy_summaries(embedding):
    """(rms, change) over (column, feature) from a full trajectory (time, level, ...)."""
    e = np.asarray(embedding, dtype=np.float64)
    rms = np.sqrt((e**2).mean(axis=(-2, -1)))
    change = np.sqrt((np.diff(e, axis=0) ** 2).mean(axis=(-2, -1)))
    return rms, change


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(3)
    return rng.standard_normal((12, 5)), rng.standard_normal((3, 12, 5))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_last_state_is_the_full_runs_and_summaries_match_numpy(dtype, inputs):
    cfg = _config(dtype)
    w = gs.random_weights(cfg, seed=4)
    u, init = inputs
    full = gs.simulate(cfg, w, inputs=u, init=init)
    ds = gs.simulate(cfg, w, inputs=u, init=init, summaries_only=True)

    assert ds.time.values.tolist() == [0, cfg.steps]
    assert ds.embedding.dtype == full.embedding.dtype
    np.testing.assert_array_equal(ds.embedding.values, full.embedding.values[[0, -1]])
    np.testing.assert_array_equal(ds.input.values, full.input.values)

    rms, change = _numpy_summaries(full.embedding.values)
    assert ds.step.values.tolist() == list(range(cfg.steps + 1))
    for name in ("rms", "change"):
        assert ds[name].dims == ("step", "level") and ds[name].dtype == np.float64
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"] == "1"
    np.testing.assert_allclose(ds.rms.values, rms, rtol=1e-6)
    assert np.isnan(ds.change.values[0]).all()
    np.testing.assert_allclose(ds.change.values[1:], change, rtol=1e-6)
    assert ds.attrs["summaries_only"] == 1 and "summaries_only" not in full.attrs
    assert gs.GlomConfig.from_dataset(ds) == cfg

    # final-state analyses see the same state
    xr.testing.assert_equal(
        an.islands(ds.isel(time=-1))["labels"], an.islands(full.isel(time=-1))["labels"]
    )


def test_zero_steps_keeps_the_initial_state_once(inputs):
    cfg = _config()
    ds = gs.simulate(cfg, inputs=inputs[0], init=inputs[1], steps=0, summaries_only=True)
    assert ds.time.values.tolist() == [0] and ds.sizes["step"] == 1
    np.testing.assert_allclose(ds.rms.values, _numpy_summaries(inputs[1][None])[0])
    assert np.isnan(ds.change.values).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ensemble_members_agree_with_single_runs(dtype):
    cfg = _config(dtype, steps=8)
    rng = np.random.default_rng(0)
    ws = [gs.random_weights(cfg, seed=s) for s in range(3)]
    u = rng.standard_normal((3, 12, 5))
    init = rng.standard_normal((3, 3, 12, 5))
    ens = gs.simulate_ensemble(cfg, ws, inputs=u, init=init, summaries_only=True)
    assert ens.embedding.dims == ("member", "time", "level", "column", "feature")
    assert ens.rms.dims == ens.change.dims == ("member", "step", "level")
    assert ens.time.values.tolist() == [0, 8] and ens.attrs["summaries_only"] == 1
    for m in range(3):
        one = gs.simulate(cfg, ws[m], inputs=u[m], init=init[m], summaries_only=True)
        # members with their own nets run the same arithmetic as single runs
        np.testing.assert_array_equal(ens.embedding.isel(member=m).values, one.embedding.values)
        for name in ("rms", "change"):
            np.testing.assert_allclose(
                ens[name].isel(member=m).values, one[name].values, rtol=1e-12
            )


def _consensus(dtype, steps):
    cfg = gs.GlomConfig(
        levels=2,
        dim=3,
        grid=(4, 4),
        steps=steps,
        dtype=dtype,
        mix=gs.Mix(bottom_up=0, top_down=0),
        attention=gs.Attention(beta=0.0, radius=1.5),
    )
    init = np.random.default_rng(1).standard_normal((2, 16, 3))
    return cfg, gs.identity_weights(cfg), init


@pytest.mark.parametrize("dtype,steps", [("float64", 400), ("float32", 150)])
def test_convergence_reads_the_summaries_and_agrees_with_the_full_run(dtype, steps):
    cfg, w, init = _consensus(dtype, steps)
    full = an.convergence(gs.simulate(cfg, w, init=init))
    ds = gs.simulate(cfg, w, init=init, summaries_only=True)
    conv = an.convergence(ds)
    assert conv.residual.dims == ("time", "level")
    np.testing.assert_array_equal(conv.time.values, full.time.values)
    np.testing.assert_allclose(conv.residual.values, full.residual.values, rtol=1e-6)
    np.testing.assert_array_equal(conv.settled_step.values, full.settled_step.values)
    assert (conv.settled_step.values > 0).all()  # the comparison is not vacuous
    np.testing.assert_allclose(conv.rate.values, full.rate.values, rtol=1e-6)
    np.testing.assert_allclose(conv.final_rms.values, full.final_rms.values, rtol=1e-12)
    np.testing.assert_array_equal(conv.finite_time.values, full.finite_time.values)
    # the summaries alone suffice: the embedding can be dropped
    alone = an.convergence(ds.drop_vars("embedding"))
    np.testing.assert_array_equal(alone.settled_step.values, conv.settled_step.values)
    np.testing.assert_array_equal(alone.tolerance.values, conv.tolerance.values)


def test_stop_when_settled_stops_where_the_full_run_does():
    cfg, w, init = _consensus("float64", 1000)
    full = gs.simulate(cfg, w, init=init, stop_when_settled=1e-8)
    ds = gs.simulate(cfg, w, init=init, stop_when_settled=1e-8, summaries_only=True)
    last = int(full.time[-1])
    assert last < 1000 and ds.attrs["stopped_early_at"] == last
    assert ds.time.values.tolist() == [0, last] and ds.sizes["step"] == last + 1
    assert (ds.change.values[-1] < 1e-8).all() and not (ds.change.values[-2] < 1e-8).all()
    np.testing.assert_array_equal(ds.embedding.values[-1], full.embedding.values[-1])


def test_memory_does_not_grow_with_the_trajectory():
    from glomsim._engine import forget_plans

    cfg = gs.GlomConfig(
        levels=1,
        dim=32,
        grid=(16, 16),
        steps=2,
        normalize="l2",
        attention=gs.Attention(kernel="cosine", beta=4.0, radius=1.5),
    )
    w = gs.random_weights(cfg, seed=0)
    gs.simulate(cfg, w, summaries_only=True)  # compile and import outside the trace
    gs.simulate(cfg, w)

    def peak(**kwargs):
        forget_plans()  # the run's own buffers count, not an idle plan's
        tracemalloc.start()
        try:
            gs.simulate(cfg, w, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(steps=200, summaries_only=True), peak(steps=2000, summaries_only=True)
    assert long <= 1.2 * short
    full_short, full_long = peak(steps=200), peak(steps=2000)
    state = 16 * 16 * 32 * 4
    assert full_long - full_short >= 0.9 * 1800 * state  # the full run keeps every state
    assert long - short < 0.1 * (full_long - full_short)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, 1.0])
def test_bad_flag_is_rejected_naming_the_field(value):
    cfg = _config(steps=1)
    with pytest.raises(TypeError, match="summaries_only"):
        gs.simulate(cfg, summaries_only=value)
    with pytest.raises(TypeError, match="summaries_only"):
        gs.simulate_ensemble(cfg, members=2, summaries_only=value)


def test_record_every_is_rejected_with_summaries_only():
    cfg = _config(steps=4)
    for run in (gs.simulate, lambda c, **k: gs.simulate_ensemble(c, members=2, **k)):
        with pytest.raises(ValueError, match="record_every.*summaries_only"):
            run(cfg, record_every=2, summaries_only=True)
    # record_every=1 (the default) is fine; np.bool_ counts as a bool
    assert gs.simulate(cfg, record_every=1, summaries_only=np.True_).sizes["time"] == 2


def test_divergence_keeps_the_summaries_so_far():
    cfg = gs.GlomConfig(
        levels=2,
        dim=4,
        grid=(2, 2),
        steps=400,
        dtype="float32",
        mix=gs.Mix(previous=0, attention=0),
    )
    w = gs.random_weights(cfg, seed=0, gain=40.0)
    with pytest.raises(gs.SimulationDiverged) as err:
        gs.simulate(cfg, w, summaries_only=True)
    e = err.value
    part = e.partial
    assert "summaries" in str(e) and part.attrs["summaries_only"] == 1
    assert part.time.values.tolist() == [0, e.step - 1]
    assert part.step.values.tolist() == list(range(e.step))
    assert np.isfinite(part.embedding.values).all()
    assert np.isfinite(part.rms.values).all() and np.isfinite(part.change.values[1:]).all()
    assert part.rms.values[-1].max() > 10 * part.rms.values[0].max()  # it was growing
    assert part.attrs["partial_until_step"] == e.step - 1


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_save_open_and_rerun(tmp_path, suffix, inputs):
    cfg = _config("float32")
    w = gs.random_weights(cfg, seed=2)
    ds = gs.simulate(cfg, w, inputs=inputs[0], init=inputs[1], summaries_only=True)
    path = gs.save(ds, tmp_path / f"run{suffix}", weights=w)
    back = gs.open_dataset(path).load()
    xr.testing.assert_identical(back, ds)
    cfg2, w2, ds2 = gs.load_run(path)
    assert cfg2 == cfg and w2 == w and ds2.attrs["summaries_only"] == 1
    again = gs.rerun(ds2, w2)
    assert again.attrs["summaries_only"] == 1
    for name in ("embedding", "rms", "change"):
        np.testing.assert_array_equal(again[name].values, ds[name].values)
    # asked for, the full trajectory of the same run ends in the same state
    full = gs.rerun(ds2, w2, summaries_only=False)
    assert full.sizes["time"] == cfg.steps + 1 and "summaries_only" not in full.attrs
    np.testing.assert_array_equal(full.embedding.values[-1], ds.embedding.values[-1])
    # every run keeps the per-step summaries, computed the same way
    for name in ("rms", "change"):
        np.testing.assert_array_equal(full[name].values, ds[name].values)


def test_stability_names_summaries_only_when_it_needs_more_states():
    cfg = _config(steps=3)
    w = gs.random_weights(cfg, seed=0)
    ds = gs.simulate(cfg, w, summaries_only=True)
    with pytest.raises(ValueError, match="summaries_only"):
        an.stability(cfg, w, ds)


def test_cli_run_summaries_only_then_analyze(tmp_path, capsys):
    cfg = gs.GlomConfig(levels=3, dim=8, grid=(6, 6), steps=15, normalize="l2")
    conf = tmp_path / "c.toml"
    conf.write_text(cfg.to_toml())
    out = tmp_path / "r.zarr"
    assert main(["run", str(conf), "-o", str(out), "--summaries-only", "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    _, w, ds = gs.load_run(out)
    assert ds.attrs["summaries_only"] == 1 and ds.time.values.tolist() == [0, 15]
    assert summary["steps"] == 15
    for level, row in summary["levels"].items():
        assert row["last_step_change"] == pytest.approx(float(ds.change[-1, int(level)]))
    # analyze: islands at the two kept steps, the residual at every step
    m_path = tmp_path / "m.nc"
    assert main(["analyze", str(out), "-o", str(m_path)]) == 0
    assert "parse-tree score" in capsys.readouterr().out
    m = xr.open_dataset(m_path, engine="h5netcdf").load()
    assert m.time.values.tolist() == list(range(16))
    np.testing.assert_allclose(m.residual.values[1:], ds.change.values[1:])
    kept = m["count"].sel(time=[0, 15])
    assert ((kept >= 1) & (kept <= 36)).all() and m["count"].isel(time=slice(1, 15)).isnull().all()
    # record_every has no meaning here: a usage error naming both options
    assert (
        main(
            [
                "run",
                str(conf),
                "-o",
                str(tmp_path / "x.zarr"),
                "--summaries-only",
                "--record-every",
                "3",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--record-every" in err and "--summaries-only" in err
    assert not (tmp_path / "x.zarr").exists()
