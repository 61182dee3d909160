"""Every study runs (its --quick version) from any working directory and writes its
figures and results under its own results/quick/ folder only."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.parent.name for p in (ROOT / "studies").glob("*/run.py"))


def test_the_issue_studies_exist():
    for name in ("island_phase_diagram", "top_down_delay", "echo_chambers", "classic_limits",
                 "fixed_vs_learned", "moving_objects"):  # fmt: skip
        assert name in STUDIES
        readme = (ROOT / "studies" / name / "README.md").read_text()
        assert "![" in readme  # findings come with figures


@pytest.mark.parametrize("name", STUDIES)
def test_quick_study_runs(name, tmp_path):
    folder = ROOT / "studies" / name
    committed = {p: p.stat().st_mtime for p in folder.glob("*.png")}
    proc = subprocess.run([sys.executable, str(folder / "run.py"), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    quick = folder / "results" / "quick"
    assert any(quick.glob("*.png")) or any(quick.glob("*.nc")), "no results written"
    assert not any(tmp_path.iterdir()), "a study wrote into the working directory"
    for p, mtime in committed.items():
        assert p.stat().st_mtime == mtime, f"--quick overwrote the committed figure {p.name}"
