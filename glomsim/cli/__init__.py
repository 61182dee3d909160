"""The ``glomsim`` command.

Bad input gets a one-line error naming the field and exit code 2, before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: The built-in run of ``glomsim run`` with no config: a scene with ground truth on a
#: 16x16 grid, 5 levels, local attention that widens with level (the paper's suggestion).
DEFAULT_RUN = """\
levels = 5
dim = 32
grid = [16, 16]
steps = 60
top_down_delay = 1
normalize = "l2"
dtype = "float32"
seed = 0

[mix]
bottom_up = 1.0
top_down = 0.5
previous = 1.0
attention = 2.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 1.5

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 2.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 3.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 4.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = inf
"""


class UsageError(Exception):
    """A user error: printed on one line, exit code 2."""


def _load_config(path):
    import tomllib

    from ..config import GlomConfig

    try:
        if path is None:
            return GlomConfig.from_dict(tomllib.loads(DEFAULT_RUN))
        return GlomConfig.from_file(path)
    except (ValueError, TypeError, FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        where = "built-in config" if path is None else str(path)
        raise UsageError(f"{where}: {exc}") from exc


def _scene_for(cfg, seed):
    try:
        from ..scenes import make_scene
    except ImportError:
        return None
    if cfg.grid is None:
        return None
    return make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=seed)


def summarize(ds) -> dict:
    """Per-level figures of a run for the command line: final RMS size, last-step change,
    and (when scene labels are present) islands and agreement with the ground truth."""
    import numpy as np

    e = ds["embedding"]
    last = e.isel(time=-1).values.astype(np.float64)
    out = {
        "steps": int(ds.time.values[-1]),
        "levels": {},
    }
    change = None
    if "change" in ds and ds.sizes["step"] > 1:
        # a summaries_only run recorded the change of every step
        change = ds["change"].isel(step=-1).values
    elif ds.sizes["time"] > 1:
        prev = e.isel(time=-2).values.astype(np.float64)
        gap = int(ds.time.values[-1] - ds.time.values[-2])
        change = np.sqrt(((last - prev) ** 2).mean(axis=(1, 2))) / gap
    counts = ari = None
    try:
        import analysis as an

        isl = an.islands(ds.isel(time=[-1]), threshold=0.99)
        counts = isl["count"].isel(time=-1).values
        if "label" in ds:
            ari = an.agreement(ds.isel(time=[-1]), islands=isl)["ari"].isel(time=-1).values
    except ImportError:
        pass
    for level in range(last.shape[0]):
        row = {"rms": float(np.sqrt((last[level] ** 2).mean()))}
        if change is not None:
            row["last_step_change"] = float(change[level])
        if counts is not None:
            row["islands"] = int(counts[level])
        if ari is not None:
            row["ari_vs_truth"] = round(float(ari[level]), 4)
        out["levels"][level] = row
    return out


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


def cmd_run(args):
    from ..dataset import save
    from ..simulation import simulate
    from ..weights import random_weights

    cfg = _load_config(args.config)
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
    out = Path(args.output)
    if out.suffix not in (".zarr", ".nc"):
        raise UsageError(f"--output={str(out)!r}: the suffix must be .zarr or .nc")
    if out.exists() and not args.overwrite:
        raise UsageError(f"--output={str(out)!r} exists; pass --overwrite to replace it")
    if args.weights:
        from ..weights import load_weights

        try:
            w = load_weights(args.weights)
            w.check(cfg)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--weights={args.weights}: {exc}") from exc
    else:
        w = random_weights(cfg, cfg.seed)
    scene = None if args.no_scene else _scene_for(cfg, cfg.seed)
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
    summary = summarize(ds)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, out, seconds)
    return 0


def _open_run(path):
    from ..dataset import open_dataset

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such dataset")
    try:
        return open_dataset(p)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path}: cannot be opened as a glomsim dataset ({exc})") from exc


def analyze_run(ds, threshold=0.99):
    """Islands, hierarchy, agreement (with labels) and convergence of one run, as one Dataset.

    For a ``summaries_only`` run the island measures exist at its two recorded steps (the
    first and the last) and the residual at every step: they are joined on ``time``, NaN
    where a measure has no value.
    """
    import xarray as xr

    import analysis as an

    isl = an.islands(ds, threshold=threshold)
    parts = [
        isl[["count", "largest_fraction", "baseline_count", "baseline_largest_fraction"]],
        an.hierarchy(isl)[["parse_score"]],
        an.convergence(ds)[["residual", "settled_step", "rate"]],
    ]
    if "label" in ds:
        parts.append(an.agreement(ds, islands=isl)[["ari", "purity"]])
    out = xr.merge(parts, compat="override", join="outer", combine_attrs="drop")
    out.attrs.update(source_config=ds.attrs.get("glomsim_config", ""), island_threshold=threshold)
    return out


def cmd_analyze(args):
    ds = _open_run(args.store)
    if "member" in ds.dims or "embedding" not in ds:
        raise UsageError(
            f"{args.store}: analyze takes a single run (glomsim run); sweeps carry their summaries"
        )
    res = analyze_run(ds, threshold=args.threshold)
    last = res.isel(time=-1)
    print(f"{args.store}: {int(ds.time[-1])} steps, {ds.sizes['level']} levels, "
          f"{ds.sizes['column']} columns")  # fmt: skip
    cols = ["count", "baseline_count", "largest_fraction", "settled_step", "rate"]
    if "ari" in res:
        cols.append("ari")
    print("level  " + "  ".join(f"{c:>16}" for c in cols))
    for level in range(ds.sizes["level"]):
        cells = []
        for c in cols:
            v = res[c].sel(level=level) if "time" not in res[c].dims else last[c].sel(level=level)
            cells.append(f"{float(v):>16.4g}")
        print(f"{level:>5}  " + "  ".join(cells))
    print(f"parse-tree score at the end: {float(last['parse_score']):.3f}")
    if args.output:
        out = Path(args.output)
        res.to_netcdf(out, engine="h5netcdf") if out.suffix == ".nc" else res.to_zarr(
            out, mode="w", consolidated=False
        )
        print(f"wrote {out}")
    return 0


def cmd_plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import analysis as an
    import analysis.plot as ap

    ds = _open_run(args.store)
    if "member" in ds.dims or "embedding" not in ds:
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


def cmd_warmup(args):
    from ..runs import warmup

    seconds = warmup(verbose=not args.quiet)
    from .._kernels.jit import CACHE

    print(f"compiled all kernels in {seconds:.1f} s (numba cache {'on' if CACHE else 'off'})")
    return 0


def cmd_info(args):
    import platform

    import numba
    import numpy as np

    from .. import __version__
    from .._kernels.jit import CACHE

    info = {
        "glomsim": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "numba_cache": CACHE,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        pass
    for mod in ("xarray", "zarr", "dask", "scipy", "torch", "glom_pytorch"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "installed")
        except ImportError:
            info[mod] = None
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>22}: {v}")
    return 0


def _bench_script() -> Path:
    """``benchmarks/bench.py`` of the source checkout this package is installed from."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def _is_checkout(script: Path) -> bool:
    """The script sits in glomsim's own source tree (not in site-packages beside some
    other distribution's ``benchmarks`` folder)."""
    project = script.parents[1] / "pyproject.toml"
    try:
        return script.is_file() and 'name = "glomsim"' in project.read_text()
    except OSError:
        return False


def cmd_bench(args):
    import subprocess

    script = _bench_script()
    forwarded = list(args.args)
    if forwarded[:1] == ["--"]:  # glomsim bench -- --quick: the separator is not an option
        forwarded = forwarded[1:]
    if not _is_checkout(script):
        raise UsageError(
            f"the benchmark script is not at {script}: glomsim bench runs benchmarks/bench.py "
            "of a source checkout (git clone the repository, then pip install -e .)"
        )
    # a new process: the benchmark imports torch before glomsim, so that torch's OpenMP
    # runtime keeps its own defaults (this process has imported glomsim already)
    return subprocess.run([sys.executable, str(script), *forwarded]).returncode


def cmd_default_config(args):
    print(DEFAULT_RUN, end="")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="glomsim",
        description="Simulate and analyse GLOM's part-whole consensus dynamics.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run one simulation and save it (Zarr or netCDF)")
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
    r.add_argument("--no-scene", action="store_true", help="zero inputs instead of a scene")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("analyze", help="islands, hierarchy, agreement and convergence of a run")
    a.add_argument("store", help="a run written by glomsim run (.zarr or .nc)")
    a.add_argument("--threshold", type=float, default=0.99, help="island cosine threshold")
    a.add_argument("-o", "--output", help="also write the measurements (.nc or .zarr)")
    a.set_defaults(func=cmd_analyze)

    pl = sub.add_parser("plot", help="island maps, convergence curves, a 2-D projection")
    pl.add_argument("store", help="a run written by glomsim run (.zarr or .nc)")
    pl.add_argument("-o", "--output", default="glomsim-out/figures", help="folder for PNGs")
    pl.add_argument("--threshold", type=float, default=0.99, help="island cosine threshold")
    pl.set_defaults(func=cmd_plot)

    w = sub.add_parser("warmup", help="compile every numba kernel once (into the cache)")
    w.add_argument("-q", "--quiet", action="store_true")
    w.set_defaults(func=cmd_warmup)

    i = sub.add_parser("info", help="versions, threads and cache")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser(
        "bench",
        help="glomsim against glom-pytorch and the reference (benchmarks/bench.py of a source "
        "checkout; every option goes to it, e.g. glomsim bench --quick, glomsim bench --help)",
        prefix_chars="+",  # so that --quick, --help, ... reach the script
    )
    b.add_argument("args", nargs=argparse.REMAINDER, help="options of benchmarks/bench.py")
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("default-config", help="print the built-in run's config (TOML)")
    c.set_defaults(func=cmd_default_config)

    from ..demo import register_cli as register_demo
    from ..sweep import register_cli as register_sweep
    from ..train import register_cli as register_train

    register_demo(sub)
    register_train(sub)
    sub.choices["train"].set_defaults(usage_errors=(ValueError,))

    register_sweep(sub)
    # a bad sweep spec is a ValueError naming the field: a usage error, exit code 2
    sub.choices["sweep"].set_defaults(usage_errors=(ValueError,))
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    usage_errors = (UsageError,) + tuple(getattr(args, "usage_errors", ()))
    try:
        return args.func(args)
    except usage_errors as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"glomsim {args.command}: error: {msg}", file=sys.stderr)
        return 2
