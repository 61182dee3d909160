"""The glomsim command: run, bad input, info, warmup."""

import json
import subprocess
import sys

import numpy as np
import pytest

import glomsim as gs
from glomsim.cli import main


def test_run_writes_a_store_that_reruns(tmp_path, capsys):
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=5, dtype="float64")
    conf = tmp_path / "c.toml"
    conf.write_text(cfg.to_toml())
    out = tmp_path / "o.zarr"
    assert main(["run", str(conf), "-o", str(out), "--json", "-q", "--no-scene"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 5 and len(summary["levels"]) == 2
    c2, w2, ds = gs.load_run(out)
    assert c2 == cfg
    np.testing.assert_array_equal(gs.rerun(ds, w2).embedding.values, ds.embedding.values)
    # a second run to the same place needs --overwrite
    assert main(["run", str(conf), "-o", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text,field",
    [
        ("levels = 0\n", "levels"),
        ('[attention]\nkernel = "softmax"\n', "attention.kernel"),
        ("[mix]\nattention = -1\n", "mix.attention"),
        ("radius = 2\n", "radius"),
        ("levels = [\n", "TOML"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path, text, field):
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "glomsim.cli", "run", str(conf), "-o", str(tmp_path / "x.zarr")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field.lower() in lines[0].lower()
    assert not (tmp_path / "x.zarr").exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "x.zarr")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_builtin_config_is_valid_and_printable(capsys):
    from glomsim.cli import _load_config

    cfg = _load_config(None)
    assert main(["default-config"]) == 0
    assert gs.GlomConfig.from_toml(capsys.readouterr().out) == cfg


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["glomsim"] == gs.__version__ and info["numba_threads"] >= 1
    assert info["vector_bits"] in (256, 512)


def test_analyze_and_plot_a_scene_run(tmp_path, capsys):
    out = tmp_path / "r.zarr"
    assert main(["run", "-o", str(out), "--steps", "12", "-q"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out), "-o", str(tmp_path / "m.nc")]) == 0
    text = capsys.readouterr().out
    assert "parse-tree score" in text and "ari" in text
    import xarray as xr

    m = xr.open_dataset(tmp_path / "m.nc", engine="h5netcdf")
    n_col = 16 * 16
    assert ((m["count"] >= 1) & (m["count"] <= n_col)).all()
    assert ((m["ari"] <= 1) & (m["ari"] >= -1)).all()
    assert main(["plot", str(out), "-o", str(tmp_path / "figs")]) == 0
    for name in ("islands.png", "convergence.png", "projection.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 1000


def test_analyze_missing_store_is_a_usage_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "none.zarr")]) == 2
    assert "no such dataset" in capsys.readouterr().err


def test_train_then_run_with_learned_weights(tmp_path, capsys):
    cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=4, normalize="l2")
    conf = tmp_path / "c.toml"
    conf.write_text(cfg.to_toml())
    w = tmp_path / "w.npz"
    assert main(["train", str(conf), "-o", str(w), "--scenes", "2", "--epochs", "2"]) == 0
    learned = gs.load_weights(w)
    assert learned.meta["kind"] == "learned"
    out = tmp_path / "r.zarr"
    assert main(["run", str(conf), "-o", str(out), "--weights", str(w), "-q"]) == 0
    _, w2, ds = gs.load_run(out)
    assert w2 == learned and ds.attrs["weights_kind"] == "learned"
    capsys.readouterr()
    assert main(["train", str(conf), "-o", str(w), "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err
    bad = gs.GlomConfig(levels=2, dim=8, grid=(8, 8))
    conf.write_text(bad.to_toml())
    assert main(["run", str(conf), "-o", str(tmp_path / "x.zarr"), "--weights", str(w)]) == 2


def test_bench_forwards_every_option_to_the_benchmark_script(capfd):
    """``glomsim bench`` runs benchmarks/bench.py in a new process with the options as
    given: ``--help`` is the script's own help, not the subcommand's."""
    assert main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "--only" in out and "--no-reference" in out


def test_bench_drops_a_leading_separator(capfd):
    assert main(["bench", "--", "--help"]) == 0
    assert "--no-reference" in capfd.readouterr().out


def test_bench_without_a_source_checkout_is_a_usage_error(tmp_path, monkeypatch, capsys):
    import glomsim.cli.bench as cli

    monkeypatch.setattr(cli, "_bench_script", lambda: tmp_path / "benchmarks" / "bench.py")
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "glomsim bench: error:" in err and str(tmp_path / "benchmarks" / "bench.py") in err


def test_bench_ignores_another_projects_benchmark_script(tmp_path, monkeypatch, capsys):
    """In site-packages, a stray top-level benchmarks/bench.py of another distribution is
    not glomsim's: it is not run."""
    import glomsim.cli.bench as cli

    script = tmp_path / "benchmarks" / "bench.py"
    script.parent.mkdir()
    script.write_text("raise SystemExit(7)\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    monkeypatch.setattr(cli, "_bench_script", lambda: script)
    assert main(["bench"]) == 2
    assert "not at" in capsys.readouterr().err
