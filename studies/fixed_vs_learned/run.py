"""Fixed random nets, identity nets and learned nets: whose islands match held-out scenes?

Trains the column's nets with :func:`glomsim.train.train` on a few synthetic scenes,
starting from random weights, then simulates scenes never trained on with the random
weights, the identity nets (``glomsim.identity_weights``) and the learned ones, all on one
config. At the last step it scores the islands against the scenes' ground truth per
level: the ARI on every column and on the objects' columns only, with the trivial
baselines beside; the parse tree against the true parents
(:func:`analysis.hierarchy.parse_truth`); and whether each run settled
(:func:`analysis.convergence`). Intervals: 95% percentile bootstrap over held-out scenes x
weight seeds (the two resampled independently); differences are paired by scene (and by
weight seed where both sides have it).

Run: python studies/fixed_vs_learned/run.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _measure as mt  # noqa: E402
import _plots  # noqa: E402


def make_weights(study, cfg, train_scenes):
    """{(arm, seed): GlomWeights} and the training histories {(arm, seed): Dataset}."""
    import glomsim as gs
    from glomsim.train import train

    weights, histories, seconds = {}, {}, {}
    for arm in study.params["arms"]:
        for seed in arm["seeds"]:
            if arm["kind"] == "identity":
                weights[arm["name"], seed] = gs.identity_weights(cfg)
                continue
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


def _level_name(level):
    from glomsim.scenes import LEVEL_NAMES

    return f"{int(level)} ({LEVEL_NAMES[min(int(level), len(LEVEL_NAMES) - 1)]})"


def _pair_name(level):
    from glomsim.scenes import LEVEL_NAMES

    lo, hi = (LEVEL_NAMES[min(int(v), len(LEVEL_NAMES) - 1)] for v in (level, level + 1))
    return f"{int(level)}-{int(level) + 1} ({lo} in {hi})"


def _fmt(stats, digits=3):
    return _common.fmt_interval(*stats, digits)


class Summary:
    """Tables of the last step: per weight set mean [95% interval], baselines beside."""

    def __init__(self, study, res):
        self.study, self.res = study, res
        iv = study.params["intervals"]
        self.boot = (int(iv["resamples"]), int(iv["seed"]), float(iv["confidence"]))
        self.arms = [a["name"] for a in study.params["arms"]]
        self.main = study.params["islands"]["threshold"]

    def stats(self, values):
        return mt.bootstrap(values, *self.boot)

    def scores(self, var, threshold, baselines=False, pairs=False, digits=3):
        res, rows = self.res, []
        levels = res.level.values[:-1] if pairs else res.level.values
        for level in levels:
            row = {
                "level" if not pairs else "levels": (_pair_name if pairs else _level_name)(level)
            }
            if var == "count":
                row["truth"] = f"{res.true_count.sel(level=level).mean().item():.1f}"
            for arm in self.arms:
                vals = mt.arm_values(res, var, arm, threshold, level)
                row[arm] = _fmt(self.stats(vals), digits)
            if baselines:  # the trivial partitions' scores, mean over the scenes
                base = res[f"base_{var}"]
                for b in base[f"base_{var}_baseline"].values:
                    v = base.sel({f"base_{var}_baseline": b, "level": level}).values
                    row[f"baseline: {b}"] = _fmt((float(np.mean(v)), np.nan, np.nan), digits)
            rows.append(row)
        return rows

    def differences(self, var, pairs=False):
        """Rows of paired differences (learned - identity, learned - random, identity -
        random) with intervals and counts of runs better / equal / worse."""
        res, rows = self.res, []
        kinds = {a["name"]: a["kind"] for a in self.study.params["arms"]}
        identity = [a for a in self.arms if kinds[a] == "identity"]
        random = [a for a in self.arms if kinds[a] == "random"]
        learned = [a for a in self.arms if kinds[a] == "learned"]
        comparisons = [(a, b) for a in learned for b in identity + random]
        comparisons += [(a, b) for a in identity for b in random]
        levels = res.level.values[:-1] if pairs else res.level.values
        for arm, other in comparisons:
            for level in levels:
                d = mt.paired(res, var, arm, other, self.main, level)
                rows.append({
                    "difference": f"{arm} - {other}",
                    "level": (_pair_name if pairs else _level_name)(level),
                    "mean [95% CI]": _fmt(self.stats(d)),
                    "better": int((d > 1e-9).sum()),
                    "equal": int((np.abs(d) <= 1e-9).sum()),
                    "worse": int((d < -1e-9).sum()),
                })  # fmt: skip
        return rows

    def settling(self):
        """Share of runs whose level settled (analysis.convergence) by the last step."""
        res, rows = self.res, []
        steps = int(res.time.values[-1])
        for arm in self.arms:
            st = res.settled_step.where(res.arm == arm, drop=True)  # (weights, scene, level)
            ok = st.values >= 0
            row = {"weights": arm, "runs": int(ok.shape[0] * ok.shape[1])}
            for level in res.level.values:
                row[f"level {int(level)}"] = f"{ok[:, :, level].mean():.2f}"
            row["all levels"] = f"{ok.all(axis=2).mean():.2f}"
            done = st.values[ok]
            row["settling step (settled runs)"] = (
                f"{np.median(done):.0f} (median), max {int(done.max())}" if done.size else "-"
            )
            row["of steps"] = steps
            rows.append(row)
        return rows


def report_blocks(study, res, full=True):
    """The printed tables of one evaluation (``full``: also the sensitivity to the
    threshold and the parse score on every column)."""
    sm = Summary(study, res)
    main, sc = sm.main, study.params["scenes"]
    n_seeds = {a["name"]: len(a["seeds"]) for a in study.params["arms"]}
    seeds = ", ".join(f"{arm} {n}" for arm, n in n_seeds.items())
    steps = int(res.time.values[-1])
    head = (f"step {steps} (the last), mean [95% bootstrap interval] over {sc['held_out']} "
            f"held-out scenes x weight seeds ({seeds})")  # fmt: skip
    text = [f"===== {steps} steps =====", ""]

    def block(title, rows):
        text.extend([title, _common.table(rows), ""])

    block(f"ARI of islands (cosine >= {main}) against the truth, every column; {head}; "
          "baselines: the trivial partitions (mean over scenes)",
          sm.scores("ari", main, baselines=True))  # fmt: skip
    block(f"ARI on the objects' columns only (background left out), cosine >= {main}; {head}",
          sm.scores("ari_objects", main, baselines=True))  # fmt: skip
    block(f"parse tree against the true parents (parse_truth parent_score), objects' "
          f"columns only, cosine >= {main}; {head}",
          sm.scores("parent_objects", main, baselines=True, pairs=True))  # fmt: skip
    if full:
        block(f"parse tree against the true parents, every column, cosine >= {main}; {head}",
              sm.scores("parent", main, baselines=True, pairs=True))  # fmt: skip
    block(f"number of islands, cosine >= {main}; {head}", sm.scores("count", main, digits=1))
    for thr in res.threshold.values[1:] if full else []:
        block(f"sensitivity: ARI every column, cosine >= {float(thr)}; {head}",
              sm.scores("ari", float(thr)))  # fmt: skip
        block(f"sensitivity: ARI objects only, cosine >= {float(thr)}; {head}",
              sm.scores("ari_objects", float(thr)))  # fmt: skip
    paired = f"step {steps}, paired by scene, and by weight seed where both sides have one"
    block(f"paired differences, ARI every column ({paired}); 95% bootstrap interval",
          sm.differences("ari"))  # fmt: skip
    block(f"paired differences, ARI objects only ({paired})", sm.differences("ari_objects"))
    block(f"paired differences, parse tree against true parents, objects only ({paired})",
          sm.differences("parent_objects", pairs=True))  # fmt: skip
    block(f"settling (analysis.convergence, default rtol 1e-4 for float32, from the per-step "
          f"change): share of runs whose level settled within {steps} steps", sm.settling())  # fmt: skip
    return text, sm


def report(study, res, long_res, seconds):
    """The printed report: every number the README quotes."""
    text, sm = report_blocks(study, res)
    more, _ = report_blocks(study, long_res, full=False)
    text += more
    if seconds:
        t = np.array(list(seconds.values()))
        text.append(f"training: {len(t)} runs, {t.min():.1f}-{t.max():.1f} s each "
                    f"(total {t.sum():.0f} s)")  # fmt: skip
    return "\n".join(text), sm


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
    t0 = time.perf_counter()
    isl = study.params["islands"]
    res, first = mt.evaluate(cfg, weights, held_out, isl)
    # the same weights run until they settle: only the first and last states recorded
    # (convergence still reads every step's change)
    long_steps = int(study.params["settling"]["steps"])
    long_res, _ = mt.evaluate(study.config(steps=long_steps), weights, held_out,
                              dict(isl, record_every=long_steps))  # fmt: skip
    print(f"evaluated {len(weights)} weight sets x {len(held_out)} scenes, {cfg.steps} and "
          f"{long_steps} steps, in {time.perf_counter() - t0:.1f} s\n")  # fmt: skip
    study.save_results(res, "ari.nc")
    study.save_results(long_res, f"ari_{long_steps}_steps.nc")
    if histories:
        hist = xr.concat(
            [h.expand_dims(weights=[f"{a} / seed {s}"]) for (a, s), h in histories.items()],
            dim="weights",
        )
        hist.attrs = {"title": "training histories",
                      "training": json.dumps(study.params["training"])}  # fmt: skip
        study.save_results(hist, "history.nc")

    text, sm = report(study, res, long_res, seconds)
    print(text)
    (study.results / "ari_table.txt").write_text(text + "\n")
    summary = {
        "training_seconds": {f"{a} / seed {s}": round(t, 1) for (a, s), t in seconds.items()},
        "n_train_scenes": sc["train"],
        "n_held_out_scenes": sc["held_out"],
        "config": json.loads(cfg.to_json()),
    }
    (study.results / "summary.json").write_text(json.dumps(summary, indent=1))
    _plots.plot_ari(study, res, sm)
    _plots.plot_parse(study, res, long_res, sm)
    _plots.plot_islands(study, cfg, first, held_out)
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
