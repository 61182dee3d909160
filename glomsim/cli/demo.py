"""``glomsim demo``: the built-in study (:func:`glomsim.demo.run_demo`), its report printed."""

from __future__ import annotations

import time


def register(subparsers):
    """Add the ``demo`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser("demo", help="a small built-in study on scenes: figures and a report")
    p.add_argument("-o", "--output", default="glomsim-demo", help="output folder")
    p.add_argument("--workers", type=int, help="local Dask workers (default: cores)")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds)")
    p.add_argument("--scheduler", help="an existing Dask scheduler address to use instead")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args):
    from ..demo import run_demo

    t0 = time.perf_counter()
    report = run_demo(args.output, workers=args.workers, quick=args.quick,
                      progress=not args.quiet, client=args.scheduler)  # fmt: skip
    print(report.read_text())
    print(f"wrote {report} and figures in {report.parent} ({time.perf_counter() - t0:.0f} s)")
    return 0
