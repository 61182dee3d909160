"""``glomsim plot``: island maps, convergence curves and a 2-D projection of a saved run."""

from __future__ import annotations

from pathlib import Path

from ._common import UsageError, is_single_run, open_run


def register(subparsers):
    """Add the ``plot`` subcommand to an argparse ``subparsers`` object."""
    pl = subparsers.add_parser("plot", help="island maps, convergence curves, a 2-D projection")
    pl.add_argument("store", help="a run written by glomsim run (.zarr or .nc)")
    pl.add_argument("-o", "--output", default="glomsim-out/figures", help="folder for PNGs")
    pl.add_argument("--threshold", type=float, default=0.99, help="island cosine threshold")
    pl.set_defaults(func=cmd_plot)
    return pl


def cmd_plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import analysis as an
    import analysis.plot as ap

    ds = open_run(args.store)
    if not is_single_run(ds):
        raise UsageError(f"{args.store}: plot takes a single run (glomsim run)")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    isl = an.islands(ds, threshold=args.threshold)
    n = ds.sizes["time"]
    times = sorted({0, n // 4, n // 2, n - 1})
    figs = {
        "islands.png": ap.island_maps(isl, times=times),
        "convergence.png": ap.convergence_curves(an.convergence(ds)),
        "projection.png": ap.projection(ds, time=-1, level=0, islands=isl),
    }
    for name, fig in figs.items():
        fig.savefig(out / name, dpi=90)
        print(f"wrote {out / name}")
    return 0
