"""``glomsim demo``: the built-in study on scenes, run on the embedded Dask cluster.

Question: how do the same-level attention weight and the attention sharpness shape
island formation, and do the islands match the scene's part-whole ground truth?
It sweeps ``mix.attention`` x ``attention.beta`` over several scenes (seeds), writes the
sweep store, heatmaps of agreement (ARI) and island counts per level, island maps and
convergence curves of one run with and one without attention, and a short report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

DEMO_SPEC = {
    "sweep": {"name": "demo", "mode": "grid", "seeds": 3},
    "aliases": {"attention_weight": "mix.attention", "beta": "attention.beta"},
    "axes": {"attention_weight": [0.0, 0.5, 1.0, 2.0, 4.0], "beta": [1.0, 4.0, 16.0]},
    "base": {
        "levels": 3,
        "dim": 24,
        "grid": [16, 16],
        "steps": 40,
        "normalize": "l2",
        "dtype": "float32",
        "mix": {"bottom_up": 1.0, "top_down": 0.5, "previous": 1.0, "attention": 1.0},
        "attention": [
            {"kernel": "cosine", "radius": 1.5},
            {"kernel": "cosine", "radius": 2.5},
            {"kernel": "cosine", "radius": 4.0},
        ],
    },
    "weights": {"kind": "identity"},
    "init": {"start": "tokens", "noise": 0.0},
    "scene": {"n_objects": 3, "parts_per_object": 2, "textures_per_part": 2, "noise": 0.3},
    "keep": {"islands": {"threshold": 0.95}},
}
QUICK_AXES = {"attention_weight": [0.0, 2.0], "beta": [4.0]}
#: Attention sharpness of the run shown in detail (attention weight 2 against 0).
DETAIL_BETA = 4.0


def _heatmaps(ds, var, title, path):
    from matplotlib.figure import Figure

    mean = ds[var].mean("seed")
    levels = ds.sizes["level"]
    fig = Figure(figsize=(3.2 * levels, 3.0))
    axes = np.atleast_1d(fig.subplots(1, levels))
    for level, ax in enumerate(axes):
        grid = mean.sel(level=level).transpose("beta", "attention_weight").values
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(ds.sizes["attention_weight"]))
        ax.set_xticklabels([f"{v:g}" for v in ds.attention_weight.values])
        ax.set_yticks(range(ds.sizes["beta"]))
        ax.set_yticklabels([f"{v:g}" for v in ds.beta.values])
        ax.set_xlabel("attention weight")
        ax.set_ylabel("beta")
        ax.set_title(f"level {level}")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}" if var == "ari" else f"{v:.0f}", ha="center",
                    va="center", color="w", fontsize=7)  # fmt: skip
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=85)


def run_demo(out="glomsim-demo", *, workers=None, quick=False, progress=True, client=None):
    """Run the demo study; returns the path of its report.

    Examples
    --------
    >>> # glomsim demo -o demo-out       (from the command line)
    >>> # run_demo("demo-out", quick=True)
    """
    import matplotlib

    matplotlib.use("Agg")
    import analysis as an
    import analysis.plot as ap

    from ..runs import warmup
    from ..scenes import make_scene
    from ..simulation import simulate
    from ..sweep import load_spec, run
    from ..weights import identity_weights

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec_dict = dict(DEMO_SPEC)
    if quick:
        spec_dict = {**spec_dict, "axes": QUICK_AXES, "sweep": {**spec_dict["sweep"], "seeds": 2}}
    spec = load_spec(spec_dict)
    t0 = time.perf_counter()
    warmup()  # compile once here, so the workers load the kernels from the cache
    ds = run(spec, str(out / "sweep.zarr"), client=client, workers=workers, resume=True,
             progress=progress).load()  # fmt: skip
    t_sweep = time.perf_counter() - t0

    figures = []
    if ds.sizes.get("beta", 1) > 1 or ds.sizes.get("attention_weight", 1) > 1:
        _heatmaps(ds, "ari", "agreement with ground truth (ARI), mean over scenes",
                  out / "ari.png")  # fmt: skip
        _heatmaps(ds, "island_count", "islands at the end, mean over scenes",
                  out / "islands.png")  # fmt: skip
        figures += ["ari.png", "islands.png"]

    # one scene, with and without same-level attention, in detail
    from dataclasses import replace

    from ..config import Mix

    base = spec.settings(0)["config"]
    sharp = tuple(replace(base.attention_at(lv), beta=DETAIL_BETA) for lv in range(base.levels))
    strong = base.replace(
        attention=sharp, mix=Mix(bottom_up=1.0, top_down=0.5, previous=1.0, attention=2.0)
    )
    none = strong.replace(mix=Mix(bottom_up=1.0, top_down=0.5, previous=1.0, attention=0.0))
    scene = make_scene(grid=base.grid, dim=base.dim, levels=base.levels, seed=0,
                       **DEMO_SPEC["scene"])  # fmt: skip
    init = np.repeat(np.asarray(scene.tokens)[None], base.levels, axis=0)
    detail = {}
    for name, cfg in (("with attention", strong), ("without attention", none)):
        run_ds = simulate(cfg, identity_weights(cfg), inputs=scene, init=init)
        isl = an.islands(run_ds, threshold=0.95)
        agree = an.agreement(run_ds, islands=isl)
        detail[name] = (run_ds, isl, agree)
    run_ds, isl, _ = detail["with attention"]
    n = run_ds.sizes["time"]
    fig = ap.island_maps(isl, times=[0, n // 4, n - 1])
    fig.savefig(out / "island_maps.png", dpi=80)
    fig = ap.convergence_curves(an.convergence(run_ds))
    fig.savefig(out / "convergence.png", dpi=80)
    figures += ["island_maps.png", "convergence.png"]

    lines = [
        "# glomsim demo: attention weight and sharpness against island formation",
        "",
        f"Sweep: {' x '.join(f'{d} {ds.sizes[d]}' for d in spec.dims)} = "
        f"{int(np.prod([ds.sizes[d] for d in spec.dims]))} runs on 16x16 scenes with ground "
        f"truth (3 levels: texture, part, object), identity nets, cosine attention with "
        f"radius growing by level, l2 normalisation; {t_sweep:.0f} s including start-up.",
        f"Runs done: {int((ds.status == 1).sum())}, failed: {int((ds.status == 2).sum())}.",
        "",
        "## Agreement with ground truth (ARI at the last step, mean over scenes)",
        "",
        "| attention weight | beta | "
        + " | ".join(f"level {lv}" for lv in range(ds.sizes["level"]))
        + " |",
        "|---|---|" + "---|" * ds.sizes["level"],
    ]
    mean_ari = ds["ari"].mean("seed")
    for aw in ds.attention_weight.values:
        for b in ds.beta.values:
            vals = mean_ari.sel(attention_weight=aw, beta=b).values
            lines.append(f"| {aw:g} | {b:g} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    lines += ["", f"## One scene in detail (seed 0, beta {DETAIL_BETA:g}, attention weight 2 "
              "against 0)", ""]  # fmt: skip
    for name, (_, isl, agree) in detail.items():
        counts = isl["count"].isel(time=-1).values
        base_counts = isl["baseline_count"].isel(time=-1).values
        ari = agree["ari"].isel(time=-1).values
        lines.append(
            f"- {name}: islands per level {counts.tolist()} (shuffled baseline "
            f"{base_counts.tolist()}), ARI {np.round(ari, 3).tolist()}"
        )
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def register(subparsers):
    """Add the ``demo`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser("demo", help="a small built-in study on scenes: figures and a report")
    p.add_argument("-o", "--output", default="glomsim-demo", help="output folder")
    p.add_argument("--workers", type=int, help="local Dask workers (default: cores)")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds)")
    p.add_argument("--scheduler", help="an existing Dask scheduler address to use instead")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args):
    t0 = time.perf_counter()
    report = run_demo(args.output, workers=args.workers, quick=args.quick,
                      progress=not args.quiet, client=args.scheduler)  # fmt: skip
    print(report.read_text())
    print(f"wrote {report} and figures in {report.parent} ({time.perf_counter() - t0:.0f} s)")
    return 0
