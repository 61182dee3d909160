"""glomsim demo: the README's main job writes its figures and a report with real findings."""

import re

import numpy as np
import pytest
from PIL import Image

from glomsim.cli.demo import run_demo

FIGURES = ("ari.png", "islands.png", "island_maps.png", "island_maps_no_attention.png",
           "convergence.png", "islands.gif")  # fmt: skip


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_demo(out, quick=True, progress=False, client="sync").read_text()


def test_every_figure_has_a_caption(quick):
    out, text = quick
    lines = text.splitlines()
    images = [k for k, line in enumerate(lines) if re.match(r"!\[.*\]\((.+)\)$", line)]
    assert [re.match(r"!\[.*\]\((.+)\)$", lines[k]).group(1) for k in images] == list(FIGURES)
    for n, k in enumerate(images, 1):
        caption = lines[k + 2]
        file = FIGURES[n - 1]
        assert caption.startswith(f"*Figure {n} ({file}).* "), caption
        assert len(caption) > 200, caption  # says what it shows and how to read it
    assert "dotted vertical line" in text and "colour bar" in text


def test_the_demo_writes_an_animation_of_every_other_step(quick):
    out, text = quick
    with Image.open(out / "islands.gif") as im:
        assert im.n_frames == 21  # steps 0, 2, ..., 40 of the detailed run (41 states)


def test_quick_demo_writes_figures_and_report(quick):
    out, text = quick
    for name in FIGURES:
        assert (out / name).stat().st_size > 2000, name
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
