"""The benchmark script runs end to end and writes what docs/performance.md quotes.

Timings are never asserted: only that each peer was timed and the table is complete.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_a_complete_table(tmp_path):
    # through the CLI: ``glomsim bench`` runs benchmarks/bench.py with these options
    cmd = [sys.executable, "-m", "glomsim.cli", "bench", "--quick", "--only", "small",
           "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["gemm_peak_gflops"]["1"] > 0
    # the peak is the best of the products measured, glomsim's packed one among them
    sources = result["gemm_peak_sources"]["1"]
    assert {"numpy", "glomsim_packed"} <= set(sources)
    assert result["gemm_peak_gflops"]["1"] == max(sources.values())
    (row,) = result["rows"]
    assert row["config"] == "small" and row["threads"] == 1
    peers = set(row["ms_per_iteration"])
    assert {"glomsim", "reference"} <= peers
    if importlib.util.find_spec("glom_pytorch") is not None:
        assert "glom_pytorch" in peers  # the same weights, loaded through the interop
    for peer in peers - {"glomsim"}:
        assert row[f"speedup_vs_{peer}"] > 0
    # the FMA peak's floor: glomsim's executed work at that peak, and each peer against it
    assert result["fma_peak_gflops"]["1"] > 0
    assert row["floor_ms_per_iteration"] == pytest.approx(
        row["glomsim_executed_flops_per_iteration"] / result["fma_peak_gflops"]["1"] / 1e6
    )
    for peer in peers - {"glomsim", "reference"}:
        assert row[f"floor_speedup_vs_{peer}"] * row["fraction_of_fma_peak"] == pytest.approx(
            row[f"speedup_vs_{peer}"]
        )
    assert 0 < row["fraction_of_gemm_peak"]
    # the net-bound limit counts the nets' part of the executed work: executed / net >= 1
    assert row["fraction_of_gemm_peak"] * row["over_net_bound"] >= 1.0
    # glomsim keeps 11 states of 5 x 64 x 64 float32 (~0.9 MB): its traced peak covers them
    assert row["peak_traced_mb"]["glomsim"] > 11 * 5 * 64 * 64 * 4 / 2**20


def _fma_peak_module():
    spec = importlib.util.spec_from_file_location("fma_peak", ROOT / "benchmarks" / "fma_peak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("x", [0.999, -0.5, 0.25])
@pytest.mark.parametrize("n", [0, 1, 5, 40])
def test_the_fma_peak_kernel_runs_every_multiply_add_it_counts(n, x):
    """The register-only kernel's result is that of n multiply-adds on each of its
    accumulators, step by step in numpy: none was merged or left out."""
    fma = _fma_peak_module()
    chain, parallel = fma.kernels()
    x32 = np.float32(x)
    assert chain(n, x32) == pytest.approx(fma.emulated(n, x32), rel=1e-5)
    out = np.zeros(2, np.float32)
    parallel(n, x32, out)  # one chain per entry, from x + t 1e-6
    assert out[0] == chain(n, x32)
    x1 = np.float32(x32 + np.float32(1e-6))
    assert out[1] == pytest.approx(fma.emulated(n, x1), rel=1e-5)


def test_scaling_sweeps_columns_dim_and_levels(tmp_path):
    """The scaling section times every swept shape, measures growth against linear from
    32x32 columns, and draws the three panels."""
    cmd = [sys.executable, "-m", "glomsim.cli", "bench", "--only", "scaling", "--threads", "1",
           "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    result = json.loads((tmp_path / "bench.json").read_text())
    sweeps = result["scaling"]["1"]
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for sweep, (field, values) in bench.SCALING_SWEEPS.items():
        rows = sweeps[sweep]
        assert [r[field] for r in rows] == list(values)
        assert all(r["ms_per_step"] > 0 and r["steps"] >= 3 for r in rows)
    # growth against linear is measured from 32x32 (the must-show's range) and only there
    assert [r["side"] for r in sweeps["columns"] if "growth_vs_linear" in r] == [
        32,
        48,
        64,
        96,
        128,
    ]
    assert (tmp_path / "scaling.png").stat().st_size > 0


def _benchmark_module(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_the_contention_table_compares_default_with_one_thread_and_stops_its_competitor():
    import os

    import pytest

    contention = _benchmark_module("contention")
    rows = contention.run_contention(("small",), rounds=1, loads=("busy",))
    modes = {r["torch_first"] for r in rows}
    assert modes == ({False, True} if importlib.util.find_spec("torch") else {False})
    for r in rows:
        assert r["config"] == "small" and r["load"] == "busy"
        assert {"default", "one_thread"} <= set(r["ms_per_iteration"])
        lo, hi = r["default_over_one_thread_interval"]
        assert 0 < lo <= r["default_over_one_thread"] <= hi
        assert set(r["cpu_ms_per_iteration"]) == set(r["ms_per_iteration"])
        assert 1 <= min(r["default_threads_chosen"]) <= r["numba_threads"]
    with pytest.raises(ProcessLookupError):  # the competitor was stopped
        os.kill(contention.run_contention.competitor_pid, 0)
    # and stopped when a case fails
    with pytest.raises(subprocess.CalledProcessError):
        contention.run_contention(("no_such_config",), rounds=1, loads=("busy",))
    with pytest.raises(ProcessLookupError):
        os.kill(contention.run_contention.competitor_pid, 0)


def test_the_contention_ratio_is_a_ratio_of_paired_medians_with_an_interval_around_it():
    import numpy as np

    contention = _benchmark_module("contention")
    a = np.random.default_rng(1).lognormal(0.0, 0.4, size=31)
    ratio, lo, hi = contention.ratio_of_medians(2.0 * a, a)
    assert ratio == 2.0 and lo == hi == 2.0  # every resample keeps the pairs together
    ratio, lo, hi = contention.ratio_of_medians(a, a[::-1])
    assert ratio == 1.0 and lo < 1.0 < hi  # the same values in other rounds: it spreads


def test_the_jax_peers_agree_with_glomsim_and_glom_pytorch():
    import math

    import numpy as np
    import pytest

    pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    pytest.importorskip("glom_pytorch")
    bench = _benchmark_module("bench")
    jax_peer = _benchmark_module("jax_peer")
    for radius in (math.inf, 1.5):
        model, cfg, w = bench._glom_pair(8, 3, 4, radius)
        img = np.random.default_rng(3).standard_normal((3, 8, 8)).astype(np.float32)
        fns = jax_peer.peers(model, cfg, w, img, 5, radius)  # checked against glomsim
        assert set(fns) == ({"jax_dense"} if math.isinf(radius) else {"jax_dense", "jax_local"})
        with torch.no_grad():
            ref = model(torch.from_numpy(img)[None], iters=5)[0].numpy().transpose(1, 0, 2)
        params = jax_peer.params_from_glom_pytorch(model)
        for kind in ("dense", "local"):
            out = np.asarray(jax_peer.make_forward(params, 4, 2, 5, radius, kind)(img))
            assert out.shape == ref.shape
            assert jax_peer.agreement(out, ref) < jax_peer.TOLERANCE
        # a wrong weight is caught before any timing
        model.init_levels.data += 1.0
        with pytest.raises(AssertionError, match="disagrees with glomsim"):
            jax_peer.peers(model, cfg, w, img, 5, radius)


def test_the_competitor_ends_with_a_benchmark_killed_without_cleanup():
    """A benchmark killed by SIGKILL runs no ``finally``: its competitor sees that it was
    re-parented and stops on its own (one had spun on both cores for an hour)."""
    import os
    import signal
    import time

    import psutil

    contention = _benchmark_module("contention")
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, os, time\n"
         "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())])\n"
         "print(p.pid, flush=True)\ntime.sleep(600)\n", contention.COMPETITOR],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid = int(parent.stdout.readline())
    child = psutil.Process(pid)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60  # it may still be importing torch
    while time.monotonic() < deadline:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        child.kill()
        raise AssertionError("the competitor outlived its benchmark")
