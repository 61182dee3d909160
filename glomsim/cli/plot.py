"""``glomsim plot``: island maps, convergence curves, a 2-D projection and, with
``--animate``, an animation of the islands forming, of a saved run."""

from __future__ import annotations

from pathlib import Path

from ._common import UsageError, is_single_run, open_run

#: The figures ``glomsim plot`` writes, and what each shows.
FIGURES = {
    "islands.png": "island maps per level at four steps, beside the ground truth",
    "convergence.png": "RMS change per step and level, with the settling steps",
    "projection.png": "level 0's embeddings at the last step on their first two PCs",
}


def register(subparsers):
    """Add the ``plot`` subcommand to an argparse ``subparsers`` object."""
    pl = subparsers.add_parser(
        "plot", help="island maps, convergence curves, a 2-D projection, an animation"
    )
    pl.add_argument("store", help="a run written by glomsim run (.zarr or .nc)")
    pl.add_argument("-o", "--output", default="glomsim-out/figures", help="folder for PNGs")
    pl.add_argument("--threshold", type=float, default=0.99, help="island cosine threshold")
    pl.add_argument(
        "--animate",
        action="store_true",
        help="also write islands.gif (and islands.mp4 where ffmpeg is installed): the "
        "island maps of every recorded step, per level, beside the ground truth",
    )
    pl.set_defaults(func=cmd_plot)
    return pl


def _output(path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output={str(out)!r} is a file; give a folder for the figures")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--output={str(out)!r}: {parent} is a file, not a folder")
    return out


def _check_threshold(threshold):
    from .._validate import check_island_options

    try:
        check_island_options(threshold=threshold, where="plot")
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"--threshold={threshold!r} is not allowed; allowed: a cosine similarity in [-1, 1]"
        ) from exc


def write_figures(ds, out: Path, *, threshold=0.99, animate=False, name=None) -> list[Path]:
    """Write ``glomsim plot``'s figures of the run ``ds`` into the folder ``out``."""
    from matplotlib import animation

    import analysis as an
    import analysis.plot as ap

    out.mkdir(parents=True, exist_ok=True)
    isl = an.islands(ds, threshold=threshold)
    n = ds.sizes["time"]
    times = sorted({0, n // 4, n // 2, n - 1})
    figs = {
        "islands.png": lambda: ap.island_maps(isl, times=times, name=name),
        "convergence.png": lambda: ap.convergence_curves(an.convergence(ds), name=name),
        "projection.png": lambda: ap.projection(ds, time=-1, level=0, islands=isl, name=name),
    }
    written = []
    for file, make in figs.items():
        make().savefig(out / file, dpi=90)
        written.append(out / file)
    if animate:
        kinds = [".gif"] + ([".mp4"] if animation.writers.is_available("ffmpeg") else [])
        for suffix in kinds:
            written.append(ap.animate(ds, out / f"islands{suffix}", name=name,
                                      threshold=threshold))  # fmt: skip
    return written


def cmd_plot(args):
    import matplotlib

    matplotlib.use("Agg")
    out = _output(args.output)
    _check_threshold(args.threshold)
    ds = open_run(args.store)
    if not is_single_run(ds):
        raise UsageError(f"{args.store}: plot takes a single run (glomsim run)")
    name = Path(args.store).name
    for path in write_figures(ds, out, threshold=args.threshold, animate=args.animate,
                              name=name):  # fmt: skip
        print(f"wrote {path}")
    if args.animate and not any(p.suffix == ".mp4" for p in out.iterdir()):
        print("(no MP4: ffmpeg is not installed)")
    return 0
