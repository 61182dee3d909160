"""The documentation site builds with warnings as errors, and has the pages it promises."""

import argparse
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("sphinx")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"sphinx -W failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}"
    )
    return out


def _text(path: Path) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_key_pages_exist(site):
    for page in ("index", "api", "cli", "maths", "studies", "update-rule", "user-guide"):
        assert (site / f"{page}.html").is_file(), page


def test_every_markdown_page_is_in_the_site(site):
    for md in (ROOT / "docs").glob("*.md"):
        if md.stem == "index":
            continue
        assert (site / f"{md.stem}.html").is_file(), md.name
        # reachable from the table of contents, not only built
        assert f'href="{md.stem}.html"' in (site / "index.html").read_text(encoding="utf-8")


def test_api_page_documents_the_public_api(site):
    page = (site / "api.html").read_text(encoding="utf-8")
    for name in (
        "glomsim.simulate",
        "glomsim.GlomConfig",
        "glomsim.Mix",
        "glomsim.Attention",
        "glomsim.GlomWeights",
        "glomsim.random_weights",
        "glomsim.identity_weights",
        "glomsim.SimulationDiverged",
        "glomsim.save",
        "glomsim.open_dataset",
        "glomsim.load_run",
        "glomsim.rerun",
        "glomsim.from_glom_pytorch",
        "glomsim.to_glom_pytorch",
        "glomsim.scenes.make_scene",
        "glomsim.reference.step",
        "glomsim.testing.consensus_cases",
        "analysis.islands",
        "analysis.hierarchy",
        "analysis.agreement",
        "analysis.convergence",
        "analysis.stability",
        "analysis.perturbation_recovery",
        "analysis.lyapunov",
        "analysis.energy",
        "analysis.plot.island_maps",
    ):
        # an object description (its anchor), not only a mention in prose
        assert f'id="{name}"' in page, name
    # numpydoc rendered the sections rather than leaving raw headings
    text = _text(site / "api.html")
    assert "Parameters" in text and "----------" not in text


def test_cli_page_lists_every_subcommand(site):
    from glomsim.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = _text(site / "cli.html")
    for name, subparser in sub.choices.items():
        assert f"glomsim {name}" in text, name
        for action in subparser._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # -h is in the usage line; --help is not listed
            for flag in action.option_strings:
                assert flag in text, (name, flag)


def test_maths_page_has_numbered_equations(site):
    page = (site / "maths.html").read_text(encoding="utf-8")
    for label in ("step", "contributions", "mixing", "lazy"):
        assert f'id="equation-{label}"' in page, label
    # the equations reached MathJax unparsed by Markdown
    assert "\\tilde E^t_{l,i}" in html.unescape(page)


def test_studies_page_includes_every_study_readme(site):
    text = _text(site / "studies.html")
    readmes = sorted((ROOT / "studies").glob("*/README.md"))
    for readme in readmes:
        title = next(
            (
                ln[2:].strip()
                for ln in readme.read_text(encoding="utf-8").splitlines()
                if ln.startswith("# ")
            ),
            None,
        )
        if title is not None:
            plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # [text](link) -> text
            plain = re.sub(r"[`*_]", "", plain)
            assert plain in re.sub(r"\s+", " ", text), readme
    if not readmes:
        assert "No study has been written yet" in text
