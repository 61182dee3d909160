"""moving_objects: do GLOM's islands follow objects that translate across the grid?

Movies from glomsim.scenes.make_movie (objects with parts and textures, each moving in its
own random direction, bouncing off the edges) are fed to simulate(frames=movie,
steps_per_frame=k) with identity nets. Per level and seed:

- ari: the islands' adjusted Rand index against the frame's labels at the frame's last
  step, object columns only (the background label is left out), mean over frames 1..F-1;
  ari_all: the same with the background; stale: against the previous frame's labels (an
  island map that did not move scores higher there than against the current frame);
- baselines: "background one island, every other column alone", scored the same two ways;
- lag: analysis.tracking_lag, steps after a frame change until the ARI reaches 90% of the
  frame's settled ARI (background left out), mean over frames;
- kept: analysis.track, share of (object, frame change) pairs where the island identity
  holding most of the object's columns is the same as at the previous frame's last step.

Three parts: several speeds; the previous-state weight (temporal smoothing) against input
noise; top_down_delay 1 against 2 on moving input (differences paired by seed). Intervals:
two-sided Student t intervals of the mean over seeds.

Run: python studies/moving_objects/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402

SCORES = ("ari", "ari_all", "stale", "baseline", "baseline_all", "lag", "kept")


t_interval = _common.t_interval


def velocities(seed, n_objects, speed):
    """Each object's (dy, dx): ``speed`` grid units per frame in a random direction."""
    angle = np.random.default_rng(1000 + int(seed)).uniform(0, 2 * np.pi, n_objects)
    return (speed * np.stack([np.sin(angle), np.cos(angle)], axis=1)).tolist()


def _ari(pred, truth, background):
    from analysis import adjusted_rand_index

    keep = truth != background if background is not None else np.ones(truth.size, bool)
    return adjusted_rand_index(pred[keep], truth[keep]) if keep.any() else math.nan


def _majority(ids, mask):
    vals, counts = np.unique(ids[mask], return_counts=True)
    return vals[np.argmax(counts)] if vals.size else -1


def scores(movie, isl, lag, tr):
    """Per-level scores (see the module's notes) of one run, as a dict of (levels,) arrays."""
    labels = isl["labels"].values
    ids = tr["track"].values
    frame = np.asarray(isl["frame"].values)
    n_frames, n_levels = movie.n_frames, labels.shape[1]
    last = [np.nonzero(frame == f)[0][-1] for f in range(n_frames)]
    out = {k: np.full(n_levels, np.nan) for k in SCORES}
    for level in range(n_levels):
        rows = {k: [] for k in ("ari", "ari_all", "stale", "baseline", "baseline_all", "kept")}
        for f in range(1, n_frames):
            truth, before = movie.labels[f, level], movie.labels[f - 1, level]
            pred = labels[last[f], level]
            trivial = np.where(truth == 0, 0, 1 + np.arange(truth.size))
            rows["ari"].append(_ari(pred, truth, 0))
            rows["ari_all"].append(_ari(pred, truth, None))
            rows["stale"].append(_ari(pred, before, 0))
            rows["baseline"].append(_ari(trivial, truth, 0))
            rows["baseline_all"].append(_ari(trivial, truth, None))
            for k in range(1, len(movie.objects) + 1):
                now, then = movie.labels[f, 2] == k, movie.labels[f - 1, 2] == k
                if now.any() and then.any():
                    a = _majority(ids[last[f], level], now)
                    b = _majority(ids[last[f - 1], level], then)
                    rows["kept"].append(float(a == b))
        for k, v in rows.items():
            out[k][level] = np.nanmean(v) if np.isfinite(v).any() else math.nan
    out["lag"] = lag["mean_lag"].values.astype(np.float64)
    return out


def run_one(study, seed, speed, noise, previous, delay, k):
    import analysis as an
    import glomsim as gs
    from glomsim.scenes import make_movie

    p = study.params["study"]
    cfg = study.config(seed=int(seed), top_down_delay=int(delay), mix={"previous": previous})
    # every part runs the same number of steps: n_frames x steps_per_frame of [study]
    n_frames = int(p["n_frames"]) * int(p["steps_per_frame"]) // int(k)
    movie_kw = {**study.params["movie"], "noise": float(noise)}
    movie = make_movie(
        grid=tuple(cfg.grid),
        dim=cfg.dim,
        levels=cfg.levels,
        seed=int(seed),
        n_frames=n_frames,
        velocities=velocities(seed, int(movie_kw["n_objects"]), speed),
        **movie_kw,
    )
    k = int(k)
    ds = gs.simulate(cfg, gs.identity_weights(cfg), frames=movie, steps_per_frame=k,
                     steps=movie.n_frames * k)  # fmt: skip
    isl = an.islands(ds, **study.params["islands"])
    if "frame" not in isl.coords:
        isl = isl.assign_coords(frame=("time", ds["frame"].values))
    lag = an.tracking_lag(isl, fraction=float(p["fraction"]), background=0)
    tr = an.track(isl, min_overlap=float(p["min_overlap"]))
    return scores(movie, isl, lag, tr), (movie, isl, tr)


class Runs:
    """Runs by (seed, speed, noise, previous, delay), each computed once."""

    def __init__(self, study):
        self.study, self.cache, self.keep = study, {}, {}
        cfg = study.params["config"]
        self.base = dict(noise=float(study.params["movie"]["noise"]),
                         previous=float(cfg["mix"]["previous"]),
                         delay=int(cfg.get("top_down_delay", 1)),
                         k=int(study.params["study"]["steps_per_frame"]))  # fmt: skip

    def get(self, seed, speed, **changes):
        key = dict(self.base, **changes)
        key = (int(seed), float(speed), float(key["noise"]), float(key["previous"]),
               int(key["delay"]), int(key["k"]))  # fmt: skip
        if key not in self.cache:
            self.cache[key], extra = run_one(self.study, *key)
            if key[0] == self.study.params["study"]["seeds"][0]:
                self.keep[key] = extra
        return self.cache[key]


def stack(runs, seeds, **cell):
    """{score: (seeds, levels)} for one cell of a part."""
    got = [runs.get(s, **cell) for s in seeds]
    return {k: np.stack([g[k] for g in got]) for k in SCORES}


_fmt = _common.fmt_interval


def summary_rows(cells, conf, names):
    """Table rows: one per (cell, level), each score as 'mean [low, high]'."""
    rows = []
    for label, data in cells:
        for level in range(data["ari"].shape[1]):
            row = dict(label, level=level)
            for k in names:
                row[k] = _fmt(*t_interval(data[k][:, level], conf), 1 if k == "lag" else 2)
            rows.append(row)
    return rows


def to_dataset(parts, levels, seeds):
    import xarray as xr

    out = {}
    for name, (axis, values, cells) in parts.items():
        data = {k: np.stack([c[k] for c in cells]) for k in SCORES}
        out[name] = xr.Dataset(
            {k: ((axis, "seed", "level"), v) for k, v in data.items()},
            coords={axis: values, "seed": seeds, "level": np.arange(levels)},
        )
    return out


def plot_speeds(study, speeds, cells, conf):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.6), layout="constrained")
    axes = fig.subplots(1, 3)
    names = (("ari", "ARI, object columns"), ("lag", "tracking lag (steps)"),
             ("kept", "object identity kept"))  # fmt: skip
    for ax, (key, title) in zip(axes, names, strict=True):
        for level in range(cells[0]["ari"].shape[1]):
            stats = np.array([t_interval(c[key][:, level], conf) for c in cells])
            err = np.abs(stats[:, 1:].T - stats[:, 0])
            ax.errorbar(speeds, stats[:, 0], yerr=np.nan_to_num(err), marker="o", ms=3,
                        capsize=2, lw=1, label=f"level {level}")  # fmt: skip
        if key == "ari":
            base = [np.nanmean(c["baseline"]) for c in cells]
            ax.plot(speeds, base, "k:", lw=1, label="trivial baseline")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("speed (grid units per frame)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"mean and {conf:.0%} t interval over {cells[0]['ari'].shape[0]} seeds",
                 fontsize=9)  # fmt: skip
    study.save_figure(fig, "speeds.png")


def plot_smoothing(study, previous, ks, noises, grid, conf):
    """Left: lag against the previous-state weight (first steps_per_frame, least noise);
    right: ARI at the most noise, one line style per steps_per_frame."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    n_levels = grid[ks[0], noises[0]][0]["ari"].shape[1]
    for level in range(n_levels):
        colour = f"C{level}"
        stats = np.array([t_interval(c["lag"][:, level], conf) for c in grid[ks[0], noises[0]]])
        err = np.nan_to_num(np.abs(stats[:, 1:].T - stats[:, 0]))
        left.errorbar(previous, stats[:, 0], yerr=err, color=colour, marker="o", ms=3,
                      capsize=2, lw=1, label=f"level {level}")  # fmt: skip
        for k, style in zip(ks, ("-", "--", ":"), strict=False):
            stats = np.array([t_interval(c["ari"][:, level], conf) for c in grid[k, noises[-1]]])
            err = np.nan_to_num(np.abs(stats[:, 1:].T - stats[:, 0]))
            right.errorbar(previous, stats[:, 0], yerr=err, color=colour, ls=style, marker="o",
                           ms=3, capsize=2, lw=1, label=f"level {level}, {k} steps/frame")  # fmt: skip
    left.set_title(f"lag, {ks[0]} steps/frame, noise {noises[0]:g}", fontsize=9)
    left.set_ylabel("tracking lag (steps)", fontsize=8)
    right.set_title(f"ARI (object columns), noise {noises[-1]:g}", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("previous-state weight", fontsize=8)
        ax.tick_params(labelsize=7)
    left.legend(fontsize=6)
    right.set_ylim(-0.03, 1.0)
    right.legend(fontsize=5, ncol=2, loc="upper center")
    fig.suptitle(f"temporal smoothing: mean and {conf:.0%} t interval over seeds", fontsize=9)
    study.save_figure(fig, "smoothing.png")


def plot_frames(study, kept):
    """Ground truth and islands over the frames of one run, in the island maps' colours
    (:func:`analysis.plot.island_maps`: touching islands differ, the background grey, an
    island keeps its colour while its tracked identity lasts)."""
    import analysis as an

    movie, isl, tr = kept
    frame = np.asarray(isl["frame"].values)
    shown = np.unique(np.linspace(0, movie.n_frames - 1, 4).round().astype(int))
    times = [int(np.nonzero(frame == f)[0][-1]) for f in shown]
    fig = an.plot.island_maps(isl, times=times, panel_size=1.5, name="moving objects")
    study.save_figure(fig, "frames.png")


def main():
    study = _common.setup(__file__, __doc__)
    p = study.params["study"]
    seeds = [int(s) for s in p["seeds"]]
    conf = float(p["confidence"])
    runs = Runs(study)
    levels = int(study.params["config"]["levels"])

    speeds = [float(s) for s in study.params["speeds"]["values"]]
    speed_cells = [stack(runs, seeds, speed=s) for s in speeds]
    sm = study.params["smoothing"]
    previous, noises = [float(x) for x in sm["previous"]], [float(x) for x in sm["noise"]]
    ks = [int(k) for k in sm["steps_per_frame"]]
    k0 = int(p["steps_per_frame"])
    # the same speed per step at every steps_per_frame; noise is redrawn every frame
    smooth = {(k, n): [stack(runs, seeds, speed=float(sm["speed"]) * k / k0, noise=n,
                             previous=pw, k=k) for pw in previous]
              for k in ks for n in noises}  # fmt: skip
    dl = study.params["delay"]
    delays = [int(d) for d in dl["values"]]
    delay_cells = [stack(runs, seeds, speed=float(dl["speed"]), delay=d) for d in delays]

    parts = {
        "speeds": ("speed", speeds, speed_cells),
        "delay": ("delay", delays, delay_cells),
    }
    for (k, n), cells in smooth.items():
        parts[f"smoothing_k{k}_noise_{n:g}"] = ("previous", previous, cells)
    for name, ds in to_dataset(parts, levels, seeds).items():
        study.save_results(ds, f"{name}.nc")
    plot_speeds(study, speeds, speed_cells, conf)
    plot_smoothing(study, previous, ks, noises, smooth, conf)
    first = min(runs.keep, key=lambda key: abs(key[1] - 1.0))
    plot_frames(study, runs.keep[first])

    head = f"mean [{conf:.0%} t interval] over {len(seeds)} seeds"
    print(f"part 1: speeds ({head}); baseline = background one island, others alone")
    names = ("ari", "baseline", "ari_all", "baseline_all", "stale", "lag", "kept")
    cells = [({"speed": s}, c) for s, c in zip(speeds, speed_cells, strict=True)]
    print(_common.table(summary_rows(cells, conf, names)))
    print(f"\npart 2: previous-state weight, {float(sm['speed']) / k0:.3g} grid units per step "
          f"({head})")  # fmt: skip
    cells = [({"steps/frame": k, "noise": n, "previous": pw}, c) for (k, n), row in smooth.items()
             for pw, c in zip(previous, row, strict=True)]  # fmt: skip
    print(_common.table(summary_rows(cells, conf, ("ari", "baseline", "lag", "kept"))))
    print(f"\npart 3: top_down_delay at speed {float(dl['speed']):g} ({head})")
    cells = [({"delay": d}, c) for d, c in zip(delays, delay_cells, strict=True)]
    if len(delay_cells) == 2:
        diff = {k: delay_cells[1][k] - delay_cells[0][k] for k in SCORES}
        cells.append(({"delay": f"{delays[1]}-{delays[0]} (paired)"}, diff))
    print(_common.table(summary_rows(cells, conf, ("ari", "stale", "lag", "kept"))))
    print(f"\n{len(runs.cache)} runs; done in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
