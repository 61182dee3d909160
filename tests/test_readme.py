"""The README's commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert f"```bash\n{ci}\n```" in readme


def test_readme_main_job_command_is_a_real_subcommand():
    from glomsim.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("python -m pip install -e . &&"))
    argv = line.split("&&", 1)[1].split()
    assert argv[0] == "glomsim"
    build_parser().parse_args(argv[1:])  # raises SystemExit on an unknown command or flag
