"""Figures of the fixed_vs_learned study: ARI over the steps, the parse tree against the
true parents with the paired differences, and the islands of one held-out scene."""

from __future__ import annotations

import _common
import _measure as mt
import numpy as np

PALETTE = ["0.45", "tab:green", "tab:blue", "tab:orange", "tab:red"]


def _colours(arms):
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def plot_ari(study, res, sm):
    """Two rows (every column; objects' columns only) x one panel per level: mean ARI over
    the steps per weight set with its 95% bootstrap band; dotted lines the baselines."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from glomsim.scenes import LEVEL_NAMES

    thr, arms = sm.main, sm.arms
    colours = _colours(arms)
    levels, t = res.level.values, res.time.values
    fig = Figure(figsize=(2.2 * len(levels) + 0.5, 4.6), layout="constrained")
    axes = fig.subplots(2, len(levels), sharey=True, sharex=True, squeeze=False)
    rows = (("ari", "every column"), ("ari_objects", "objects' columns only"))
    for r, (var, label) in enumerate(rows):
        for ax, level in zip(axes[r], levels, strict=True):
            for arm in arms:
                stats = np.array([sm.stats(mt.arm_values(res, var, arm, thr, level, time=k))
                                  for k in range(len(t))])  # fmt: skip
                ax.plot(t, stats[:, 0], color=colours[arm], lw=1.5, label=arm)
                if np.isfinite(stats[:, 1]).all():
                    ax.fill_between(t, stats[:, 1], stats[:, 2], color=colours[arm],
                                    alpha=0.2, lw=0)  # fmt: skip
            base = res[f"base_{var}"].sel(level=level).mean("scene")
            for b, style in zip(base[f"base_{var}_baseline"].values, (":", "-."), strict=True):
                value = float(base.sel({f"base_{var}_baseline": b}))
                if np.isfinite(value):
                    ax.axhline(value, color="k", lw=0.8, ls=style)
            name = LEVEL_NAMES[min(int(level), len(LEVEL_NAMES) - 1)]
            if r == 0:
                ax.set_title(f"level {int(level)} ({name})", fontsize=9)
            else:
                ax.set_xlabel("step", fontsize=8)
            ax.set_ylim(-0.05, 1.05)
            ax.tick_params(labelsize=7)
        axes[r, 0].set_ylabel(f"ARI vs truth\n{label}", fontsize=8)
    handles, _ = axes[0, 0].get_legend_handles_labels()
    handles += [
        Line2D([], [], color="k", lw=0.8, ls=":", label="baseline: background one island,\n"
               "others alone"),
        Line2D([], [], color="k", lw=0.8, ls="-.", label="baseline: truth of the level below"),
    ]  # fmt: skip
    axes[1, -1].legend(handles=handles, fontsize=6, loc="center")
    fig.suptitle(f"held-out scenes: ARI of islands (cosine >= {thr}); mean and 95% bootstrap "
                 "band over scenes x weight seeds", fontsize=9)  # fmt: skip
    return study.save_figure(fig, "ari.png")


def plot_parse(study, res, long_res, sm):
    """Left: the parse tree against the true parents (objects only, the config's steps)
    per level pair and weight set, with 95% intervals and the trivial parses; right:
    paired differences learned - identity of the objects-only ARI and parent score, at
    the config's steps and after the long run, with 95% intervals."""
    from matplotlib.figure import Figure

    thr, arms = sm.main, sm.arms
    colours = _colours(arms)
    pairs = res.level.values[:-1]
    fig = Figure(figsize=(8.2, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.2, 1))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        stats = np.array([sm.stats(mt.arm_values(res, "parent_objects", arm, thr, lv))
                          for lv in pairs])  # fmt: skip
        x = np.arange(len(pairs)) + (i - (len(arms) - 1) / 2) * width
        err = np.nan_to_num(np.abs(stats[:, 1:].T - stats[:, 0]))
        left.bar(x, stats[:, 0], width, color=colours[arm], label=arm)
        left.errorbar(x, stats[:, 0], yerr=err, fmt="none", ecolor="k", capsize=2, lw=0.8)
    base = res["base_parent_objects"].mean("scene")
    markers = {"one_island": "v", "background_and_singletons": "x", "finer_truth": "D"}
    for b in base["base_parent_objects_baseline"].values:
        vals = base.sel(base_parent_objects_baseline=b).values[: len(pairs)]
        left.plot(np.arange(len(pairs)), vals, ls="none", marker=markers.get(str(b), "o"),
                  color="k", ms=4, mfc="none", label=f"baseline: {b}")  # fmt: skip
    names = [f"{int(lv)} in {int(lv) + 1}" for lv in pairs]
    left.set_xticks(np.arange(len(pairs)), names, fontsize=7)
    left.set_xlabel("level l island inside its true parent's island at l + 1", fontsize=8)
    left.set_ylabel("share of object columns", fontsize=8)
    left.set_ylim(0, 1.5)
    left.set_yticks(np.linspace(0, 1, 6))
    steps = int(res.time.values[-1])
    left.set_title(f"parse tree against the true parents, objects only, step {steps}",
                   fontsize=9)  # fmt: skip
    left.legend(fontsize=5.5, loc="upper center", ncol=2)
    left.tick_params(labelsize=7)

    kinds = {a["name"]: a["kind"] for a in study.params["arms"]}
    identity = next((a for a in arms if kinds[a] == "identity"), None)
    learned = next((a for a in arms if kinds[a] == "learned"), None)
    if identity is not None and learned is not None:
        _plot_differences(right, res, long_res, sm, identity, learned)
    fig.suptitle(f"held-out scenes, cosine >= {thr}: mean and 95% bootstrap interval over "
                 "scenes x weight seeds", fontsize=9)  # fmt: skip
    return study.save_figure(fig, "parse.png")


def _plot_differences(ax, res, long_res, sm, identity, learned):
    """Paired differences learned - identity below the scene level, at the config's
    steps (filled) and after the long run (open), for the objects-only ARI at each level
    and the parent score of each level pair."""
    thr = sm.main
    levels = res.level.values[:-1]  # the scene level's +1 is in the table, off this scale
    series = [
        ("ari_objects", "ARI, objects only", "o", -0.2),
        ("parent_objects", "parent score", "s", 0.1),
    ]
    for var, label, marker, shift in series:
        for k, (r, filled) in enumerate(((res, True), (long_res, False))):
            steps = int(r.time.values[-1])
            lv = levels if var == "ari_objects" else levels[:-1]
            stats = np.array([sm.stats(mt.paired(r, var, learned, identity, thr, v)) for v in lv])
            err = np.nan_to_num(np.abs(stats[:, 1:].T - stats[:, 0]))
            colour = "tab:blue" if var == "ari_objects" else "tab:purple"
            ax.errorbar(np.asarray(lv) + shift + 0.1 * k, stats[:, 0], yerr=err,
                        marker=marker, ms=4, capsize=2, lw=0, elinewidth=1, color=colour,
                        mfc=colour if filled else "white",
                        label=f"{label}, step {steps}")  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(levels, [f"level {int(v)}\n(pair {int(v)}-{int(v) + 1})" for v in levels],
                  fontsize=7)  # fmt: skip
    ax.set_xlabel("level (ARI) or level pair (parent score)", fontsize=8)
    ax.set_ylabel(f"{learned} - {identity}", fontsize=8)
    ax.set_title(f"paired differences {learned} - {identity}", fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    ax.figure.legend(handles=handles, fontsize=6, loc="outside lower right", ncol=4)
    ax.tick_params(labelsize=7)


def plot_islands(study, cfg, first, held_out):
    """One row per level: held-out scene 0's truth, then the islands of each arm's first
    weight seed at the last step, judged against that truth."""
    from matplotlib.figure import Figure

    import analysis as an
    from analysis._maps import wrap_title
    from glomsim.scenes import LEVEL_NAMES

    isl = study.params["islands"]
    kinds = {a["name"]: a["kind"] for a in study.params["arms"]}
    runs = []
    for key, ds in first.items():
        if key[1] != min(k[1] for k in first if k[0] == key[0]):
            continue
        found = an.islands(ds.isel(time=[-1]), threshold=isl["threshold"],
                           connectivity=isl["connectivity"], radius=isl["radius"])  # fmt: skip
        seed = "no seed" if kinds[key[0]] == "identity" else f"seed {key[1]}"
        runs.append((key[0], seed, found["labels"].values[0]))
    truth = held_out[0].labels
    L = cfg.levels
    width = 1.85 * (len(runs) + 1) + 0.3
    fig = Figure(figsize=(width, 1.95 * L + 0.5), layout="constrained")
    axes = fig.subplots(L, len(runs) + 1, squeeze=False)
    for level in range(L):
        _common.truth_panel(axes[level, 0], cfg.grid, truth[level])
        # the arm's name heads its column (first row only): the panels are narrow
        titles = [f"{arm}\n{seed}" if level == 0 else seed for arm, seed, _ in runs]
        panels = [(t, lab[level]) for t, (_, _, lab) in zip(titles, runs, strict=True)]
        _common.island_panels(axes[level, 1:], cfg.grid, truth[level], panels)
        lv = LEVEL_NAMES[min(level, len(LEVEL_NAMES) - 1)]
        axes[level, 0].set_ylabel(f"level {level} ({lv})", fontsize=8)
    title = (
        f"fixed_vs_learned: held-out scene 0 at the last step, islands at cosine >= "
        f"{isl['threshold']}; ARI = agreement with the ground truth"
    )
    fig.suptitle(wrap_title(title, width, 9), fontsize=9)
    return study.save_figure(fig, "islands.png")
