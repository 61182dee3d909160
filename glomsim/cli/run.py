"""``glomsim run``: one simulation, saved, with a per-level summary printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._validate import one_line
from ._common import UsageError, load_config


def register(subparsers):
    """Add the ``run`` subcommand to an argparse ``subparsers`` object."""
    r = subparsers.add_parser("run", help="run one simulation and save it (Zarr or netCDF)")
    r.add_argument("config", nargs="?", help="config .toml/.json (default: the built-in run)")
    r.add_argument("-o", "--output", default="glomsim-out/run.zarr", help="output .zarr or .nc")
    r.add_argument("--steps", type=int, help="override the config's steps")
    r.add_argument("--weights", help="weights .npz (e.g. from glomsim train); default random")
    r.add_argument("--record-every", type=int, default=1, help="keep every k-th step")
    r.add_argument(
        "--summaries-only",
        action="store_true",
        help="keep the state at the first and last steps only, plus the RMS size and RMS "
        "change of every level at every step (variables rms and change on the step "
        "dimension): memory grows with steps x levels, not with the trajectory; "
        "not with --record-every",
    )
    r.add_argument(
        "--continue",
        dest="continue_run",
        metavar="RUN",
        help="continue the saved run RUN (.zarr or .nc, with its weights beside it or "
        "--weights) from its last step for --steps more steps (default: the config's); "
        "the output holds the new steps, its time going on from RUN's last",
    )
    r.add_argument("--no-scene", action="store_true", help="zero inputs instead of a scene")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    return r


def _config(args):
    """The config with ``--steps`` applied, after every option is checked."""
    cfg = load_config(args.config)
    if args.steps is not None:
        if args.steps < 0:
            raise UsageError(f"--steps={args.steps} must be >= 0")
        cfg = cfg.replace(steps=args.steps)
    if args.record_every < 1:
        raise UsageError(f"--record-every={args.record_every} must be >= 1")
    if args.summaries_only and args.record_every != 1:
        raise UsageError(
            f"--record-every={args.record_every} with --summaries-only: a summaries-only run "
            "keeps the first and last states and summarises every step; drop --record-every"
        )
    if cfg.seed < 0 and not (args.weights and args.no_scene):
        # the seed of the random weights and of the scene: numpy takes seeds >= 0 only
        where = "built-in config" if args.config is None else str(args.config)
        raise UsageError(f"{where}: seed={cfg.seed} is not allowed; allowed: an integer >= 0")
    return cfg


def partial_path(out: Path) -> Path:
    """Where ``glomsim run -o OUT`` saves the steps computed before a divergence:
    ``run.partial.zarr`` beside ``run.zarr`` (``run.partial.nc`` beside ``run.nc``)."""
    return out.with_name(out.stem + ".partial" + out.suffix)


def _output(args) -> Path:
    """The output path, checked (and its folder made) before any work; so is the path a
    divergence's partial result would go to."""
    from ..dataset import check_output

    try:
        out = check_output(args.output, overwrite=args.overwrite, field="--output")
        part = partial_path(out)
        if part.exists() and not args.overwrite:
            raise FileExistsError(
                f"--output={str(out)!r}: {str(part)!r} (the partial result of an earlier run "
                "that diverged) exists; remove it or pass --overwrite"
            )
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    return out


def _weights(args, cfg):
    from ..weights import load_weights, random_weights

    if not args.weights:
        return random_weights(cfg, cfg.seed)
    if not Path(args.weights).is_file():
        raise UsageError(f"--weights={args.weights}: no such file")
    try:
        w = load_weights(args.weights)
    except Exception as exc:  # numpy's, zipfile's, json's: not a weights file, whatever it is
        raise UsageError(
            f"--weights={args.weights}: not a glomsim weights file (.npz from glomsim train "
            f"or GlomWeights.save): {one_line(exc, 200)}"
        ) from exc
    try:
        w.check(cfg)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"--weights={args.weights}: {exc}") from exc
    return w


def _scene(args, cfg):
    """The built-in scene for the config's grid (None with --no-scene or positions)."""
    from ..scenes import make_scene

    if args.no_scene or cfg.grid is None:
        return None
    try:
        return make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=cfg.seed)
    except ValueError as exc:
        where = "built-in config" if args.config is None else str(args.config)
        raise UsageError(
            f"{where}: no scene fits grid={list(cfg.grid)} ({exc}); pass --no-scene to run "
            "with zero inputs"
        ) from exc


def _check_memory(args, cfg, weights):
    from .._memory import check_run_memory

    try:
        check_run_memory(cfg, cfg.steps, args.record_every, args.summaries_only, 1,
                         weights=weights)  # fmt: skip
    except MemoryError as exc:
        raise UsageError(str(exc)) from exc


def _keep(ds, out, weights, args, seconds) -> int:
    """Save a finished run with its weights, then print its summary (the result is kept
    before anything is printed, so a closed pipe loses nothing)."""
    from analysis import summarize

    from ..dataset import save

    save(ds, out, weights=weights, overwrite=args.overwrite)
    summary = summarize(ds)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, out, seconds)
    return 0


def _print_summary(summary, path, seconds):
    print(f"wrote {path} ({summary['steps']} steps in {seconds:.1f} s)")
    keys = [
        k
        for k in ("rms", "last_step_change", "islands", "ari_vs_truth")
        if k in summary["levels"][0]
    ]
    print("level  " + "  ".join(f"{k:>16}" for k in keys))
    for level, row in summary["levels"].items():
        cells = []
        for k in keys:
            v = row[k]
            cells.append(f"{v:>16d}" if isinstance(v, int) else f"{v:>16.4g}")
        print(f"{level:>5}  " + "  ".join(cells))


def _save_partial(exc, out, weights, overwrite) -> str:
    """Save a diverged run's steps beside ``out``; the one line that says what and where."""
    from ..dataset import save

    part = partial_path(out)
    partial = exc.partial
    last = int(partial.time.values[-1])
    if "rms" in partial:
        what = f"the summaries of steps 0-{last} and the state at step {last}"
    else:
        what = f"the {partial.sizes['time']} recorded steps up to step {last}"
    head = f"the state became non-finite at step {exc.step}, level {exc.level}"
    hint = "try smaller mixing weights, normalize='l2' or a smaller beta"
    try:
        save(partial, part, weights=weights, overwrite=overwrite)
    except (OSError, ValueError) as err:
        return f"{head}; saving {what} to {part} failed ({one_line(err, 200)}); {hint}"
    return f"{head}; {what} are saved in {part} ({hint})"


def _continued(args):
    """(config, weights, the saved run) that ``--continue RUN`` continues."""
    from ._common import open_run

    if args.config is not None:
        raise UsageError(f"--continue with a config ({args.config}): a continued run keeps "
                         "the config of the run it continues; drop the config")  # fmt: skip
    from ..config import GlomConfig

    ds = open_run(args.continue_run)
    try:
        cfg = GlomConfig.from_dataset(ds)
    except ValueError as exc:
        raise UsageError(f"--continue={args.continue_run}: {exc}") from exc
    if args.steps is not None:
        if args.steps < 0:
            raise UsageError(f"--steps={args.steps} must be >= 0")
        cfg = cfg.replace(steps=args.steps)
    if args.weights:
        w = _weights(args, cfg)
    else:
        from ..dataset import load_run

        w = load_run(args.continue_run)[1]
        if w is None:
            raise UsageError(f"--continue={args.continue_run}: no weights saved beside it "
                             f"({args.continue_run}.weights.npz); pass --weights")  # fmt: skip
    return cfg, w, ds


def _continue(args, out):
    """``glomsim run --continue RUN``: the steps after RUN's last, saved to ``out``."""
    from ..simulation import SimulationDiverged, simulate

    cfg, w, run = _continued(args)
    if args.record_every < 1:
        raise UsageError(f"--record-every={args.record_every} must be >= 1")
    t0 = time.perf_counter()
    try:
        ds = simulate(cfg, w, init=run, steps=cfg.steps, record_every=args.record_every,
                      progress=not args.quiet, summaries_only=args.summaries_only)  # fmt: skip
    except SimulationDiverged as exc:
        raise UsageError(_save_partial(exc, out, w, args.overwrite)) from None
    except ValueError as exc:
        if not str(exc).startswith(("init:", "record_every", "summaries_only")):
            raise
        raise UsageError(f"--continue={args.continue_run}: {exc}") from exc
    return _keep(ds, out, w, args, time.perf_counter() - t0)


def cmd_run(args):
    from ..simulation import SimulationDiverged, simulate

    if args.continue_run:
        return _continue(args, _output(args))
    cfg = _config(args)
    out = _output(args)
    if args.weights:  # a file that exists: its size is known (identity weights: no nets)
        w = _weights(args, cfg)
        _check_memory(args, cfg, w)
    else:  # before making any weights or scene
        _check_memory(args, cfg, None)
        w = _weights(args, cfg)
    scene = _scene(args, cfg)
    t0 = time.perf_counter()
    try:
        ds = simulate(
            cfg,
            w,
            inputs=scene,
            record_every=args.record_every,
            progress=not args.quiet,
            summaries_only=args.summaries_only,
        )
    except SimulationDiverged as exc:
        raise UsageError(_save_partial(exc, out, w, args.overwrite)) from None
    return _keep(ds, out, w, args, time.perf_counter() - t0)
