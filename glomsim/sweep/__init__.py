"""Parameter sweeps on Dask: a spec of axes over config fields, results in one Zarr store.

A sweep runs one simulation per cell of (sweep axes..., seed[, member]): a *run*. Each run
writes its own region of one Zarr store and is marked done only after that write, so a
sweep killed at any moment resumes where it stopped, with nothing lost or duplicated and
results bit-identical to an uninterrupted run (every run's randomness comes from its seed
and member index alone). ``docs/sweeps.md`` is the user guide.

The package re-exports its parts, one job each: :mod:`~glomsim.sweep.spec` (the spec
language: :class:`SweepSpec`, :class:`Axis`, :func:`load_spec`),
:mod:`~glomsim.sweep.runs` (what the workers do: prepare, simulate and measure runs),
:mod:`~glomsim.sweep.execute` (the Dask driver, :func:`run`) and
:mod:`~glomsim.sweep.store` (the Zarr layout, :func:`open_sweep`).

Examples
--------
>>> import tempfile, os
>>> from glomsim.sweep import load_spec, run
>>> spec = load_spec({
...     "sweep": {"seeds": 2},
...     "base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
...     "axes": {"beta": {"path": "attention.beta", "values": [0.0, 2.0]}},
...     "scene": {"n_objects": 1, "parts_per_object": 1, "textures_per_part": 1},
... })
>>> ds = run(spec, os.path.join(tempfile.mkdtemp(), "s.zarr"), client="sync", progress=False)
>>> ds.island_count.sel(beta=2.0).dims
('seed', 'level')
>>> int((ds.status == 1).sum())
4
"""

from __future__ import annotations

from .._validate import one_line
from .execute import run
from .runs import run_batch, simulate_run, simulate_runs
from .spec import MODES, Axis, SpecError, SweepSpec, load_spec
from .store import open_sweep, summary_text

__all__ = [
    "Axis",
    "SweepSpec",
    "load_spec",
    "run",
    "open_sweep",
    "register_cli",
    "MODES",
    "SpecError",
    "summary_text",
    "simulate_run",
    "simulate_runs",
    "run_batch",
]


def _add_arguments(p) -> None:
    import argparse

    p.add_argument("spec", metavar="SWEEP.toml", help="sweep spec (.toml or .json)")
    p.add_argument(
        "-o", "--output", metavar="OUT.zarr", required=True, help="the Zarr store to fill"
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:port)"
    )
    p.add_argument(
        "--workers", metavar="N", type=int, help="processes of the local cluster (all cores)"
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip runs already in OUT (default); --no-resume starts over",
    )
    p.add_argument("--retry-failed", action="store_true", help="on resume, redo failed runs")
    p.add_argument("--sync", action="store_true", help="no Dask: run in this process")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def cmd_sweep(args) -> int:
    """Run ``glomsim sweep``; a bad spec raises ValueError (one line naming the field)."""
    spec = load_spec(args.spec)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers={args.workers} must be >= 1")
    if args.scheduler and args.sync:
        raise ValueError("--scheduler and --sync were both given; pick one")
    client = args.scheduler or ("sync" if args.sync else None)
    ds = run(
        spec,
        args.output,
        client=client,
        resume=args.resume,
        workers=args.workers,
        progress=not args.quiet,
        retry_failed=args.retry_failed,
    )
    print(summary_text(ds, args.output))
    return 0


def register_cli(subparsers):
    """Add ``glomsim sweep SPEC -o OUT.zarr [--scheduler ADDR] [--workers N] [--no-resume]``.

    The subcommand's ``func(args)`` returns 0 and prints a summary; a bad spec raises
    ValueError with a one-line message naming the field.

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="glomsim").add_subparsers()
    >>> register_cli(sub).prog
    'glomsim sweep'
    """
    p = subparsers.add_parser(
        "sweep", help="run a parameter sweep on Dask into one resumable Zarr store"
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_sweep)
    return p


def main(argv=None) -> int:
    """``python -m glomsim.sweep SPEC -o OUT.zarr ...`` (the same as ``glomsim sweep``)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m glomsim.sweep", description=__doc__.split("\n")[0])
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_sweep(args)
    except ValueError as exc:
        print(f"glomsim sweep: error: {one_line(exc)}", file=sys.stderr)
        return 2
