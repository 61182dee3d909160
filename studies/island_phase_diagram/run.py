"""Phase diagram of island formation: attention sharpness (beta) x locality (radius).

For every (beta, radius) cell and scene seed, a 3-level GLOM with identity nets settles on
a synthetic scene; at the last step we measure, per level, the number of islands, the
largest island's share of the columns and the adjusted Rand index against the scene's
ground truth (textures, parts, objects).

Run: python studies/island_phase_diagram/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402

LEVEL_NAMES = ("level 0 (textures)", "level 1 (parts)", "level 2 (objects)")


def radius_label(radius) -> str:
    """'1.5', 'inf', or '1/2/4' for one radius per level."""
    if isinstance(radius, list):
        return "/".join(radius_label(r) for r in radius)
    return "inf" if math.isinf(radius) else f"{radius:g}"


def attention_for(study, beta, radius):
    """The [config.attention] table with beta and the radius (one, or one per level)."""
    base = dict(study.params["config"]["attention"], beta=float(beta))
    if isinstance(radius, list):
        return [dict(base, radius=float(r)) for r in radius]
    return dict(base, radius=float(radius))


def run_cell(study, beta, radius, seed):
    """Simulate one cell on one scene; return the run and its end-of-run measurements."""
    cfg = study.config(attention=attention_for(study, beta, radius))
    return _run(study, cfg, seed)


def _measure(study, cfg, seed):
    return _run(study, cfg, seed)[2]


def _run(study, cfg, seed):
    import analysis as an
    import glomsim as gs
    from glomsim.scenes import make_scene

    scene = make_scene(
        grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=seed, **study.params["scene"]
    )
    record_every = int(study.params["study"]["record_every"])
    ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene, record_every=record_every)
    isl = an.islands(ds, time=-1, **study.params["islands"])
    score = an.agreement(ds, islands=isl)
    conv = an.convergence(ds)
    tree = an.hierarchy(isl)
    out = dict(
        count=isl["count"].values[-1],
        largest_fraction=isl["largest_fraction"].values[-1],
        spread=isl["spread"].values[-1],
        baseline_count=isl["baseline_count"].values[-1],
        ari=score["ari"].values[-1],
        settled=conv["settled_step"].values >= 0,
        parse_score=float(tree["parse_score"].values[-1]),
    )
    return ds, isl, out


def sweep(study):
    import xarray as xr

    p = study.params["study"]
    betas, radii, seeds = p["beta"], p["radius"], p["scene_seeds"]
    levels = int(study.params["config"]["levels"])
    shape = (len(seeds), len(betas), len(radii), levels)
    fields = ("count", "largest_fraction", "spread", "baseline_count", "ari", "settled")
    data = {k: np.zeros(shape) for k in fields}
    parse = np.zeros(shape[:3])
    maps = {}
    map_radius = radius_label(p["map_radius"])
    for s, seed in enumerate(seeds):
        for b, beta in enumerate(betas):
            for r, radius in enumerate(radii):
                ds, isl, out = run_cell(study, beta, radius, seed)
                for k in fields:
                    data[k][s, b, r] = out[k]
                parse[s, b, r] = out["parse_score"]
                if s == 0 and beta in p["map_beta"] and radius_label(radius) == map_radius:
                    maps[float(beta)] = (isl["labels"].values[-1], ds)
    dims = ("seed", "beta", "radius", "level")
    result = xr.Dataset(
        {k: (dims, v) for k, v in data.items()} | {"parse_score": (dims[:3], parse)},
        coords={
            "seed": seeds,
            "beta": [float(b) for b in betas],
            "radius": [radius_label(r) for r in radii],
            "level": np.arange(levels),
        },
    )
    attrs = {
        "count": ("islands at the last step", "1"),
        "largest_fraction": ("largest island's share of the columns", "1"),
        "spread": ("RMS distance of embeddings to their island's mean", "1"),
        "baseline_count": ("islands of the shuffled baseline", "1"),
        "ari": ("adjusted Rand index of islands vs ground truth", "1"),
        "settled": ("level settled (analysis.convergence settled_step >= 0)", "1"),
        "parse_score": ("parse-tree score (analysis.hierarchy)", "1"),
    }
    for k, (name, units) in attrs.items():
        result[k].attrs.update(long_name=name, units=units)
    result.attrs.update(study="island_phase_diagram", config=study.config().to_json())
    return result, maps


def variants(study):
    """Cells outside the grid: one beta and one radius per level, given in [[variant]]."""
    rows = []
    for v in study.params.get("variant", []):
        per_seed = []
        for seed in study.params["study"]["scene_seeds"]:
            base = study.params["config"]["attention"]
            attention = [
                dict(base, beta=float(b), radius=float(r))
                for b, r in zip(v["beta"], v["radius"], strict=True)
            ]
            cfg = study.config(attention=attention)
            per_seed.append(_measure(study, cfg, seed))
        row = dict(beta="/".join(f"{b:g}" for b in v["beta"]), radius=radius_label(v["radius"]))
        for key in ("count", "ari"):
            mean = np.mean([m[key] for m in per_seed], axis=0)
            for lv, value in enumerate(mean):
                row[f"{'islands' if key == 'count' else 'ARI'} L{lv}"] = float(value)
        rows.append(row)
    return rows


def plot_phase(study, result):
    """One row per measure, one panel per level; each row shares one labelled colour bar."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    from analysis._heatmap import _annotate_cells

    mean = result.mean("seed")
    metrics = (
        ("count", "islands", "viridis", None),
        ("largest_fraction", "largest island share", "magma", (0, 1)),
        ("ari", "ARI vs ground truth", "RdYlGn", (-0.1, 1)),
    )
    levels = result.sizes["level"]
    fig = Figure(figsize=(3.6 * levels + 0.8, 2.9 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), levels, squeeze=False, sharey=True)
    xl = list(result.radius.values)
    yl = [f"{b:g}" for b in result.beta.values]
    for row, (name, title, cmap, lim) in enumerate(metrics):
        # one colour scale per measure, shared by its levels
        # counts span 1 to ~70 (level 0 against levels 1-2): a log scale keeps both legible
        vmin, vmax = lim if lim else (1, max(float(mean[name].max()), 2))
        norm = Normalize(vmin, vmax) if lim else LogNorm(vmin, vmax)
        for lv in range(levels):
            ax = axes[row, lv]
            z = mean[name].isel(level=lv).values
            im = ax.imshow(z, cmap=cmap, norm=norm, aspect="auto", origin="lower")
            # black on light cells, white on dark ones (analysis.plot.heatmaps' rule)
            _annotate_cells(ax, im, z, ".0f" if name == "count" else ".2f")
            for text in ax.texts:
                text.set_fontsize(7)
            ax.set_xticks(range(len(xl)), xl, fontsize=7, rotation=30)
            ax.set_yticks(range(len(yl)), yl, fontsize=8)
            ax.set_title(f"{title}, {LEVEL_NAMES[lv]}", fontsize=9)
            if lv == 0:
                ax.set_ylabel("beta")
            if row == len(metrics) - 1:
                ax.set_xlabel("radius (per level if a/b/c)")
        bar = fig.colorbar(im, ax=axes[row, :], shrink=0.9)
        bar.set_label(title + ("" if lim else " (log scale)"), fontsize=8)
        if not lim:
            ticks = [v for v in (1, 2, 5, 10, 20, 50, 100) if v <= vmax]
            bar.set_ticks(ticks, labels=[str(v) for v in ticks])
            bar.ax.minorticks_off()
        bar.ax.tick_params(labelsize=7)
    n = result.sizes["seed"]
    fig.suptitle(
        f"island_phase_diagram: end of run, mean over {n} scene seed{'s' * (n > 1)}",
        fontsize=10,
    )
    study.save_figure(fig, "phase_diagram.png")


def plot_maps(study, maps):
    """Ground truth and the islands of a few beta at one radius, per level."""
    from matplotlib.figure import Figure

    from analysis._maps import wrap_title

    if not maps:
        return
    betas = sorted(maps)
    _, ds = maps[betas[0]]
    grid = (int(ds.y.max()) + 1, int(ds.x.max()) + 1)
    levels = ds.sizes["level"]
    width = 1.9 * (len(betas) + 1)
    fig = Figure(figsize=(width, 2.0 * levels + 0.6), layout="constrained")
    axes = fig.subplots(levels, len(betas) + 1, squeeze=False)
    truth = ds["label"].transpose("level", "column").values
    for lv in range(levels):
        _common.truth_panel(axes[lv, 0], grid, truth[lv])
        runs = [(f"beta {b:g}", maps[b][0][lv]) for b in betas]
        _common.island_panels(axes[lv, 1:], grid, truth[lv], runs)
        axes[lv, 0].set_ylabel(LEVEL_NAMES[lv], fontsize=8)
    radius = radius_label(study.params["study"]["map_radius"])
    title = (
        f"island_phase_diagram: islands at the last step, radius {radius} (scene seed "
        f"{study.params['study']['scene_seeds'][0]}); ARI = agreement with the ground truth"
    )
    fig.suptitle(wrap_title(title, width, 9), fontsize=9)
    study.save_figure(fig, "island_maps.png")


def main():
    study = _common.setup(__file__, __doc__)
    result, maps = sweep(study)
    study.save_results(result, "phase_diagram.nc")
    plot_phase(study, result)
    plot_maps(study, maps)

    mean = result.mean("seed")
    rows = []
    for beta in mean.beta.values:
        for radius in mean.radius.values:
            cell = mean.sel(beta=beta, radius=radius)
            row = dict(beta=float(beta), radius=str(radius))
            for lv in range(result.sizes["level"]):
                row[f"islands L{lv}"] = float(cell["count"][lv])
            for lv in range(result.sizes["level"]):
                row[f"ARI L{lv}"] = float(cell["ari"][lv])
            row["largest L2"] = float(cell["largest_fraction"][-1])
            row["spread L1"] = float(cell["spread"][1])
            row["parse"] = float(cell["parse_score"])
            row["settled"] = float(cell["settled"].mean())
            rows.append(row)
    n = result.sizes["seed"]
    print(f"end-of-run means over {n} scene seed(s); 'settled' = share of (level, seed) settled")
    print(_common.table(rows, floatfmt=".3g"))
    extra = variants(study)
    if extra:
        print("\nvariants: one beta and one radius per level (means over the same seeds)")
        print(_common.table(extra, floatfmt=".3g"))
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
