"""glomsim demo: the README's main job writes its figures and a report with real findings."""

import re

import numpy as np

from glomsim.cli.demo import run_demo


def test_quick_demo_writes_figures_and_report(tmp_path):
    report = run_demo(tmp_path / "demo", quick=True, progress=False, client="sync")
    text = report.read_text()
    for name in ("ari.png", "islands.png", "island_maps.png", "convergence.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 2000, name
        assert f"]({name})" in text
    assert "failed: 0" in text
    # the table: attention weight 0 forms no islands that match the truth, weight 2 does
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| ([\d.]+) \| ([\d.]+) \| (.+) \|$", line)
        if m:
            rows[float(m.group(1))] = np.array([float(v) for v in m.group(3).split(" | ")])
    assert set(rows) == {0.0, 2.0}
    assert rows[0.0].max() < 0.1 and rows[2.0].max() > 0.5
