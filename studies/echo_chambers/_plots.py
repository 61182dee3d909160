"""Figures of the echo-chambers study: means over seeds with Student t intervals."""

from __future__ import annotations

import _common
import numpy as np
from _measure import PERTURBATIONS, STARTS, t_interval

TITLES = {
    "ari": "ARI",
    "purity": "purity",
    "inverse_purity": "inverse purity",
    "leak": "boundary leak",
    "leak_bg": "leak incl. outlines",
    "contrast": "cosine contrast",
}
#: y range per score (intervals of few seeds may reach beyond what the score can take)
YLIM = {"ari": (-0.1, 1.05), "purity": (-0.02, 1.05), "inverse_purity": (-0.02, 1.05),
        "leak": (-0.05, 1.05), "leak_bg": (-0.05, 1.05), "contrast": (-0.05, 1.05)}  # fmt: skip
LEVEL_NAMES = ("level 0 vs textures", "level 1 vs parts", "level 2 vs objects")


def _stats(values, conf):
    """[mean, low, high] of ``values`` over axis 0 (the seeds), each of the other axes' shape."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1)
    out = np.array([t_interval(flat[:, j], conf) for j in range(flat.shape[1])])
    return [out[:, k].reshape(values.shape[1:]) for k in range(3)]


def _band(ax, x, stats, **kw):
    mean, lo, hi = stats
    line = ax.plot(x, mean, **kw)[0]
    ax.fill_between(x, np.nan_to_num(lo, nan=mean), np.nan_to_num(hi, nan=mean),
                    color=line.get_color(), alpha=0.18, lw=0)  # fmt: skip
    return line


def plot_sweep(study, ds, level, metrics, name, conf):
    """Rows: scores; columns: beta; x: input noise; one line (and band) per weight."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    betas, weights = ds.beta.values, ds.attention.values
    noise = ds.noise.values
    fig = Figure(figsize=(1.9 * len(betas) + 1.1, 1.45 * len(metrics) + 0.6), layout="constrained")
    axes = fig.subplots(len(metrics), len(betas), sharex=True, sharey="row", squeeze=False)
    cmap = colormaps["viridis"]
    for r, metric in enumerate(metrics):
        for c, beta in enumerate(betas):
            ax = axes[r, c]
            for a, weight in enumerate(weights):
                vals = ds[metric].sel(beta=beta, attention=weight, level=level).values
                _band(ax, noise, _stats(vals, conf), marker="o", ms=2.5, lw=1,
                      color=cmap(a / max(len(weights) - 1, 1)), label=f"{weight:g}")  # fmt: skip
            if f"baseline_{metric}" in ds:
                # the true labels of the level below, scored the same way (analysis.agreement)
                finer = ds[f"baseline_{metric}"].sel(baseline="finer_truth", level=level)
                if np.isfinite(finer).any():
                    ax.axhline(float(finer.mean()), color="k", ls=":", lw=0.9,
                               label="finer truth")  # fmt: skip
            ax.set_ylim(*YLIM[metric])
            if r == 0:
                ax.set_title(f"beta {beta:g}", fontsize=8)
            if c == 0:
                ax.set_ylabel(TITLES[metric], fontsize=8)
            if r == len(metrics) - 1:
                ax.set_xlabel("input noise", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), title="attention", fontsize=7,
               title_fontsize=7, loc="outside right center")  # fmt: skip
    fig.suptitle(f"{LEVEL_NAMES[level]}, object columns only: mean and {conf:.0%} t band over "
                 f"{ds.sizes['seed']} seeds", fontsize=9)  # fmt: skip
    study.save_figure(fig, name)


def plot_thresholds(study, ds, beta, level, conf):
    """ARI against the island threshold at ``beta``, one panel per noise, a line per weight."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    noises, weights = ds.noise.values, ds.attention.values
    th = ds.threshold.values
    fig = Figure(figsize=(1.9 * len(noises) + 1.1, 2.3), layout="constrained")
    axes = fig.subplots(1, len(noises), sharey=True, squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, noise in zip(axes, noises, strict=True):
        for a, weight in enumerate(weights):
            vals = ds["ari_threshold"].sel(beta=beta, attention=weight, noise=noise, level=level)
            _band(ax, th, _stats(vals.values, conf), marker="o", ms=2.5, lw=1,
                  color=cmap(a / max(len(weights) - 1, 1)), label=f"{weight:g}")  # fmt: skip
        ax.set_title(f"noise {noise:g}", fontsize=8)
        ax.set_ylim(*YLIM["ari"])
        ax.set_xlabel("island threshold", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("ARI, object columns", fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), title="attention", fontsize=7,
               title_fontsize=7, loc="outside right center")  # fmt: skip
    fig.suptitle(f"{LEVEL_NAMES[level]}, beta {beta:g}: ARI against the island threshold "
                 f"(mean, {conf:.0%} t band)", fontsize=8)  # fmt: skip
    study.save_figure(fig, "thresholds.png")


def plot_gain(study, ds, conf):
    """Gain against the attention weight, one panel per level, a line per perturbation."""
    from matplotlib.figure import Figure

    x = np.arange(ds.sizes["attention"])
    levels = ds.sizes["level"]
    fig = Figure(figsize=(2.6 * levels, 2.5), layout="constrained")
    axes = fig.subplots(1, levels, sharey=True)
    for lv, ax in enumerate(axes):
        for k, name in enumerate(PERTURBATIONS):
            mean, lo, hi = _stats(ds["gain"].isel(perturbation=k, level=lv).values, conf)
            err = np.nan_to_num(np.abs(np.stack([lo, hi]) - mean))
            ax.errorbar(x + (k - 1) * 0.08, mean, yerr=err, marker="os^"[k], ms=3, capsize=2,
                        lw=1, label=name)  # fmt: skip
        ax.axhline(1, color="k", lw=0.6, ls=":")
        ax.set_ylim(0, 1.45)
        ax.set_xticks(x, [f"{w:g}" for w in ds.attention.values], fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set(xlabel="attention weight", title=f"level {lv}")
    axes[0].set_ylabel("|d state| / |d unit input|", fontsize=8)
    axes[-1].legend(fontsize=6)
    fig.suptitle(f"response to an input change of the same size, beta "
                 f"{ds.attrs['beta']:g}, noise {ds.attrs['noise']:g} (mean, {conf:.0%} t interval)",
                 fontsize=9)  # fmt: skip
    study.save_figure(fig, "gain.png")


def plot_switch(study, ds, conf):
    """Grouped bars: per weight, one bar per start; ARI against B (levels 1, 2) and
    against A (level 1)."""
    from matplotlib.figure import Figure

    weights = ds.attention.values
    x = np.arange(len(weights))
    panels = (("ari", 1, "level 1 vs B's parts"), ("ari", 2, "level 2 vs B's objects"),
              ("ari_vs_A", 1, "level 1 vs A's parts (memory?)"))  # fmt: skip
    fig = Figure(figsize=(9.6, 2.7), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True)
    width = 0.8 / len(STARTS)
    for ax, (var, lv, title) in zip(axes, panels, strict=True):
        for k, start in enumerate(STARTS):
            mean, lo, hi = _stats(ds[var].isel(start=k, level=lv).values, conf)
            err = np.nan_to_num(np.abs(np.stack([lo, hi]) - mean))
            ax.bar(x + (k - 1.5) * width, mean, width, yerr=err, capsize=1.5,
                   error_kw=dict(lw=0.7), label=start)  # fmt: skip
        ax.set_xticks(x, [f"{w:g}" for w in weights], fontsize=7)
        ax.tick_params(labelsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-0.15, 1.05)
        ax.set(xlabel="attention weight", title=title)
    axes[0].set_ylabel("ARI, object columns", fontsize=8)
    axes[0].legend(fontsize=6, title="start of the run on B", title_fontsize=6)
    fig.suptitle(f"start dependence: scene B from zeros, from settled A, from settled unrelated C, "
                 f"from random (mean, {conf:.0%} t interval)", fontsize=9)  # fmt: skip
    study.save_figure(fig, "switch.png")


def plot_switch_maps(study, maps, weights, grid):
    """Level 1 on scene B per drawn weight: B's parts, then the islands from each start."""
    from matplotlib.figure import Figure

    weights = [w for w in weights if (float(w), STARTS[0]) in maps]
    if not weights or "truth" not in maps:
        return
    truth_b = maps["truth"][1][1]
    fig = Figure(figsize=(8.4, 1.95 * len(weights) + 0.4), layout="constrained")
    axes = fig.subplots(len(weights), 1 + len(STARTS), squeeze=False)
    for row, weight in enumerate(weights):
        _common.truth_panel(axes[row, 0], grid, truth_b, "B's parts")
        runs = [(start, maps[float(weight), start][1]) for start in STARTS]
        _common.island_panels(axes[row, 1:], grid, truth_b, runs)
        axes[row, 0].set_ylabel(f"attention {weight:g}", fontsize=8)
    fig.suptitle("level 1 at the end of the run on scene B, first seed (ARI here: all columns)",
                 fontsize=9)  # fmt: skip
    study.save_figure(fig, "switch_maps.png")
