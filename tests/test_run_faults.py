"""Issue 16, the CLI's part: every error path is one line and exit code 2 (run in a real
process, so that a traceback would show), and a run keeps its results: the output folder
is made before simulating, a divergence saves what was computed, nothing is overwritten
without --overwrite."""

import subprocess
import sys

import numpy as np
import pytest

import glomsim as gs
from glomsim.cli import main


def glomsim(*argv, cwd=None):
    """``glomsim ARGV...`` in a new process: (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "glomsim.cli", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def one_line_error(rc, stderr, *words) -> str:
    """The single error line of a failed command, after checking exit code 2, one line,
    no traceback, and that it names every one of ``words``."""
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def write_config(path, **fields):
    cfg = gs.GlomConfig(**fields)
    path.write_text(cfg.to_toml())
    return cfg


SMALL = dict(levels=2, dim=4, grid=(3, 3), steps=3, dtype="float64")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_run_makes_the_output_folder(tmp_path, suffix, capsys):
    conf = tmp_path / "c.toml"
    cfg = write_config(conf, **SMALL)
    out = tmp_path / "new" / "sub" / f"run{suffix}"
    assert main(["run", str(conf), "-o", str(out), "-q", "--no-scene"]) == 0
    assert out.exists() and (out.is_file() == (suffix == ".nc"))
    cfg2, w2, ds = gs.load_run(out)
    assert cfg2 == cfg and w2 is not None and int(ds.time[-1]) == cfg.steps


def test_an_output_folder_that_cannot_be_made_is_refused_before_simulating(tmp_path):
    conf = tmp_path / "c.toml"
    write_config(conf, **SMALL)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    rc, _, err = glomsim("run", conf, "-o", blocker / "run.nc", "-q", "--no-scene")
    one_line_error(rc, err, "--output", "afile")
    assert blocker.read_text() == "not a folder"


def test_bad_output_suffix_is_one_line(tmp_path):
    rc, _, err = glomsim("run", "-o", tmp_path / "run.txt", "-q")
    one_line_error(rc, err, "--output", ".zarr", ".nc")
    assert not (tmp_path / "run.txt").exists()


def _diverging(tmp_path):
    """A config and weights file whose run blows up (top-down gain 40, no normalisation)."""
    conf = tmp_path / "div.toml"
    cfg = write_config(conf, levels=2, dim=4, grid=(2, 2), steps=400,
                       mix=gs.Mix(previous=0, attention=0), dtype="float32")  # fmt: skip
    weights = gs.random_weights(cfg, seed=0, gain=40.0).save(tmp_path / "w.npz")
    return conf, weights


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_divergence_saves_the_steps_so_far_and_says_where(tmp_path, suffix):
    conf, weights = _diverging(tmp_path)
    out = tmp_path / "out" / f"run{suffix}"
    part = tmp_path / "out" / f"run.partial{suffix}"
    argv = ["run", conf, "-o", out, "--weights", weights, "-q", "--no-scene", "--record-every", "5"]
    rc, _, err = glomsim(*argv)
    line = one_line_error(rc, err, "non-finite", str(part))
    assert not out.exists()
    cfg, w, ds = gs.load_run(part)
    assert w == gs.load_weights(weights)
    step = int(line.split("non-finite at step ")[1].split(",")[0])
    times = ds.time.values
    assert times[0] == 0 and times[-1] < step and np.all(np.diff(times) > 0)
    assert np.isfinite(ds.embedding.values).all()
    assert int(ds.attrs["partial_until_step"]) == times[-1]
    # the partial result is not replaced without --overwrite, and that is checked first
    rc, _, err = glomsim(*argv)
    one_line_error(rc, err, "partial", "--overwrite")


def test_summaries_only_divergence_keeps_the_summaries(tmp_path):
    conf, weights = _diverging(tmp_path)
    out = tmp_path / "run.zarr"
    rc, _, err = glomsim("run", conf, "-o", out, "--weights", weights, "-q", "--no-scene",
                         "--summaries-only")  # fmt: skip
    one_line_error(rc, err, "summaries of steps 0-", "run.partial.zarr")
    ds = gs.open_dataset(tmp_path / "run.partial.zarr")
    assert ds.sizes["step"] == int(ds.time[-1]) + 1 and np.isfinite(ds.rms.values).all()


def test_a_grid_too_small_for_the_scene_is_one_line(tmp_path):
    conf = tmp_path / "small.toml"
    write_config(conf, levels=5, dim=8, grid=(4, 4), steps=2)
    rc, _, err = glomsim("run", conf, "-o", tmp_path / "x.zarr", "-q")
    one_line_error(rc, err, "grid=[4, 4]", "--no-scene")
    assert not (tmp_path / "x.zarr").exists()


def test_a_negative_seed_is_one_line(tmp_path):
    conf = tmp_path / "seed.toml"
    write_config(conf, **{**SMALL, "seed": -1})
    rc, _, err = glomsim("run", conf, "-o", tmp_path / "x.zarr", "-q")
    one_line_error(rc, err, "seed=-1", ">= 0")


@pytest.mark.parametrize("kind", ["garbage", "object", "npy", "truncated", "header"])
def test_a_weights_file_that_is_not_one_is_one_line(tmp_path, kind):
    conf = tmp_path / "c.toml"
    write_config(conf, **SMALL)
    bad = tmp_path / "w.npz"
    if kind == "garbage":
        bad.write_bytes(b"\x80\x04 certainly not a weights file" * 10)
    elif kind == "object":
        np.savez(bad, __header__=np.array([{"levels": 2}], dtype=object))
    elif kind == "npy":
        with open(bad, "wb") as f:
            np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "truncated":  # a real weights file, cut short
        data = gs.random_weights(gs.GlomConfig(**SMALL), seed=0).save(bad).read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:  # a header that no GlomWeights takes
        np.savez(bad, __header__=np.array('{"levels": 2, "colour": "blue"}'))
    rc, _, err = glomsim("run", conf, "-o", tmp_path / "x.zarr", "--weights", bad, "-q")
    one_line_error(rc, err, "--weights", "w.npz")


def test_weights_that_do_not_exist_are_one_line(tmp_path):
    rc, _, err = glomsim("run", "-o", tmp_path / "x.zarr", "--weights", tmp_path / "no.npz")
    one_line_error(rc, err, "--weights", "no such file")


@pytest.mark.parametrize(
    "fields,words",
    [
        (dict(levels=5, dim=32, grid=(10000, 10000), steps=60), ["grid=(10000, 10000)"]),
        (dict(levels=5, dim=1_000_000, grid=(16, 16), steps=60), ["dim=1000000"]),
        (dict(levels=5, dim=64, grid=(64, 64), steps=2_000_000),
         ["steps=2000000", "--summaries-only", "--record-every"]),
    ],
)  # fmt: skip
def test_a_run_too_large_for_memory_is_refused_before_allocating(tmp_path, fields, words):
    conf = tmp_path / "big.toml"
    write_config(conf, **fields)
    rc, _, err = glomsim("run", conf, "-o", tmp_path / "x.zarr", "-q")
    one_line_error(rc, err, "this run needs about", "available", *words)
    assert not (tmp_path / "x.zarr").exists()


def test_broken_pipe_ends_quietly(tmp_path):
    conf = tmp_path / "c.toml"
    write_config(conf, **SMALL)
    argv = [sys.executable, "-m", "glomsim.cli", "run", str(conf), "-o",
            str(tmp_path / "x.zarr"), "-q", "--no-scene"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader goes away before anything is printed (| head -0)
    err = proc.stderr.read()
    proc.wait(timeout=600)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err, err
    assert (tmp_path / "x.zarr").exists()  # the result was saved before printing


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    cfg = gs.GlomConfig(**SMALL)
    w = gs.random_weights(cfg, seed=0)
    return gs.save(gs.simulate(cfg, w), tmp_path_factory.mktemp("run") / "r.zarr", weights=w)


@pytest.mark.parametrize("threshold", ["2", "nan", "-1.5"])
def test_analyze_threshold_out_of_range_is_one_line(saved_run, threshold):
    rc, _, err = glomsim("analyze", saved_run, "--threshold", threshold)
    one_line_error(rc, err, "--threshold", ">= -1", "<= 1")


def test_analyze_output_is_chosen_by_suffix_and_never_overwritten(saved_run, tmp_path, capsys):
    rc, _, err = glomsim("analyze", saved_run, "-o", tmp_path / "res.txt")
    one_line_error(rc, err, "--output", ".nc")
    assert not (tmp_path / "res.txt").exists()
    out = tmp_path / "res" / "m.nc"
    assert main(["analyze", str(saved_run), "-o", str(out)]) == 0
    assert out.is_file()  # netCDF, not a Zarr folder named .nc
    first = out.read_bytes()
    rc, _, err = glomsim("analyze", saved_run, "-o", out)
    one_line_error(rc, err, "--output", "exists", "--overwrite")
    assert out.read_bytes() == first
    assert main(["analyze", str(saved_run), "-o", str(out), "--overwrite"]) == 0
    res = gs.open_dataset(out)
    assert "count" in res and "parse_score" in res
    zarr = tmp_path / "m.zarr"
    assert main(["analyze", str(saved_run), "-o", str(zarr)]) == 0
    assert zarr.is_dir()


def test_info_names_the_cache_folder_and_real_versions(capsys):
    import json
    from importlib.metadata import PackageNotFoundError, version

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    from glomsim._kernels.jit import CACHE

    assert "numba_cache_dir" in info
    assert (info["numba_cache_dir"] is not None) == CACHE
    try:
        expected = version("glom-pytorch")
    except PackageNotFoundError:
        expected = None
    assert info["glom_pytorch"] == expected
    assert "installed" not in {v for v in info.values() if isinstance(v, str)}


def test_random_weights_names_a_negative_seed():
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2))
    with pytest.raises(ValueError, match=r"seed=-1 is not allowed; allowed: an integer >= 0"):
        gs.random_weights(cfg, seed=-1)
    with pytest.raises(ValueError, match=r"seed=1.5 is not allowed"):
        gs.random_weights(cfg, seed=1.5)


def test_rerun_of_a_frames_run_is_bit_for_bit_and_a_continued_run_is_refused():
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=7, top_down_delay=2)
    w = gs.random_weights(cfg, seed=2)
    frames = np.random.default_rng(0).normal(size=(3, 9, 4)).astype(np.float32)
    ds = gs.simulate(cfg, w, frames=frames, steps_per_frame=2, record_every=3)
    again = gs.rerun(ds, w)
    assert again.input.dims == ("frame", "column", "feature")
    assert [int(t) for t in again.time] == [int(t) for t in ds.time]
    assert bool((again.embedding == ds.embedding).all())
    assert bool((again.frame == ds.frame).all())
    more = gs.simulate(cfg, w, init=gs.simulate(cfg, w, frames=frames, steps_per_frame=2), steps=3)
    with pytest.raises(ValueError, match="continued from step 7"):
        gs.rerun(more, w)
