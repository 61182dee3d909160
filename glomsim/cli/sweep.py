"""``glomsim sweep`` and ``python -m glomsim.sweep``: argparse and printing only.

The work is :func:`glomsim.sweep.run`; the summary printed at the end is
:func:`glomsim.sweep.summary_text`, so scripts get the same lines.

Exit codes: 0 every run done; 1 the sweep ran but left runs pending (workers lost) or
failed, named on one line after the summary (the store keeps everything; run again to
resume, ``--retry-failed`` to redo failures); 2 refused before any work: a bad spec or
argument, a store another sweep is writing, a scheduler that does not answer.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .._validate import one_line
from ..sweep._errors import StoreLocked, SweepIncomplete, SweepRunsFailed, SweepWarning
from ..sweep.execute import run
from ..sweep.spec import load_spec
from ..sweep.store import summary_text

#: Exit code of a sweep that ran but left runs pending or failed.
INCOMPLETE = 1

__all__ = ["register", "main"]

DESCRIPTION = (
    "Parameter sweeps on Dask: a spec of axes over config fields, results in one Zarr store."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep command's arguments (shared by ``glomsim sweep`` and ``python -m``)."""
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
    """Run ``glomsim sweep``: 0 when every run is done, 1 when runs are left pending or
    failed (one line on stderr after the summary); a bad spec, a locked store or a
    scheduler that does not answer raise ValueError (exit code 2, one line)."""
    spec = load_spec(args.spec)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers={args.workers} must be >= 1")
    if args.scheduler and args.sync:
        raise ValueError("--scheduler and --sync were both given; pick one")
    client = args.scheduler or ("sync" if args.sync else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        try:
            ds = run(
                spec,
                args.output,
                client=client,
                resume=args.resume,
                workers=args.workers,
                progress=not args.quiet,
                retry_failed=args.retry_failed,
            )
        except StoreLocked as exc:
            raise ValueError(str(exc)) from None
        except SweepIncomplete as exc:
            _tell(caught)
            print(summary_text(exc.dataset, args.output))
            print(f"glomsim sweep: error: {one_line(exc)}", file=sys.stderr)
            return INCOMPLETE
    failed = [w for w in caught if issubclass(w.category, SweepRunsFailed)]
    _tell([w for w in caught if w not in failed])
    print(summary_text(ds, args.output))
    if "refine_rounds" in ds.attrs:
        print(refine_text(ds, args.output))
    if failed:
        print(f"glomsim sweep: error: {one_line(failed[0].message)}", file=sys.stderr)
        return INCOMPLETE
    return 0


def refine_text(ds, path) -> str:
    """One line on a refined sweep: rounds, crossings bracketed, the widest bracket."""
    import numpy as np

    from ..sweep.critical import critical

    c = critical(ds, resamples=1)
    found = np.isfinite(c["critical"].values)
    widths = (c["bracket_high"] - c["bracket_low"]).values[found]
    axis = c.attrs["axis"]
    widest = f"; the widest bracket {widths.max():.3g}" if found.any() else ""
    return (
        f"refined {axis!r} in {ds.attrs['refine_rounds']} rounds: {int(found.sum())} of "
        f"{found.size} crossings bracketed{widest}; glomsim.sweep.critical({str(path)!r}) "
        "gives them with intervals"
    )


def _tell(caught) -> None:
    """Our warnings on one line each; anyone else's as Python shows them."""
    for w in caught:
        if issubclass(w.category, SweepWarning):
            print(f"glomsim sweep: warning: {one_line(w.message)}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def register(subparsers):
    """Add ``glomsim sweep SPEC -o OUT.zarr [--scheduler ADDR] [--workers N] [--no-resume]``.

    The subcommand's ``func(args)`` prints a summary and returns 0, or 1 when runs are
    left pending or failed; a bad spec raises ValueError with a one-line message naming
    the field.

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="glomsim").add_subparsers()
    >>> register(sub).prog
    'glomsim sweep'
    """
    p = subparsers.add_parser(
        "sweep", help="run a parameter sweep on Dask into one resumable Zarr store"
    )
    add_arguments(p)
    p.set_defaults(func=cmd_sweep)
    return p


def main(argv=None) -> int:
    """``python -m glomsim.sweep SPEC -o OUT.zarr ...`` (the same as ``glomsim sweep``).

    Returns the exit code: 0 when every run is done, 1 when runs are left pending or
    failed, 2 for a bad spec or bad arguments, a store in use or a scheduler that does
    not answer (one line on stderr).
    """
    p = argparse.ArgumentParser(prog="python -m glomsim.sweep", description=DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_sweep(args)
    except ValueError as exc:
        print(f"glomsim sweep: error: {one_line(exc)}", file=sys.stderr)
        return 2
