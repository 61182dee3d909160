"""Sweeps: spec parsing and validation, axes, result layout, failures, determinism, resume."""

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import analysis as an
import glomsim as gs
from glomsim import sweep, variables
from glomsim.scenes import make_scene
from glomsim.sweep import load_spec, open_sweep, run

BASE = {"levels": 2, "dim": 4, "grid": [6, 6], "steps": 6, "dtype": "float64"}
SCENE = {"n_objects": 1, "parts_per_object": 2, "textures_per_part": 1}


def spec_dict(**sections):
    d = {
        "sweep": {"seeds": 2},
        "base": dict(BASE),
        "aliases": {"beta": "attention.beta", "radius": "attention[1].radius"},
        "axes": {"beta": [0.5, 4.0], "radius": [1.0, 2.0, math.inf]},
        "scene": dict(SCENE),
    }
    d.update(sections)
    return d


def data(ds):
    """The data and coords of a result, without attrs that hold times."""
    return ds.drop_attrs(deep=False).load()


# ----- the spec ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change,field",
    [
        ({"extra": {}}, "unknown section(s) extra"),
        ({"sweep": {"mode": "cube"}}, "sweep.mode"),
        ({"sweep": {"seeds": 0}}, "sweep.seeds"),
        ({"sweep": {"seeds": [1, 1]}}, "sweep.seeds"),
        ({"sweep": {"speed": 2}}, "sweep: unknown key(s) speed"),
        ({"axes": {"attention.sharpness": [1.0]}}, "axes.attention.sharpness"),
        ({"axes": {"seed": [1, 2]}}, "axes.seed"),
        ({"axes": {"attention[5].radius": [1.0]}}, "axes.attention[5].radius"),
        ({"axes": {"attention.beta": [1.0, float("nan")]}}, "axes.attention.beta"),
        ({"axes": {"beta": [1.0, 1.0]}}, "axes.beta"),
        ({"axes": {"mix.attention": [[0.0, 1.0], 1.0]}}, "axes.mix.attention"),
        ({"aliases": {"b": "attention.b"}, "axes": {"b": [2]}}, "aliases.b"),
        ({"base": {**BASE, "levels": 0}}, "base: levels=0"),
        ({"scene": {"objects": 2}}, "scene: unknown key(s) objects"),
        ({"scene": {"noise": -1.0}}, "scene"),
        ({"keep": {"record_every": 0}}, "keep.record_every"),
        ({"keep": {"islands": {"threshold": 2.0}}}, "keep.islands"),
        ({"keep": {"trajectories": True}, "axes": {"levels": [2, 3]}}, "keep.trajectories"),
        ({"sweep": {"members": 3}}, "init.noise"),
        ({"sweep": {"mode": "random"}}, "sweep.samples"),
        ({"sweep": {"mode": "zip"}}, "zip mode needs axes of one length"),
        ({"weights": {"kind": "learned"}}, "weights.kind"),
        ({"init": {"start": "ones"}}, "init.start"),
    ],
)
def test_bad_spec_names_the_field_on_one_line(change, field):
    d = spec_dict()
    d.update(change)
    with pytest.raises(ValueError) as info:
        load_spec(d)
    msg = str(info.value)
    assert field in msg and "\n" not in msg


def test_a_range_axis_takes_no_labels():
    axes = {"beta": {"low": 0.5, "high": 2.0, "labels": ["a"]}}
    with pytest.raises(ValueError, match="axes.beta.labels"):
        load_spec(spec_dict(sweep={"mode": "random", "samples": 2}, axes=axes))


def test_reading_a_spec_imports_no_analysis():
    # the core imports analysis only to measure runs: parsing checks island options itself
    code = (
        "import json, sys\n"
        "from glomsim.sweep import load_spec\n"
        f"load_spec(json.loads({json.dumps(spec_dict(keep={'islands': {'threshold': 0.9}}))!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'analysis'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_spec_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\nseeds = [\n")
    with pytest.raises(ValueError, match="bad.toml.*not valid TOML"):
        load_spec(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_spec(tmp_path / "missing.toml")


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match="allowed: grid, zip, random"):
        load_spec(spec_dict(sweep={"mode": "cube"}))
    with pytest.raises(ValueError, match="allowed: .*bottom_up.*attention"):
        load_spec(spec_dict(axes={"mix.sideways": [1.0]}))


def test_spec_round_trips_through_dict_and_toml(tmp_path):
    spec = load_spec(spec_dict())
    assert load_spec(spec.to_dict()) == spec
    path = tmp_path / "s.toml"
    path.write_text(spec.to_toml())
    again = load_spec(path)
    assert again == spec and again.content_hash() == spec.content_hash()


def test_base_may_be_a_config_file_beside_the_spec(tmp_path):
    (tmp_path / "base.toml").write_text(gs.GlomConfig(**{**BASE, "grid": (6, 6)}).to_toml())
    text = 'base = "base.toml"\n[sweep]\nseeds = 2\n[axes]\n"attention.beta" = [1.0, 2.0]\n'
    (tmp_path / "s.toml").write_text(text)
    spec = load_spec(tmp_path / "s.toml")
    assert spec.base.grid == (6, 6) and spec.dims == ("attention.beta", "seed")


# ----- axes ----------------------------------------------------------------------------
def test_dotted_and_per_level_paths_set_the_right_fields():
    spec = load_spec(
        spec_dict(
            aliases={"radius": "attention[1].radius"},
            axes={
                "attention.beta": [3.0],
                "radius": [2.5],
                "top_down_delay": [2],
                "grid[1]": [7],
                "scene.noise": [0.3],
                "mix.attention": {"values": [[0.0, 1.0]], "labels": ["ramp"]},
            },
        )
    )
    s = spec.settings(0)
    cfg = s["config"]
    assert [cfg.attention_at(lv).beta for lv in range(2)] == [3.0, 3.0]
    assert [cfg.attention_at(lv).radius for lv in range(2)] == [math.inf, 2.5]
    assert cfg.top_down_delay == 2 and cfg.grid == (6, 7)
    assert cfg.mix_at(0).attention == (0.0, 1.0)
    assert s["scene"]["noise"] == 0.3
    assert spec.dims == (
        "attention.beta",
        "radius",
        "top_down_delay",
        "grid[1]",
        "scene.noise",
        "mix.attention",
        "seed",
    )


def test_grid_zip_and_random_points():
    grid = load_spec(spec_dict())
    assert grid.shape == (2, 3, 2) and grid.n_runs == 12
    assert grid.points[4] == {"beta": 4.0, "radius": 2.0}

    z = load_spec(
        spec_dict(
            sweep={"mode": "zip", "seeds": 1}, axes={"beta": [1.0, 2.0], "radius": [1.0, 3.0]}
        )
    )
    assert z.dims == ("point", "seed") and [p["radius"] for p in z.points] == [1.0, 3.0]

    rnd = {
        "sweep": {"mode": "random", "samples": 40, "sample_seed": 3},
        "axes": {
            "beta": {"low": 0.1, "high": 10.0, "log": True},
            "radius": [1.0, 2.0],
            "top_down_delay": {"low": 1, "high": 3, "integer": True},
        },
    }
    r = load_spec(spec_dict(**rnd))
    again = load_spec(spec_dict(**rnd))
    assert r.points == again.points  # seeded
    betas = np.array([p["beta"] for p in r.points])
    assert betas.min() >= 0.1 and betas.max() <= 10.0 and len(set(betas)) == 40
    assert {p["radius"] for p in r.points} == {1.0, 2.0}
    assert {p["top_down_delay"] for p in r.points} == {1, 2, 3}
    other = load_spec(spec_dict(**{**rnd, "sweep": {**rnd["sweep"], "sample_seed": 4}}))
    assert other.points != r.points


def test_batches_cover_every_run_once_and_group_shapes():
    spec = load_spec(spec_dict(axes={"levels": [2, 3], "beta": [1.0, 2.0]}, sweep={"seeds": 3}))
    batches = spec.batches()
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(spec.n_runs))
    for b in batches:
        shapes = {spec.settings(spec.unravel(i)[0])["config"].levels for i in b}
        assert len(shapes) == 1
    fixed = load_spec(spec_dict(sweep={"seeds": 2, "batch_size": 5}))
    assert [len(b) for b in fixed.batches()] == [5, 5, 2]


# ----- results -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "small.zarr"
    return run(spec_dict(), path, client="sync", progress=False), path


def test_result_dims_coords_and_sel(small):
    ds, _ = small
    assert dict(ds.sizes) == {"beta": 2, "radius": 3, "seed": 2, "level": 2}
    assert ds.island_count.dims == ("beta", "radius", "seed", "level")
    assert ds.status.dims == ("beta", "radius", "seed")
    assert (ds.status == 1).all() and (ds.error == "").all()
    assert ds.attrs["sweep_done"] == 12 and ds.attrs["sweep_failed"] == 0
    one = ds.sel(beta=4.0, radius=math.inf, seed=1)
    assert one.ari.dims == ("level",)
    assert ds.radius.attrs["sweep_path"] == "attention[1].radius"
    for name in ("island_count", "ari", "residual", "settled_step", "rate"):
        assert "long_name" in ds[name].attrs
    # every variable and coordinate of the store is labelled from the one registry
    for name in list(ds.data_vars) + ["seed", "level"]:
        registered = variables.VARIABLES[name]
        assert ds[name].dims[len(ds[name].dims) - len(registered.dims) :] == registered.dims
        assert variables.attrs(name).items() <= ds[name].attrs.items()
    assert load_spec(json.loads(json.dumps(sweep.load_spec(spec_dict()).to_dict()))) == load_spec(
        spec_dict()
    )


def test_a_run_equals_the_same_simulation_by_hand(small):
    ds, _ = small
    cfg = gs.GlomConfig(
        **{**BASE, "grid": (6, 6), "seed": 1},
        attention=[gs.Attention(beta=4.0), gs.Attention(beta=4.0, radius=2.0)],
    )
    scene = make_scene(grid=(6, 6), dim=4, levels=2, seed=1, **SCENE)
    w = gs.random_weights(cfg, seed=1)
    sim = gs.simulate(cfg, w, inputs=scene)
    isl = an.islands(sim, time=-1)
    conv = an.convergence(sim)
    got = ds.sel(beta=4.0, radius=2.0, seed=1)
    np.testing.assert_array_equal(got.island_count.values, isl["count"].values[-1])
    np.testing.assert_array_equal(got.ari.values, an.agreement(sim, islands=isl)["ari"].values[-1])
    np.testing.assert_array_equal(got.residual.values, conv["residual"].values[-1])
    np.testing.assert_array_equal(got.settled_step.values, conv["settled_step"].values)


def test_same_spec_twice_gives_identical_data(small, tmp_path):
    ds, _ = small
    again = run(spec_dict(), tmp_path / "again.zarr", client="sync", progress=False)
    xr.testing.assert_identical(data(ds), data(again))


def test_resume_redoes_only_pending_runs(small, tmp_path):
    import shutil

    import zarr

    ds, path = small
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    status = zarr.open_array(str(copy), path="status", mode="r+")
    # as if killed: 3 runs never got their status (their data may be there or not)
    status[0, 1, 0] = status[1, 2, 1] = status[1, 0, 0] = 0
    again = run(spec_dict(), copy, client="sync", progress=False)
    assert again.attrs["sweep_skipped"] == 9 and again.attrs["sweep_done"] == 12
    xr.testing.assert_identical(data(ds), data(again))
    # a finished sweep resumes to nothing
    assert run(spec_dict(), copy, client="sync", progress=False).attrs["sweep_skipped"] == 12


def test_resume_refuses_another_sweep_or_foreign_folder(small, tmp_path):
    _, path = small
    with pytest.raises(ValueError, match="different sweep.*axes"):
        run(spec_dict(axes={"beta": [1.0]}), path, client="sync", progress=False)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a glomsim sweep"):
        run(spec_dict(), foreign, client="sync", resume=False, progress=False)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_a_template_cut_short_is_rebuilt(tmp_path):
    from glomsim.sweep import store as st

    spec = load_spec(spec_dict(axes={"beta": [1.0]}, sweep={"seeds": 1}))
    path = tmp_path / "cut.zarr"
    ds, enc = st.Layout(spec).template()
    ds.to_zarr(path, mode="w", compute=False, consolidated=False, encoding=enc)  # not ready
    out = run(spec, path, client="sync", progress=False)
    assert out.attrs["sweep_done"] == 1 and out.attrs["sweep_skipped"] == 0


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path):
    spec = {
        "base": {"levels": 2, "dim": 4, "grid": [2, 3], "steps": 10, "mix": {"previous": 0.0}},
        "sweep": {"seeds": 2},
        "scene": False,
        "axes": {
            # bottom_up = attention = 0 leaves the top level nothing: an invalid combination;
            # gain 1e12 makes the bottom-up/top-down loop blow up
            "mix.bottom_up": [0.0, 1.0],
            "mix.attention": [0.0, 1.0],
            "weights.gain": [0.5, 1e12],
        },
    }
    with pytest.warns(sweep.SweepRunsFailed, match="8 of 16 runs failed, e.g. mix.bottom_up=0"):
        ds = run(spec, tmp_path / "f.zarr", client="sync", progress=False)
    invalid = ds.sel({"mix.bottom_up": 0.0, "mix.attention": 0.0})
    assert (invalid.status == 2).all()
    for e in invalid.error.values.ravel():
        assert str(e).startswith("ValueError: mix") and "sum to 0" in str(e)
    blown = ds.sel({"weights.gain": 1e12, "mix.bottom_up": 1.0})
    assert (blown.status == 2).all()
    assert all(str(e).startswith("SimulationDiverged") for e in blown.error.values.ravel())
    fine = ds.sel({"weights.gain": 0.5, "mix.bottom_up": 1.0})
    assert (fine.status == 1).all() and np.isfinite(fine.residual.values).all()
    n_failed = int((ds.status == 2).sum())
    assert ds.attrs["sweep_failed"] == n_failed > 0
    assert ds.attrs["sweep_done"] + n_failed == ds.status.size
    reasons = json.loads(ds.attrs["sweep_failures"])
    assert sum(r["count"] for r in reasons) == n_failed
    # failed runs hold fill values, never stale numbers
    assert (invalid.island_count == -1).all() and np.isnan(invalid.residual).all()
    assert "failed" in sweep.summary_text(ds)
    # resuming skips failed runs; retry_failed runs them again, with the same outcome
    path = tmp_path / "f.zarr"
    with pytest.warns(sweep.SweepRunsFailed):
        again = run(spec, path, client="sync", progress=False)
    assert again.attrs["sweep_skipped"] == ds.status.size
    import zarr

    errors = zarr.open_array(str(path), path="error", mode="r+")
    errors[0, 0, 0, 0] = "stale"  # a failed run (invalid): retrying must rewrite it
    # (its chunk no longer has the recorded size, so it is also found damaged)
    with pytest.warns(sweep.SweepRunsFailed), pytest.warns(sweep.SweepDamaged, match="error/c"):
        retried = run(spec, path, client="sync", progress=False, retry_failed=True)
    assert retried.attrs["sweep_skipped"] == ds.attrs["sweep_done"]
    xr.testing.assert_identical(data(retried), data(ds))


def test_a_value_valid_only_in_some_combinations_is_not_a_spec_error():
    # bounded needs epsilon: valid with the epsilon axis, so only a combination fails
    spec = load_spec(
        spec_dict(
            axes={"attention.kernel": ["dot", "bounded"], "attention.epsilon": [0.5]},
            aliases={},
        )
    )
    assert spec.n_runs == 4
    with pytest.raises(ValueError, match="axes.attention.kernel: value 'bounded'"):
        load_spec(spec_dict(axes={"attention.kernel": ["dot", "bounded"]}, aliases={}))


def test_zip_and_random_results_select_by_axis_value(tmp_path):
    z = run(
        spec_dict(
            sweep={"mode": "zip", "seeds": 1},
            axes={"beta": [1.0, 2.0, 2.0], "radius": [1.0, 1.0, 3.0]},
        ),
        tmp_path / "z.zarr",
        client="sync",
        progress=False,
    )
    assert z.island_count.dims == ("point", "seed", "level")
    # a multi-index on point: selecting one level leaves the points of the others
    assert z.sel(beta=2.0).radius.values.tolist() == [1.0, 3.0]
    assert z.sel(beta=2.0, radius=3.0).island_count.dims == ("seed", "level")
    r = run(
        spec_dict(
            sweep={"mode": "random", "samples": 3, "seeds": 1},
            axes={"beta": {"low": 0.5, "high": 2.0}},
            aliases={"beta": "attention.beta"},
        ),
        tmp_path / "r.zarr",
        client="sync",
        progress=False,
    )
    b = float(r.beta.values[1])
    assert r.sel(beta=b).island_count.dims == ("seed", "level")


def test_members_and_trajectories(tmp_path):
    spec = spec_dict(
        sweep={"seeds": 1, "members": 3},
        axes={"beta": [1.0]},
        init={"noise": 0.5},
        keep={"trajectories": True, "record_every": 4},
    )
    ds = run(spec, tmp_path / "m.zarr", client="sync", progress=False)
    assert ds.embedding.dims == ("beta", "seed", "member", "time", "level", "column", "feature")
    assert ds.time.values.tolist() == [0, 4, 6]  # multiples of 4 and the last step
    e = ds.embedding.isel(beta=0, seed=0).values
    assert not np.array_equal(e[0], e[1])  # members start apart
    # member 2 by hand: the default start plus N(0, 0.5^2) noise from (seed, member)
    cfg = gs.GlomConfig(
        **{**BASE, "grid": (6, 6)}, attention=gs.Attention(beta=1.0, radius=math.inf)
    )
    cfg = gs.GlomConfig.from_dict({**cfg.to_dict(), "attention": [{"beta": 1.0}, {"beta": 1.0}]})
    w = gs.random_weights(cfg, seed=0)
    init = np.broadcast_to(w.init_levels[:, None, :], (2, 36, 4))
    init = init + 0.5 * np.random.default_rng([0, 2, 1]).standard_normal(init.shape)
    scene = make_scene(grid=(6, 6), dim=4, levels=2, seed=0, **SCENE)
    sim = gs.simulate(cfg, w, inputs=scene, init=init, record_every=4)
    np.testing.assert_array_equal(e[2], sim.embedding.values)
    np.testing.assert_array_equal(ds.label.isel(beta=0, seed=0, member=2).values, scene.labels)


def test_spectral_radius_and_token_start_on_request(tmp_path):
    spec = spec_dict(
        sweep={"seeds": [3]},
        axes={"beta": [2.0]},
        init={"start": "tokens"},
        keep={"spectral_radius": True, "trajectories": True},
    )
    ds = run(spec, tmp_path / "sr.zarr", client="sync", progress=False).isel(beta=0, seed=0)
    scene = make_scene(grid=(6, 6), dim=4, levels=2, seed=3, **SCENE)
    np.testing.assert_array_equal(ds.embedding.isel(time=0, level=1).values, scene.tokens)
    settings = load_spec(spec).settings(0)
    cfg = settings["config"].replace(seed=3)
    w = gs.random_weights(cfg, seed=3)
    sim = gs.simulate(cfg, w, inputs=scene, init=np.repeat(scene.tokens[None], 2, axis=0))
    expected = an.stability(cfg, w, sim)
    assert float(ds.spectral_radius) == float(expected.spectral_radius)
    assert float(ds.spectral_radius_transverse) == float(expected.spectral_radius_transverse)


def test_levels_axis_pads_the_level_dimension(tmp_path):
    ds = run(
        spec_dict(sweep={"seeds": 1}, axes={"levels": [1, 2]}, aliases={}),
        tmp_path / "lv.zarr",
        client="sync",
        progress=False,
    )
    assert ds.sizes["level"] == 2
    assert int(ds.island_count.sel(levels=1, level=1, seed=0)) == -1
    assert int(ds.island_count.sel(levels=2, level=1, seed=0)) >= 1


def test_embedded_default_cluster_matches_sync(small, tmp_path):
    ds, _ = small
    dist = run(spec_dict(), tmp_path / "d.zarr", progress=False)
    xr.testing.assert_identical(data(ds), data(dist))


# ----- command line ----------------------------------------------------------------------
def test_cli_subcommand(tmp_path, capsys):
    from glomsim.cli import sweep as cli_sweep

    parser = argparse.ArgumentParser(prog="glomsim")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_sweep.register(sub)
    spec = tmp_path / "s.toml"
    spec.write_text(load_spec(spec_dict(sweep={"seeds": 1}, axes={"beta": [1.0]})).to_toml())
    out = tmp_path / "o.zarr"
    args = parser.parse_args(["sweep", str(spec), "-o", str(out), "--sync", "-q"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "done 1, failed 0" in text and str(out) in text
    args = parser.parse_args(["sweep", str(spec), "-o", str(out), "--sync", "-q", "--no-resume"])
    assert args.resume is False and args.func(args) == 0
    spec.write_text('[base]\nlevels = 2\n[sweep]\nmode = "cube"\n')
    args = parser.parse_args(["sweep", str(spec), "-o", str(out)])
    with pytest.raises(ValueError, match="sweep.mode"):
        args.func(args)
    assert cli_sweep.main([str(spec), "-o", str(out)]) == 2
    assert "sweep.mode" in capsys.readouterr().err


def test_example_spec_is_valid():
    from pathlib import Path

    spec = load_spec(Path(__file__).parents[1] / "examples" / "sweep_small.toml")
    assert spec.shape == (2, 3, 4) and spec.dims == ("beta", "radius", "seed")
    assert open_sweep is sweep.open_sweep


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"bottom_up_activation": "relu"},
        {"top_down_activation": "sin"},
        {"attention": [gs.Attention(), gs.Attention(kernel="contrastive")]},
        {"attention": gs.Attention(kernel="gaussian")},
    ],
)
def test_the_sweep_compiles_first_the_variant_its_runs_use(changes):
    """The driver compiles, before its workers start, the fused step's variant that the
    plan of each run will ask for (else workers would each compile the other one)."""
    from glomsim._engine import Plan
    from glomsim.sweep.execute import _variant

    cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=1, **changes)
    assert _variant(cfg) == Plan(cfg, gs.random_weights(cfg, seed=0), 1).variant
