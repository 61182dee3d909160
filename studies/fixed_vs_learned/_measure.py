"""Measurements and intervals of the fixed_vs_learned study (run.py draws and prints them).

Every held-out simulation gives, per recorded step and level: the ARI of its islands
against the truth on all columns and on the objects' columns only, the island count, the
parse-tree score against the true parents (:func:`analysis.hierarchy.parse_truth`, all
columns and objects only), and per level the settling step (:func:`analysis.convergence`,
read from the per-step change every run records, thinned or not). The trivial baselines
of :func:`analysis.agreement` and :func:`analysis.hierarchy.parse_truth` depend on the
scene only and are kept per scene.

Intervals: percentile bootstrap over held-out scenes x weight seeds, the two resampled
independently (a weight set with one seed, the identity nets, resamples scenes only).
"""

from __future__ import annotations

import numpy as np

#: Per-run variables on (weights, scene, threshold, time, level).
RUN_VARS = ("ari", "ari_objects", "count", "parent", "parent_objects")
#: Per-scene baselines on (scene, baseline, level): name -> (source variable, objects only).
BASE_VARS = {
    "base_ari": ("ari", False),
    "base_ari_objects": ("ari", True),
    "base_parent": ("parent", False),
    "base_parent_objects": ("parent", True),
}


def measure_one(ds, thresholds, isl):
    """(per-run values {name: (threshold, time, level)}, settled_step (level,), baselines
    {name: DataArray (baseline, level)}) of one simulation."""
    import analysis as an
    from analysis.hierarchy import parse_truth

    values = {name: [] for name in RUN_VARS}
    base = {}
    for thr in thresholds:
        found = an.islands(ds, threshold=thr, connectivity=isl["connectivity"],
                           radius=isl["radius"])  # fmt: skip
        every = an.agreement(ds, islands=found)
        objects = an.agreement(ds, islands=found, objects_only=True)
        tree = parse_truth(found.assign(label=ds.label))
        tree_objects = parse_truth(found.assign(label=ds.label), objects_only=True)
        got = {
            "ari": every.ari,
            "ari_objects": objects.ari,
            "count": found["count"],
            "parent": tree.parent_score,
            "parent_objects": tree_objects.parent_score,
        }
        for name, v in got.items():
            values[name].append(v.transpose("time", "level").values.astype(np.float64))
        if not base:
            base = {
                "base_ari": every.baseline_ari,
                "base_ari_objects": objects.baseline_ari,
                "base_parent": tree.baseline_parent_score,
                "base_parent_objects": tree_objects.baseline_parent_score,
            }
    settled = an.convergence(ds).settled_step.values
    return {k: np.stack(v) for k, v in values.items()}, settled, base


def evaluate(cfg, weights, held_out, isl):
    """The study's measurements as one Dataset, and the simulations of scene 0 by weight
    set (for the island maps)."""
    import xarray as xr

    import glomsim as gs

    thresholds = [isl["threshold"], *isl.get("also_thresholds", [])]
    keys = list(weights)
    out, settled, first, base, times = None, None, {}, {}, None
    for k, key in enumerate(keys):
        for s, scene in enumerate(held_out):
            ds = gs.simulate(cfg, weights[key], inputs=scene, record_every=isl["record_every"])
            if s == 0:
                first[key] = ds
            values, steps, scene_base = measure_one(ds, thresholds, isl)
            if out is None:
                times = ds["time"].values
                shape = (len(keys), len(held_out), *values["ari"].shape)
                out = {name: np.full(shape, np.nan) for name in RUN_VARS}
                settled = np.full((len(keys), len(held_out), cfg.levels), -1, dtype=np.int64)
            for name in RUN_VARS:
                out[name][k, s] = values[name]
            settled[k, s] = steps
            if k == 0:
                for name, da in scene_base.items():
                    base.setdefault(name, []).append(da)
    run_dims = ("weights", "scene", "threshold", "time", "level")
    res = xr.Dataset(
        {name: (run_dims, v) for name, v in out.items()},
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
    res["settled_step"] = (("weights", "scene", "level"), settled)
    for name, das in base.items():
        stacked = xr.concat(das, dim="scene").transpose("scene", "baseline", "level")
        res[name] = (("scene", f"{name}_baseline", "level"), stacked.values)
        res = res.assign_coords({f"{name}_baseline": stacked["baseline"].values})
    res["true_count"] = (
        ("scene", "level"),
        np.array([[len(np.unique(lab)) for lab in sc.labels] for sc in held_out]),
    )
    _describe(res)
    res.attrs.update(
        title="fixed vs learned vs identity weights: islands against held-out ground truth",
        glomsim_config=cfg.to_json(),
        intervals="percentile bootstrap over held-out scenes x weight seeds",
    )
    return res, first


def _describe(res):
    text = {
        "ari": "adjusted Rand index of the islands against the truth, every column",
        "ari_objects": "the same on the objects' columns only (analysis.agreement "
        "objects_only=True: the background left out)",
        "count": "islands found",
        "parent": "analysis.hierarchy.parse_truth parent_score: share of columns whose "
        "island at level l lies inside the island at level l+1 matched to their true parent",
        "parent_objects": "the same over the objects' columns only",
        "settled_step": "analysis.convergence settled_step (-1: not settled by the last step)",
        "true_count": "distinct ground-truth labels per level",
    }
    for name in BASE_VARS:
        text[name] = f"{BASE_VARS[name][0]} of the trivial partitions of the scene"
    for name, description in text.items():
        res[name].attrs.update(description=description, units="1")


# ----- intervals ------------------------------------------------------------------------


def bootstrap(values, n_boot, seed, confidence):
    """(mean, low, high) of the mean of ``values`` (weight seed, scene), percentile
    bootstrap resampling seeds and scenes independently (scenes only with one seed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    mean = float(v.mean())
    n_seed, n_scene = v.shape
    if n_scene < 2:
        return mean, np.nan, np.nan
    rng = np.random.default_rng(seed)
    si = rng.integers(0, n_seed, size=(n_boot, n_seed))
    ci = rng.integers(0, n_scene, size=(n_boot, n_scene))
    boots = v[si[:, :, None], ci[:, None, :]].mean(axis=(1, 2))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return mean, float(lo), float(hi)


def arm_values(res, var, arm, threshold, level, time=-1):
    """(seed, scene) array of ``var`` for one weight set."""
    da = res[var].where(res.arm == arm, drop=True)
    if "threshold" in da.dims:
        da = da.sel(threshold=threshold)
    if "time" in da.dims:
        da = da.isel(time=time)
    return da.sel(level=level).transpose("weights", "scene").values


def paired(res, var, arm, other, threshold, level):
    """(seed, scene) differences arm - other: by seed and scene when both have the same
    seeds, else (one side a single weight set, the identity nets) by scene."""
    a = arm_values(res, var, arm, threshold, level)
    b = arm_values(res, var, other, threshold, level)
    seeds_a = res.seed.where(res.arm == arm, drop=True).values
    seeds_b = res.seed.where(res.arm == other, drop=True).values
    if len(seeds_b) == 1:
        return a - b[0][None, :]
    if len(seeds_a) == 1:
        return a[0][None, :] - b
    order = {int(s): k for k, s in enumerate(seeds_b)}
    return a - b[[order[int(s)] for s in seeds_a]]
