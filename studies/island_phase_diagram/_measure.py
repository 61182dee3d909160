"""The measurements of island_phase_diagram: sweep specs, the learned nets' bisection, the
scenes' code cosines, the mean-field prediction of the critical beta and the baselines.

run.py prints and plots what these return.
"""

from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------------------
# sweep specs (written to results/ as TOML) and their runs
# ----------------------------------------------------------------------------------------


def spec_dict(study, name, axes, aliases, base_changes=None, refine=True):
    """A sweep spec (dict) from study.toml: [config] as the base, identity nets, the scene,
    the islands and, with ``refine``, the [refine] table over ``beta``."""
    p = study.params
    base = dict(p["config"])
    for key, value in (base_changes or {}).items():
        base[key] = dict(base[key], **value) if isinstance(value, dict) else value
    spec = {
        "sweep": {"name": name, "mode": "grid", "seeds": int(p["study"]["seeds"])},
        "aliases": aliases,
        "axes": axes,
        "base": base,
        "weights": {"kind": "identity"},
        "scene": dict(p["scene"]),
        "keep": {"record_every": int(p["study"]["record_every"]), "islands": dict(p["islands"])},
    }
    if refine:
        spec["refine"] = dict(p["refine"], axis="beta")
    return spec


def run_sweep(study, spec: dict):
    """Write the spec as TOML under results/, run it in this process, return
    (merged Dataset, critical Dataset)."""
    from glomsim.sweep import critical, load_spec, run

    s = load_spec(spec)
    name = spec["sweep"]["name"]
    (study.results / f"{name}.toml").write_text(s.to_toml())
    store = study.results / f"{name}.zarr"
    ds = run(s, str(store), client="sync", resume=False, progress=False)
    c = critical(ds, resamples=int(study.params["study"]["resamples"]),
                 confidence=float(study.params["study"]["confidence"]))  # fmt: skip
    return ds, c


# ----------------------------------------------------------------------------------------
# learned nets: the sweep takes random or identity weights only, so their beta is bisected
# here, by the rule of glomsim.sweep.refine, with the sweep's own measure()
# ----------------------------------------------------------------------------------------


def train_net(study):
    """One net trained with glomsim.train.train on scenes of the study's kind."""
    import glomsim as gs
    from glomsim.train import make_training_scenes, train

    lp = study.params["learned"]
    cfg = study.config(lp["config"])
    scenes = make_training_scenes(cfg, int(lp["train_scenes"]), int(lp["train_seed"]),
                                  **study.params["scene"])  # fmt: skip
    start = gs.random_weights(cfg, int(lp["weight_seed"]))
    w, hist = train(cfg, scenes, weights=start, seed=int(lp["weight_seed"]), **lp["training"])
    return w, hist


def _measure_point(study, spec, w, radius, beta):
    """{measure: (seeds, levels)} of the learned net at one (radius, beta), all seeds as one
    ensemble, measured by glomsim.sweep.runs.measure (the sweep's measures)."""
    import glomsim as gs
    from glomsim.scenes import make_scene
    from glomsim.sweep.runs import measure

    att = study.params["learned"]["attention"]
    cfg = study.config(attention={"beta": float(beta), "radius": float(radius)},
                       mix={"attention": float(att)})  # fmt: skip
    seeds = spec.seeds
    scenes = [make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=int(s),
                         **study.params["scene"]) for s in seeds]  # fmt: skip
    ens = gs.simulate_ensemble(cfg, [w] * len(seeds), inputs=scenes,
                               record_every=spec.keep["record_every"])  # fmt: skip
    out = {}
    for m, scene in enumerate(scenes):
        ds = ens.isel(member=m, drop=True)
        got = measure(spec, cfg.replace(seed=int(seeds[m])), w, ds, scene)
        for k in ("boundary_leak", "ari_objects", "ari", "island_count"):
            out.setdefault(k, []).append(np.asarray(got[k], dtype=np.float64))
    return {k: np.stack(v) for k, v in out.items()}


def refine_learned(study, w):
    """Bisection of beta for the learned net, per radius, by [refine]'s rule (first
    bracket of the seed-mean per level, midpoints of those wider than the tolerance);
    returns the Dataset (radius, beta, seed, level) that glomsim.sweep.critical reads."""
    import xarray as xr

    from glomsim.sweep import load_spec
    from glomsim.sweep.refine import first_crossing

    p, r = study.params, study.params["refine"]
    lp = p["learned"]
    spec = load_spec(spec_dict(study, "learned_measures", {}, {}, refine=False))
    radii = [float(x) for x in lp["radius"]]
    points = {rad: {} for rad in radii}
    for rad in radii:
        for b in lp["beta"]:
            points[rad][float(b)] = _measure_point(study, spec, w, rad, b)
        for _ in range(int(r["max_rounds"])):
            xs = sorted(points[rad])
            means = np.stack([points[rad][x][r["measure"]].mean(0) for x in xs], -1)
            _, lo, hi = first_crossing(np.array(xs), means, float(r["crossing"]))
            mids = {(a + b) / 2 for a, b in zip(lo, hi, strict=True)
                    if math.isfinite(a) and b - a > float(r["tolerance"])}  # fmt: skip
            if not mids:
                break
            for mid in sorted(mids):
                points[rad][mid] = _measure_point(study, spec, w, rad, mid)
    betas = sorted({b for rad in radii for b in points[rad]})
    n_seeds, levels = len(spec.seeds), int(p["config"]["levels"])
    shape = (len(radii), len(betas), n_seeds)
    status = np.full(shape, -1, np.int8)
    data = {k: np.full(shape + (levels,), np.nan) for k in ("boundary_leak", "ari_objects",
                                                            "ari", "island_count")}  # fmt: skip
    for i, rad in enumerate(radii):
        for j, b in enumerate(betas):
            if b in points[rad]:
                status[i, j] = 1
                for k in data:
                    data[k][i, j] = points[rad][b][k]
    dims = ("radius", "beta", "seed", "level")
    return xr.Dataset(
        {"status": (dims[:3], status)} | {k: (dims, v) for k, v in data.items()},
        coords={"radius": radii, "beta": betas, "seed": list(spec.seeds),
                "level": np.arange(levels)},
        attrs={"sweep_axes": '["radius", "beta"]'},
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# the scene's cosines and the mean-field prediction
# ----------------------------------------------------------------------------------------

PAIR_CLASSES = ("same texture (tokens)", "same part", "same object", "other object",
                "background")  # fmt: skip


def texture_tree(scene):
    """(part, object) of each texture label, from the scene's labels."""
    lab = scene.labels
    n = scene.codes.shape[0]
    part, obj = np.zeros(n, int), np.zeros(n, int)
    for t in range(n):
        cols = lab[0] == t
        part[t], obj[t] = lab[1][cols][0], lab[2][cols][0]
    return part, obj


def code_cosines(scene):
    """Mean cosine of each PAIR_CLASSES class: noisy tokens of one texture; texture codes
    of one part; of one object but other parts; of other objects; object against the
    background's code."""
    c = scene.codes / np.linalg.norm(scene.codes, axis=1, keepdims=True)
    g = c @ c.T
    part, obj = texture_tree(scene)
    n = len(part)
    iu = np.triu_indices(n, 1)
    same_part = (part[:, None] == part[None]) & (obj[:, None] > 0)
    same_obj = (obj[:, None] == obj[None]) & ~same_part & (obj[:, None] > 0)
    other = (obj[:, None] != obj[None]) & (obj[:, None] > 0) & (obj[None] > 0)
    bg = (obj[:, None] == 0) ^ (obj[None] == 0)
    tok = scene.tokens / np.linalg.norm(scene.tokens, axis=1, keepdims=True)
    lab0 = scene.labels[0]
    within = []
    for t in range(n):
        x = tok[lab0 == t]
        if len(x) > 1:
            s = x @ x.T
            within.append((s.sum() - len(x)) / (len(x) * (len(x) - 1)))
    out = [float(np.mean(within))]
    out += [float(g[iu][m[iu]].mean()) for m in (same_part, same_obj, other, bg)]
    return dict(zip(PAIR_CLASSES, out, strict=True))


def _boundary_pairs(scene):
    """(texture a, texture b, count) of 4-neighbour column pairs with different textures."""
    rows, cols = scene.grid
    lab = scene.labels[0].reshape(rows, cols)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    keep = a != b
    return a[keep], b[keep]


def mean_field_leak(scene, cfg, beta, threshold):
    """Predicted boundary_leak per level at radius inf, from the texture codes alone.

    Every column of a texture holds one state (noise left out), so the update rule of
    docs/update-rule.md with identity nets becomes one over the textures: level 0 reads
    the texture's code (unnormalised, as the tokens are), level l >= 1 the texture's state
    at level l - 1, top-down the state at l + 1, attention the softmax over all columns,
    i.e. texture h weighted by its column count n_h exp(beta cos). The states' cosines
    then decide which true boundaries leak (cosine >= threshold)."""
    mix = cfg.mix if not isinstance(cfg.mix, (list, tuple)) else cfg.mix[0]
    w_bu, w_td, w_prev, w_att = (float(mix.bottom_up), float(mix.top_down),
                                 float(mix.previous), float(mix.attention))  # fmt: skip
    L = cfg.levels
    codes = scene.codes
    n_tex = codes.shape[0]
    sizes = np.bincount(scene.labels[0], minlength=n_tex).astype(float)
    s = np.zeros((L, n_tex, codes.shape[1]))
    for _ in range(cfg.steps):
        norm = np.linalg.norm(s, axis=2, keepdims=True)
        unit = np.divide(s, norm, out=np.zeros_like(s), where=norm > 0)
        new = np.empty_like(s)
        for lv in range(L):
            bu = codes if lv == 0 else s[lv - 1]
            logits = beta * unit[lv] @ unit[lv].T
            logits -= logits.max(1, keepdims=True)
            a = sizes[None] * np.exp(logits)
            att = (a / a.sum(1, keepdims=True)) @ s[lv]
            x = w_bu * bu + w_prev * s[lv] + w_att * att
            if lv < L - 1:
                x = x + w_td * s[lv + 1]
            new[lv] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        done = np.abs(new - s).max() < 1e-9  # settled: the rest of the steps change nothing
        s = new
        if done:
            break
    a, b = _boundary_pairs(scene)
    leak = np.zeros(L)
    for lv in range(L):
        truth = scene.labels[lv]
        tex_label = np.array([truth[scene.labels[0] == t][0] for t in range(n_tex)])
        cross = tex_label[a] != tex_label[b]
        cos = np.sum(s[lv, a] * s[lv, b], axis=1)
        leak[lv] = float(np.mean(cos[cross] >= threshold)) if cross.any() else math.nan
    return leak


def predicted_critical(scene, cfg, threshold, crossing, scan=(0, 2, 4, 6, 8, 12, 20, 40), tol=0.1):
    """Per level: the first beta where the mean-field leak crosses ``crossing`` (the first
    bracket of a scan, then bisection in it; NaN where the scan brackets none)."""
    leaks = np.stack([mean_field_leak(scene, cfg, float(b), threshold) for b in scan])
    out = np.full(cfg.levels, math.nan)
    for lv in range(cfg.levels):
        above = leaks[:, lv] >= crossing
        k = next((i for i in range(1, len(scan)) if above[i - 1] and not above[i]), None)
        if k is None:
            continue
        a, b = float(scan[k - 1]), float(scan[k])
        while b - a > tol:
            mid = (a + b) / 2
            if mean_field_leak(scene, cfg, mid, threshold)[lv] >= crossing:
                a = mid
            else:
                b = mid
        out[lv] = (a + b) / 2
    return out


# ----------------------------------------------------------------------------------------
# trivial baselines: scores of partitions that know nothing of the dynamics
# ----------------------------------------------------------------------------------------


def baselines(scene):
    """{(baseline, scored): (levels,)} ARIs of "background one island, every other column
    alone" and of the texture partition, over all columns and over object columns."""
    from analysis import adjusted_rand_index

    lab = scene.labels
    obj = lab[2] > 0
    trivial = np.where(obj, 1 + np.arange(lab.shape[1]), 0)
    out = {}
    for name, pred in (("background + singletons", trivial), ("textures", lab[0])):
        for scored, keep in (("all columns", np.ones_like(obj)), ("objects only", obj)):
            out[name, scored] = np.array([adjusted_rand_index(pred[keep], lab[lv][keep])
                                          for lv in range(3)])  # fmt: skip
    return out
