"""Sweeps over movies: the ``[movie]`` table, axes over ``movie.*`` and ``steps_per_frame``,
the labels the measures read, and the sweep's guarantees (equality with runs by hand,
resume, one-line refusals)."""

import shutil

import numpy as np
import pytest
import xarray as xr

import analysis as an
import glomsim as gs
from glomsim.scenes import make_movie
from glomsim.sweep import SpecError, load_spec, run

BASE = {"levels": 3, "dim": 4, "grid": [6, 6], "steps": 6, "dtype": "float64"}
#: one object, four frames; an axis gives its velocity
MOVIE = {"n_objects": 1, "parts_per_object": 2, "textures_per_part": 1, "n_frames": 4,
         "edges": "wrap"}  # fmt: skip
SPEEDS = {"path": "movie.velocities", "values": [[0, 0], [0, 1]], "labels": ["still", "moving"]}


def spec_dict(**sections):
    d = {
        "sweep": {"seeds": 2},
        "base": dict(BASE),
        "aliases": {"k": "movie.steps_per_frame"},
        "axes": {"speed": dict(SPEEDS), "k": [1, 3]},
        "movie": dict(MOVIE),
        "keep": {"trajectories": True, "record_every": 2},
    }
    d.update(sections)
    return d


def data(ds):
    return ds.drop_attrs(deep=False).load()


def by_hand(velocities, k, seed, record_every=2, **movie):
    """One run simulated on its own: simulate(frames=movie, steps_per_frame=k)."""
    cfg = gs.GlomConfig(**{**BASE, "grid": (6, 6), "seed": seed})
    w = gs.random_weights(cfg, seed=seed)
    m = make_movie(grid=(6, 6), dim=4, levels=3, seed=seed, velocities=velocities,
                   **{**MOVIE, **movie})  # fmt: skip
    sim = gs.simulate(cfg, w, frames=m, steps_per_frame=k, record_every=record_every)
    return cfg, w, m, sim


def frame_of_last_step(k, steps=BASE["steps"], n_frames=MOVIE["n_frames"]):
    # the contract: step t >= 1 reads frame min((t - 1) // k, n_frames - 1)
    return min((steps - 1) // k, n_frames - 1)


@pytest.fixture(scope="module")
def movie_sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "movie.zarr"
    return run(spec_dict(), path, client="sync", progress=False), path


# ----- results -----------------------------------------------------------------------------
def test_axes_over_a_movie_argument_and_steps_per_frame_are_dims(movie_sweep):
    ds, _ = movie_sweep
    assert ds.ari.dims == ("speed", "k", "seed", "level")
    assert ds.label.dims == ("speed", "k", "seed", "level", "column")
    assert ds.speed.values.tolist() == ["still", "moving"] and ds.k.values.tolist() == [1, 3]
    assert ds.k.attrs["sweep_path"] == "movie.steps_per_frame"
    assert int((ds.status == 1).sum()) == 8
    for name in ("ari", "ari_objects", "boundary_leak"):
        assert np.isfinite(ds[name].values).all(), name


@pytest.mark.parametrize("speed,velocities", [("still", (0, 0)), ("moving", (0, 1))])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_movie_run_equals_the_same_simulation_by_hand(movie_sweep, speed, velocities, k, seed):
    ds, _ = movie_sweep
    got = ds.sel(speed=speed, k=k, seed=seed)
    _, _, m, sim = by_hand(velocities, k, seed)
    np.testing.assert_array_equal(got.embedding.values, sim.embedding.values)
    f = frame_of_last_step(k)
    assert int(sim.frame.values[-1]) == f
    # kept labels: the frame that the last recorded step read
    np.testing.assert_array_equal(got.label.values, m.labels[f])
    isl = an.islands(sim, time=-1)
    np.testing.assert_array_equal(got.island_count.values, isl["count"].values[-1])
    for level in range(3):
        expected = an.adjusted_rand_index(isl["labels"].values[-1, level], m.labels[f, level])
        assert float(got.ari.sel(level=level)) == pytest.approx(expected, abs=1e-12)


def test_the_labels_follow_the_frame_of_the_last_step(movie_sweep):
    ds, _ = movie_sweep
    lab = ds.label.sel(seed=0)
    # k = 1 ends on frame 3, k = 3 on frame 1: the object moved by two columns in between
    assert not np.array_equal(lab.sel(speed="moving", k=1), lab.sel(speed="moving", k=3))
    np.testing.assert_array_equal(lab.sel(speed="still", k=1), lab.sel(speed="still", k=3))
    rolled = np.roll(lab.sel(speed="moving", k=3).values.reshape(3, 6, 6), 2, axis=2)
    np.testing.assert_array_equal(rolled.reshape(3, 36), lab.sel(speed="moving", k=1).values)


def test_a_movie_sweep_is_deterministic_and_resumes_bit_for_bit(movie_sweep, tmp_path):
    import zarr

    ds, path = movie_sweep
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    status = zarr.open_array(str(copy), path="status", mode="r+")
    status[0, 1, 0] = status[1, 0, 1] = 0  # as if killed before their status
    again = run(spec_dict(), copy, client="sync", progress=False)
    assert again.attrs["sweep_skipped"] == 6 and again.attrs["sweep_done"] == 8
    xr.testing.assert_identical(data(ds), data(again))
    fresh = run(spec_dict(), tmp_path / "fresh.zarr", client="sync", progress=False)
    xr.testing.assert_identical(data(ds), data(fresh))


def test_members_each_get_their_movie_and_start(tmp_path):
    spec = spec_dict(sweep={"seeds": 1, "members": 2}, axes={"k": [2]},
                     movie={**MOVIE, "velocities": [0, 1]}, init={"noise": 0.3})  # fmt: skip
    ds = run(spec, tmp_path / "m.zarr", client="sync", progress=False).isel(k=0, seed=0)
    cfg, w, m, _ = by_hand((0, 1), 2, 0)
    start = np.broadcast_to(w.init_levels[:, None, :], (3, 36, 4))
    for member in range(2):
        init = start + 0.3 * np.random.default_rng([0, member, 1]).standard_normal(start.shape)
        sim = gs.simulate(cfg, w, frames=m, steps_per_frame=2, init=init, record_every=2)
        np.testing.assert_array_equal(ds.embedding.isel(member=member).values, sim.embedding)


def test_token_start_is_the_first_frame_and_spectral_radius_the_last(tmp_path):
    spec = spec_dict(sweep={"seeds": [2]}, axes={"k": [1]}, init={"start": "tokens"},
                     movie={**MOVIE, "velocities": [1, 1]},
                     keep={"trajectories": True, "spectral_radius": True})  # fmt: skip
    ds = run(spec, tmp_path / "t.zarr", client="sync", progress=False).isel(k=0, seed=0)
    cfg, w, m, _ = by_hand((1, 1), 1, 2)
    for level in range(3):
        np.testing.assert_array_equal(ds.embedding.isel(time=0, level=level).values, m.tokens[0])
    # linearised on the frame the last step read, as a static run on that frame is
    init = np.repeat(m.tokens[0][None], 3, axis=0)
    sim = gs.simulate(cfg, w, frames=m, steps_per_frame=1, init=init)
    f = frame_of_last_step(1)
    static = sim.drop_vars("frame").drop_vars(["input", "label"])
    static["input"] = (("column", "feature"), np.asarray(m.tokens[f]))
    expected = an.stability(cfg, w, static)
    assert float(ds.spectral_radius) == float(expected.spectral_radius)


def test_a_movie_spec_round_trips_and_a_scene_spec_keeps_its_hash():
    spec = load_spec(spec_dict())
    assert load_spec(spec.to_dict()) == spec and spec.movie["steps_per_frame"] == 1
    import tomllib

    assert load_spec(tomllib.loads(spec.to_toml())).content_hash() == spec.content_hash()
    assert "scene" not in spec.to_dict() and spec.scene is None and spec.has_labels
    scene = load_spec({"base": BASE, "scene": {"n_objects": 1}})
    assert "movie" not in scene.to_dict()
    other = load_spec(spec_dict(axes={"k": [1, 3]}, movie={**MOVIE, "velocities": [0, 2]}))
    assert other.content_hash() != load_spec(spec_dict(axes={"k": [1, 3]})).content_hash()


# ----- refusals --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change,field",
    [
        ({"movie": {**MOVIE, "speed": 2}}, "movie: unknown key(s) speed; allowed: n_frames"),
        ({"scene": {"n_objects": 1}}, "movie: a spec has a [scene] (one input) or a [movie]"),
        ({"scene": False}, "movie: a spec has a [scene]"),
        ({"movie": {**MOVIE, "steps_per_frame": 0}}, "movie.steps_per_frame"),
        ({"movie": {**MOVIE, "edges": "mirror"}}, "movie: edges='mirror'"),
        ({"axes": {"k": [0, 1]}}, "axes.k: value 0 gives no valid config"),
        ({"axes": {"movie.speed": [1]}}, "axes.movie.speed: path 'movie.speed'"),
        ({"axes": {"scene.noise": [0.1]}}, "vary 'movie.noise' instead"),
        ({"movie": {**MOVIE, "n_frames": 0}, "axes": {}}, "n_frames"),
    ],
)
def test_bad_movie_specs_are_refused_on_one_line(change, field):
    with pytest.raises(SpecError) as e:
        load_spec(spec_dict(**change))
    assert field in str(e.value) and "\n" not in str(e.value)


def test_a_movie_axis_needs_a_movie():
    d = {"base": BASE, "scene": {"n_objects": 1}, "axes": {"movie.n_frames": [2, 3]}}
    with pytest.raises(SpecError, match=r"axes.movie.n_frames: .* has no \[movie\]"):
        load_spec(d)


def test_cli_refuses_a_bad_movie_spec_with_exit_2(tmp_path, capsys):
    from glomsim.cli import sweep as cli_sweep

    out = tmp_path / "o.zarr"
    bad = tmp_path / "bad.toml"
    bad.write_text("[base]\nlevels = 2\n[movie]\nspeed = 2\n")
    assert cli_sweep.main([str(bad), "-o", str(out), "--sync", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "movie: unknown key(s) speed" in err and len(err.splitlines()) == 1
    both = tmp_path / "both.toml"
    both.write_text("[base]\nlevels = 2\n[movie]\nn_frames = 2\n[scene]\nn_objects = 1\n")
    assert cli_sweep.main([str(both), "-o", str(out), "--sync", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "[scene]" in err and "[movie]" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_example_movie_spec_is_valid():
    from pathlib import Path

    spec = load_spec(Path(__file__).parents[1] / "examples" / "sweep_movie.toml")
    assert spec.shape == (3, 3, 4) and spec.dims == ("speed", "k", "seed")
    assert spec.movie["steps_per_frame"] == 1 and spec.has_labels
    assert {spec.settings(p)["movie"]["steps_per_frame"] for p in range(9)} == {2, 4, 8}
