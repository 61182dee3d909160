"""Fixed random nets against learned nets: do islands match the truth of held-out scenes?

Trains the column's nets with :func:`glomsim.train.train` on a few synthetic scenes, then
simulates scenes never trained on with the random weights and with the learned ones (same
config), finds islands at the settled state and scores them against the scenes' ground
truth with the adjusted Rand index, per level.

Run: python studies/fixed_vs_learned/run.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402


def make_weights(study, cfg, train_scenes):
    """{(arm, seed): GlomWeights} and the training histories {(arm, seed): Dataset}."""
    import glomsim as gs
    from glomsim.train import train

    weights, histories, seconds = {}, {}, {}
    for arm in study.params["arms"]:
        for seed in arm["seeds"]:
            start = gs.random_weights(cfg, seed)
            if arm["kind"] == "random":
                weights[arm["name"], seed] = start
                continue
            settings = dict(study.params["training"]) | {
                k: v for k, v in arm.items() if k not in ("name", "kind", "seeds")
            }
            t0 = time.perf_counter()
            w, hist = train(cfg, train_scenes, weights=start, seed=seed, **settings)
            seconds[arm["name"], seed] = time.perf_counter() - t0
            weights[arm["name"], seed] = w
            histories[arm["name"], seed] = hist
            folder = study.results / "weights"
            folder.mkdir(exist_ok=True)
            w.save(folder / f"{_slug(arm['name'])}_seed{seed}.npz")
            print(
                f"trained {arm['name']}, seed {seed}: loss {float(hist.total[0]):.3g} -> "
                f"{float(hist.total[-1]):.3g} in {seconds[arm['name'], seed]:.1f} s"
            )
    return weights, histories, seconds


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").replace("__", "_")


def evaluate(study, cfg, weights, held_out):
    """Measurements (weights, scene, threshold, time, level) of the islands of every
    held-out simulation, and the simulations of scene 0 (for the maps).

    ``ari``: adjusted Rand index against the truth. ``ari_foreground``: the same with the
    background's columns left out (label -1), since the background covers half the grid
    and ARI forgives splitting an object when one big island is right. ``count``: islands.
    """
    import xarray as xr

    import analysis as an
    import glomsim as gs

    isl = study.params["islands"]
    thresholds = [isl["threshold"], *isl.get("also_thresholds", [])]
    keys = list(weights)
    first = {}
    out = None
    for k, key in enumerate(keys):
        for s, scene in enumerate(held_out):
            ds = gs.simulate(cfg, weights[key], inputs=scene, record_every=isl["record_every"])
            if s == 0:
                first[key] = ds
            # level 2's truth is the object, 0 = background
            foreground = ds.assign(label=ds.label.where(ds.label.sel(level=2) > 0, -1))
            for j, thr in enumerate(thresholds):
                found = an.islands(
                    ds, threshold=thr, connectivity=isl["connectivity"], radius=isl["radius"]
                )
                values = {
                    "ari": an.agreement(ds, islands=found).ari,
                    "ari_foreground": an.agreement(foreground, islands=found).ari,
                    "count": found["count"],
                }
                if out is None:
                    times = found["time"].values
                    shape = (len(keys), len(held_out), len(thresholds), len(times), cfg.levels)
                    out = {name: np.full(shape, np.nan) for name in values}
                for name, v in values.items():
                    out[name][k, s, j] = v.transpose("time", "level").values
    dims = ("weights", "scene", "threshold", "time", "level")
    res = xr.Dataset(
        {name: (dims, v) for name, v in out.items()},
        coords={
            "weights": [f"{arm} / seed {seed}" for arm, seed in keys],
            "arm": ("weights", [arm for arm, _ in keys]),
            "seed": ("weights", [seed for _, seed in keys]),
            "scene": np.arange(len(held_out)),
            "threshold": thresholds,
            "time": times,
            "level": np.arange(cfg.levels),
        },
    )
    res["true_count"] = (
        ("scene", "level"),
        np.array([[len(np.unique(lab)) for lab in sc.labels] for sc in held_out]),
    )
    attrs = {
        "ari": ("adjusted Rand index", "islands against ground truth"),
        "ari_foreground": (
            "adjusted Rand index, objects only",
            "islands against ground truth on the columns of the objects (background left out)",
        ),
        "count": ("number of islands", "islands found"),
        "true_count": ("number of true labels", "distinct ground-truth labels per level"),
    }
    for name, (long_name, text) in attrs.items():
        res[name].attrs.update(long_name=long_name, units="1", description=text)
    res.attrs.update(
        title="fixed vs learned weights: agreement of islands with held-out ground truth",
        glomsim_config=cfg.to_json(),
    )
    return res, first


def _level_name(level):
    from glomsim.scenes import LEVEL_NAMES

    return f"{int(level)} ({LEVEL_NAMES[min(int(level), len(LEVEL_NAMES) - 1)]})"


def summarise(study, res):
    """Tables of the last step (mean ± sd over held-out scenes and weight seeds), and the
    paired differences learned - random (same seed, same scene) of the ARI."""
    arms = [a["name"] for a in study.params["arms"]]
    final = res.isel(time=-1)
    main = study.params["islands"]["threshold"]
    tables = {}
    for var, thresholds in (
        ("ari", list(res.threshold.values)),
        ("ari_foreground", [main]),
        ("count", [main]),
    ):
        for thr in thresholds:
            rows = []
            for level in res.level.values:
                row = {"level": _level_name(level)}
                if var == "count":
                    row["truth"] = f"{res.true_count.sel(level=level).mean().item():.1f}"
                for arm in arms:
                    v = final[var].sel(threshold=thr, level=level).where(res.arm == arm, drop=True)
                    fmt = ".1f" if var == "count" else ".3f"
                    row[arm] = f"{np.mean(v.values):{fmt}} ± {np.std(v.values):{fmt}}"
                rows.append(row)
            tables[f"{var} @ {float(thr)}"] = rows

    paired = []
    ari = final.ari.sel(threshold=main)
    rand = ari.where(res.arm == "random", drop=True)
    by_seed = {
        int(s): rand.sel(weights=w)
        for w, s in zip(rand.weights.values, rand.seed.values, strict=True)
    }
    for arm in arms[1:]:
        sub = ari.where(res.arm == arm, drop=True)
        diffs = np.stack(
            [
                sub.sel(weights=w).values - by_seed[int(s)].values
                for w, s in zip(sub.weights.values, sub.seed.values, strict=True)
            ]
        )  # (seed, scene, level)
        d = diffs.reshape(-1, diffs.shape[-1])
        for level in range(d.shape[1]):
            paired.append(
                {
                    "arm": arm,
                    "level": _level_name(level),
                    "mean difference": float(d[:, level].mean()),
                    "better": int((d[:, level] > 1e-9).sum()),
                    "equal": int((np.abs(d[:, level]) <= 1e-9).sum()),
                    "worse": int((d[:, level] < -1e-9).sum()),
                }
            )
    return tables, paired


def plot_ari(study, res):
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from glomsim.scenes import LEVEL_NAMES

    thr = study.params["islands"]["threshold"]
    arms = [a["name"] for a in study.params["arms"]]
    palette = ["0.45", "tab:blue", "tab:orange", "tab:green", "tab:red"]
    colours = {arm: palette[i % len(palette)] for i, arm in enumerate(arms)}
    levels = res.level.values
    fig = Figure(figsize=(2.3 * len(levels) + 0.4, 2.6), layout="constrained")
    axes = fig.subplots(1, len(levels), sharey=True)
    t = res.time.values
    for ax, level in zip(axes, levels, strict=True):
        for arm in arms:
            a = res.ari.sel(threshold=thr, level=level).where(res.arm == arm, drop=True)
            a = a.values.reshape(-1, len(t))
            m, s = a.mean(0), a.std(0)
            ax.plot(t, m, color=colours[arm], lw=1.5, label=arm)
            ax.fill_between(t, m - s, m + s, color=colours[arm], alpha=0.15, lw=0)
            fg = res.ari_foreground.sel(threshold=thr, level=level).where(res.arm == arm, drop=True)
            ax.plot(t, fg.values.reshape(-1, len(t)).mean(0), color=colours[arm], lw=1, ls="--")
        name = LEVEL_NAMES[min(int(level), len(LEVEL_NAMES) - 1)]
        ax.set(title=f"level {int(level)} ({name})", xlabel="step", ylim=(-0.05, 1.05))
    axes[0].set_ylabel("ARI vs truth")
    # the line styles and the band explained beside the arms' colours
    handles, _ = axes[0].get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.3", lw=1.5, label="all columns: mean"),
        Patch(color="0.3", alpha=0.15, lw=0, label="all columns: ± sd"),
        Line2D([], [], color="0.3", lw=1, ls="--", label="objects' columns only: mean"),
    ]
    # on the last level's panel, whose lines sit at ARI 1 and leave its lower part empty
    axes[-1].legend(handles=handles, fontsize=6, loc="lower center")
    fig.suptitle(
        f"held-out scenes: ARI of islands (cosine >= {thr}) against the truth, mean ± sd; "
        "dashed: objects' columns only",
        fontsize=9,
    )
    return study.save_figure(fig, "ari.png")


def plot_islands(study, cfg, first, held_out):
    """One row per level: held-out scene 0's truth, then the islands of each arm's first
    weight seed at the last step, judged against that truth."""
    from matplotlib.figure import Figure

    import analysis as an
    from analysis._maps import wrap_title
    from glomsim.scenes import LEVEL_NAMES

    isl = study.params["islands"]
    runs = []
    for key, ds in first.items():
        if key[1] != min(k[1] for k in first if k[0] == key[0]):
            continue
        found = an.islands(
            ds.isel(time=[-1]),
            threshold=isl["threshold"],
            connectivity=isl["connectivity"],
            radius=isl["radius"],
        )
        runs.append((key[0], f"seed {key[1]}", found["labels"].values[0]))
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


def main():
    study = _common.setup(__file__, __doc__)
    import xarray as xr

    from glomsim.train import make_training_scenes

    cfg = study.config()
    sc = dict(study.params["scenes"])
    scene_kw = {k: sc[k] for k in ("n_objects", "parts_per_object", "textures_per_part", "noise")}
    train_scenes = make_training_scenes(cfg, sc["train"], sc["train_seed"], **scene_kw)
    held_out = make_training_scenes(cfg, sc["held_out"], sc["held_out_seed"], **scene_kw)

    weights, histories, seconds = make_weights(study, cfg, train_scenes)
    res, first = evaluate(study, cfg, weights, held_out)
    study.save_results(res, "ari.nc")
    hist = xr.concat(
        [h.expand_dims(weights=[f"{a} / seed {s}"]) for (a, s), h in histories.items()],
        dim="weights",
    )
    hist.attrs = {"title": "training histories", "training": json.dumps(study.params["training"])}
    study.save_results(hist, "history.nc")

    tables, paired = summarise(study, res)
    titles = {
        "ari": "ARI of islands against the truth",
        "ari_foreground": "ARI on the objects' columns only (background left out)",
        "count": "number of islands",
    }
    text = []
    for key, rows in tables.items():
        var, thr = key.split(" @ ")
        text.append(
            f"{titles[var]}, threshold {thr}, last step (mean ± sd over "
            f"{sc['held_out']} held-out scenes x weight seeds)"
        )
        text.append(_common.table(rows))
        text.append("")
    text.append(
        f"paired ARI: learned - random (same seed, same scene), threshold "
        f"{study.params['islands']['threshold']}"
    )
    text.append(_common.table(paired, floatfmt=".3f"))
    report = "\n".join(text)
    print(report)
    (study.results / "ari_table.txt").write_text(report + "\n")
    summary = {
        "tables": {str(k): v for k, v in tables.items()},
        "paired": paired,
        "training_seconds": {f"{a} / seed {s}": round(t, 1) for (a, s), t in seconds.items()},
        "n_train_scenes": sc["train"],
        "n_held_out_scenes": sc["held_out"],
        "config": json.loads(cfg.to_json()),
    }
    (study.results / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_ari(study, res)
    plot_islands(study, cfg, first, held_out)
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
