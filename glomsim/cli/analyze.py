"""``glomsim analyze``: islands, hierarchy, agreement and convergence of a saved run."""

from __future__ import annotations

from ._common import UsageError, is_single_run, open_run

#: The per-level columns of the printed table (``ari`` is added for scene runs).
COLUMNS = ("count", "baseline_count", "largest_fraction", "settled_step", "rate")


def register(subparsers):
    """Add the ``analyze`` subcommand to an argparse ``subparsers`` object."""
    a = subparsers.add_parser(
        "analyze", help="islands, hierarchy, agreement and convergence of a run"
    )
    a.add_argument("store", help="a run written by glomsim run (.zarr or .nc)")
    a.add_argument(
        "--threshold", type=float, default=0.99, help="island cosine threshold, in [-1, 1]"
    )
    a.add_argument(
        "-o", "--output", help="also write the measurements (.nc or .zarr, by the suffix)"
    )
    a.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    a.set_defaults(func=cmd_analyze)
    return a


def _print_table(ds, res):
    last = res.isel(time=-1)
    cols = list(COLUMNS) + (["ari"] if "ari" in res else [])
    print("level  " + "  ".join(f"{c:>16}" for c in cols))
    for level in range(ds.sizes["level"]):
        cells = []
        for c in cols:
            v = res[c].sel(level=level) if "time" not in res[c].dims else last[c].sel(level=level)
            cells.append(f"{float(v):>16.4g}")
        print(f"{level:>5}  " + "  ".join(cells))
    print(f"parse-tree score at the end: {float(last['parse_score']):.3f}")


def _check_options(args):
    """Every option checked before the run is opened or anything computed."""
    from .._validate import check_real
    from ..dataset import check_output

    try:
        check_real("--threshold", args.threshold, lo=-1, hi=1, note="(a cosine)")
        if args.output:
            check_output(args.output, overwrite=args.overwrite, field="--output")
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc


def cmd_analyze(args):
    _check_options(args)
    ds = open_run(args.store)
    if not is_single_run(ds):
        raise UsageError(
            f"{args.store}: analyze takes a single run (glomsim run); sweeps carry their summaries"
        )
    from analysis import analyze_run

    res = analyze_run(ds, threshold=args.threshold)
    print(f"{args.store}: {int(ds.time[-1])} steps, {ds.sizes['level']} levels, "
          f"{ds.sizes['column']} columns")  # fmt: skip
    _print_table(ds, res)
    if args.output:
        from ..dataset import save

        out = save(res, args.output, overwrite=args.overwrite)
        print(f"wrote {out}")
    return 0
