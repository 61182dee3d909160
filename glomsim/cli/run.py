"""``glomsim run``: one simulation, saved, with a per-level summary printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
    return cfg


def _output(args) -> Path:
    out = Path(args.output)
    if out.suffix not in (".zarr", ".nc"):
        raise UsageError(f"--output={str(out)!r}: the suffix must be .zarr or .nc")
    if out.exists() and not args.overwrite:
        raise UsageError(f"--output={str(out)!r} exists; pass --overwrite to replace it")
    return out


def _weights(args, cfg):
    from ..weights import load_weights, random_weights

    if not args.weights:
        return random_weights(cfg, cfg.seed)
    try:
        w = load_weights(args.weights)
        w.check(cfg)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"--weights={args.weights}: {exc}") from exc
    return w


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
    from ..dataset import save
    from ..simulation import simulate

    cfg, w, run = _continued(args)
    if args.record_every < 1:
        raise UsageError(f"--record-every={args.record_every} must be >= 1")
    t0 = time.perf_counter()
    try:
        ds = simulate(cfg, w, init=run, steps=cfg.steps, record_every=args.record_every,
                      progress=not args.quiet, summaries_only=args.summaries_only)  # fmt: skip
    except ValueError as exc:
        if not str(exc).startswith(("init:", "record_every", "summaries_only")):
            raise
        raise UsageError(f"--continue={args.continue_run}: {exc}") from exc
    seconds = time.perf_counter() - t0
    save(ds, out, weights=w)
    from analysis import summarize

    summary = summarize(ds)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, out, seconds)
    return 0


def cmd_run(args):
    from ..dataset import save
    from ..scenes import make_scene
    from ..simulation import simulate

    if args.continue_run:
        return _continue(args, _output(args))
    cfg = _config(args)
    out = _output(args)
    w = _weights(args, cfg)
    scene = None
    if not args.no_scene and cfg.grid is not None:
        scene = make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=cfg.seed)
    t0 = time.perf_counter()
    ds = simulate(
        cfg,
        w,
        inputs=scene,
        record_every=args.record_every,
        progress=not args.quiet,
        summaries_only=args.summaries_only,
    )
    seconds = time.perf_counter() - t0
    save(ds, out, weights=w)
    from analysis import summarize

    summary = summarize(ds)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, out, seconds)
    return 0
