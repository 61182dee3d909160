"""``glomsim warmup``: compile every numba kernel once, into the cache: both variants of
the fused step (lean and full, see :mod:`glomsim._kernels.step`) for each dtype asked."""

from __future__ import annotations


def register(subparsers):
    """Add the ``warmup`` subcommand to an argparse ``subparsers`` object."""
    w = subparsers.add_parser(
        "warmup",
        help="compile every numba kernel once, into the cache: both variants of the step "
        "(lean: GELU nets, no contrastive kernel; full: everything) per dtype (glomsim info "
        "shows where; a read-only install's is ~/.cache/glomsim/numba, or GLOMSIM_CACHE_DIR)",
    )
    w.add_argument("-q", "--quiet", action="store_true")
    w.add_argument("--dtype", nargs="+", choices=("float32", "float64"),
                   default=["float32", "float64"],
                   help="only these dtypes' kernels (default: both)")  # fmt: skip
    w.set_defaults(func=cmd_warmup)
    return w


def cmd_warmup(args):
    from .._kernels.jit import CACHE, CACHE_DIR
    from ..runs import warmup

    seconds = warmup(verbose=not args.quiet, dtypes=tuple(args.dtype))
    where = f"on, in {CACHE_DIR}" if CACHE else "off"
    print(f"compiled the {', '.join(args.dtype)} kernels in {seconds:.1f} s (numba cache {where})")
    return 0
