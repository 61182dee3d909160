"""``glomsim warmup``: compile every numba kernel once, into the cache."""

from __future__ import annotations


def register(subparsers):
    """Add the ``warmup`` subcommand to an argparse ``subparsers`` object."""
    w = subparsers.add_parser("warmup", help="compile every numba kernel once (into the cache)")
    w.add_argument("-q", "--quiet", action="store_true")
    w.set_defaults(func=cmd_warmup)
    return w


def cmd_warmup(args):
    from .._kernels.jit import CACHE
    from ..runs import warmup

    seconds = warmup(verbose=not args.quiet)
    print(f"compiled all kernels in {seconds:.1f} s (numba cache {'on' if CACHE else 'off'})")
    return 0
