"""The benchmark script runs end to end and writes what docs/performance.md quotes.

Timings are never asserted: only that each peer was timed and the table is complete.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_a_complete_table(tmp_path):
    # through the CLI: ``glomsim bench`` runs benchmarks/bench.py with these options
    cmd = [sys.executable, "-m", "glomsim.cli", "bench", "--quick", "--only", "small",
           "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["gemm_peak_gflops"]["1"] > 0
    (row,) = result["rows"]
    assert row["config"] == "small" and row["threads"] == 1
    peers = set(row["ms_per_iteration"])
    assert {"glomsim", "reference"} <= peers
    if importlib.util.find_spec("glom_pytorch") is not None:
        assert "glom_pytorch" in peers  # the same weights, loaded through the interop
    for peer in peers - {"glomsim"}:
        assert row[f"speedup_vs_{peer}"] > 0
    assert 0 < row["fraction_of_gemm_peak"]
    # glomsim keeps 11 states of 5 x 64 x 64 float32 (~0.9 MB): its traced peak covers them
    assert row["peak_traced_mb"]["glomsim"] > 11 * 5 * 64 * 64 * 4 / 2**20


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
