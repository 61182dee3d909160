"""``glomsim bench``: run ``benchmarks/bench.py`` of the source checkout, options as given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import UsageError


def register(subparsers):
    """Add the ``bench`` subcommand to an argparse ``subparsers`` object."""
    b = subparsers.add_parser(
        "bench",
        help="glomsim against glom-pytorch and the reference (benchmarks/bench.py of a source "
        "checkout; every option goes to it, e.g. glomsim bench --quick, glomsim bench --help)",
        prefix_chars="+",  # so that --quick, --help, ... reach the script
    )
    b.add_argument("args", nargs=argparse.REMAINDER, help="options of benchmarks/bench.py")
    b.set_defaults(func=cmd_bench)
    return b


def _bench_script() -> Path:
    """``benchmarks/bench.py`` of the source checkout this package is installed from."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def _is_checkout(script: Path) -> bool:
    """The script sits in glomsim's own source tree (not in site-packages beside some
    other distribution's ``benchmarks`` folder)."""
    project = script.parents[1] / "pyproject.toml"
    try:
        return script.is_file() and 'name = "glomsim"' in project.read_text()
    except OSError:
        return False


def cmd_bench(args):
    import subprocess

    script = _bench_script()
    forwarded = list(args.args)
    if forwarded[:1] == ["--"]:  # glomsim bench -- --quick: the separator is not an option
        forwarded = forwarded[1:]
    if not _is_checkout(script):
        raise UsageError(
            f"the benchmark script is not at {script}: glomsim bench runs benchmarks/bench.py "
            "of a source checkout (git clone the repository, then pip install -e .)"
        )
    # a new process: the benchmark imports torch before glomsim, so that torch's OpenMP
    # runtime keeps its own defaults (this process has imported glomsim already)
    return subprocess.run([sys.executable, str(script), *forwarded]).returncode
