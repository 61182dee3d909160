"""``glomsim demo``: the built-in study on scenes, run on the embedded Dask cluster.

Question: how do the same-level attention weight and the attention sharpness shape
island formation, and do the islands match the scene's part-whole ground truth?
It sweeps ``mix.attention`` x ``attention.beta`` over several scenes (seeds), writes the
sweep store, heatmaps of agreement (ARI) and island counts per level (one shared colour
scale each), island maps beside the ground truth of one run with and one without
attention, the convergence curves and an animation of the islands forming, and a short
report in which every figure has a caption.
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


def _captions(spec, ds, truth_counts, n_steps, figures) -> dict[str, str]:
    """What each figure of the report shows and how to read it."""
    from ..scenes import LEVEL_NAMES

    seeds = ds.sizes.get("seed", 1)
    levels = ", ".join(f"{lv} {n}" for lv, n in enumerate(LEVEL_NAMES[: ds.sizes["level"]]))
    truth = ", ".join(f"{c} {n}s" for c, n in zip(truth_counts, LEVEL_NAMES, strict=False))
    axes = (
        f"over the attention weight (x axis) and the attention sharpness beta (y axis), "
        f"one panel per level ({levels}), mean over {seeds} scenes"
    )
    detail = (
        f"One scene (seed 0, beta {DETAIL_BETA:g}), one row per level ({levels}): the "
        "ground truth on the left, then the islands at three steps. Each colour is one "
        "island; islands that touch never share a colour, the background island is grey "
        "and an island that matches a true label has that label's colour, so a row that "
        "looks like its ground-truth panel is a correct parse. Panel titles give the "
        "island count and the agreement (ARI) with the truth."
    )
    return {
        "ari.png": (
            "Agreement of the islands with the scene's ground truth at the last step "
            "(adjusted Rand index, ARI: 1 = the islands are exactly the true parts, "
            f"about 0 = no better than chance), {axes}. One colour bar serves all "
            "panels, so a colour means the same ARI on every panel; each cell gives "
            "its value."
        ),
        "islands.png": (
            f"Number of islands at the last step, {axes}; one colour bar for all panels, "
            "on a log scale. "
            f"The scene has {truth} (background included): a cell near that count "
            "for its level has as many islands as the truth has labels."
        ),
        "island_maps.png": f"{detail} With same-level attention (weight 2).",
        "island_maps_no_attention.png": (
            f"{detail} Without same-level attention (weight 0): the contrast to the "
            "figure above shows what attention does."
        ),
        "convergence.png": (
            f"How fast the run with attention settles: the RMS change of the "
            f"embeddings per step on a log scale, one line per level, over {n_steps} "
            "steps. A dotted vertical line in a level's colour marks its settling step, "
            "after which the change stays below the tolerance (1e-4 of the level's RMS "
            "size for float32); a straight line means geometric convergence at the "
            "rate in the legend."
        ),
        "islands.gif": (
            "The run with attention as an animation, one frame every other step: per level the "
            "ground truth and the islands, coloured as in the island maps (an island "
            "keeps its colour while it lasts); the title gives the step, each panel the "
            "island count and the ARI."
        ),
    }


def _detail_runs(spec):
    """One scene (seed 0) run with and without same-level attention, with its islands
    and their agreement with the truth: {name: (run, islands, agreement)}."""
    from dataclasses import replace

    import analysis as an

    from ..config import Mix
    from ..scenes import make_scene
    from ..simulation import simulate
    from ..weights import identity_weights

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
        detail[name] = (run_ds, isl, an.agreement(run_ds, islands=isl))
    truth_counts = [len(np.unique(row)) for row in np.asarray(scene.labels)]
    return detail, truth_counts


def _write_figures(ds, detail, out: Path) -> list[str]:
    """The report's figures, written into ``out``; returns their file names."""
    import analysis as an
    import analysis.plot as ap

    from ..scenes import LEVEL_NAMES

    figures = []
    if ds.sizes.get("beta", 1) > 1 or ds.sizes.get("attention_weight", 1) > 1:
        titles = [f"level {lv} ({LEVEL_NAMES[min(lv, 3)]})" for lv in range(ds.sizes["level"])]
        ds = ds.copy()  # the axes named in the paper's words, with the config field
        ds["attention_weight"].attrs["long_name"] = "attention weight (mix.attention)"
        ds["beta"].attrs["long_name"] = "sharpness beta (attention.beta)"
        low = min(0.0, float(ds["ari"].mean("seed").min()))
        ap.heatmaps(ds, "ari", "attention_weight", "beta", titles=titles, name="demo sweep",
                    vmin=low, vmax=1.0).savefig(out / "ari.png", dpi=85)  # fmt: skip
        ap.heatmaps(ds, "island_count", "attention_weight", "beta", titles=titles,
                    name="demo sweep", fmt=".1f", log=True).savefig(out / "islands.png",
                                                                    dpi=85)  # fmt: skip
        figures += ["ari.png", "islands.png"]
    for name, file in (("with attention", "island_maps.png"),
                       ("without attention", "island_maps_no_attention.png")):  # fmt: skip
        run_ds, isl, _ = detail[name]
        n = run_ds.sizes["time"]
        fig = ap.island_maps(isl, times=[0, n // 4, n - 1], name=f"scene 0, {name}")
        fig.savefig(out / file, dpi=80)
        figures.append(file)
    run_ds, isl, _ = detail["with attention"]
    ap.convergence_curves(an.convergence(run_ds), name="scene 0, with attention").savefig(
        out / "convergence.png", dpi=80
    )
    n = isl.sizes["time"]
    # every other step (and the last): half the frames, ~2.5 s less of the demo's run
    every_other = sorted(set(range(0, n, 2)) | {n - 1})
    ap.animate(isl, out / "islands.gif", times=every_other, fps=4, dpi=72,
               name="scene 0, with attention")  # fmt: skip
    return figures + ["convergence.png", "islands.gif"]


def _report(spec, ds, detail, truth_counts, figures, t_sweep) -> list[str]:
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
    lines.append(f"- the scene's true labels per level: {truth_counts}")
    n_steps = int(detail["with attention"][0]["time"].values[-1])
    captions = _captions(spec, ds, truth_counts, n_steps, figures)
    lines += ["", "## Figures", ""]
    for k, file in enumerate(figures, 1):
        lines += [f"![{file}]({file})", "", f"*Figure {k} ({file}).* {captions[file]}", ""]
    return lines


def run_demo(out="glomsim-demo", *, workers=None, quick=False, progress=True, client=None):
    """Run the demo study; returns the path of its report.

    Examples
    --------
    >>> # glomsim demo -o demo-out       (from the command line)
    >>> # run_demo("demo-out", quick=True)
    """
    import matplotlib

    matplotlib.use("Agg")

    from ..sweep import load_spec, run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec_dict = dict(DEMO_SPEC)
    if quick:
        spec_dict = {**spec_dict, "axes": QUICK_AXES, "sweep": {**spec_dict["sweep"], "seeds": 2}}
    spec = load_spec(spec_dict)
    t0 = time.perf_counter()
    # the sweep compiles what its runs need once, before its workers start and before its
    # progress bar (which then does not count compiling); the workers load from the cache
    ds = run(spec, str(out / "sweep.zarr"), client=client, workers=workers, resume=True,
             progress=progress).load()  # fmt: skip
    t_sweep = time.perf_counter() - t0
    detail, truth_counts = _detail_runs(spec)
    figures = _write_figures(ds, detail, out)
    report = out / "report.md"
    lines = _report(spec, ds, detail, truth_counts, figures, t_sweep)
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
