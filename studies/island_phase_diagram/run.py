"""island_phase_diagram: the critical attention sharpness (beta) of each level's islands.

A 3-level GLOM with identity nets settles on synthetic scenes (3 objects x 3 parts x 2
textures on a background). At low beta attention averages across true boundaries and a
level's islands merge; at high beta every boundary holds. The transition is located per
level as the beta where the seed-mean of ``boundary_leak`` (analysis.agreement: the share
of 4-neighbour pairs across a true boundary of the level's labels whose states agree at
the island threshold) crosses 0.5, by refinement: ``[refine]`` in a sweep spec run with
``glomsim.sweep.run`` (in-process), read with ``glomsim.sweep.critical`` (bootstrap
interval over the scene seeds). Parts:

1. the main map, grid 16: radius x attention weight;
2. grid sizes 24 and 32 at one cell;
3. bottom-up and top-down weights at one cell;
4. one net learned with glomsim.train.train, bisected by the same rule (the sweep takes
   random or identity weights only) and read with the same ``critical``;
5. the scenes' code cosines and the mean-field critical beta they predict at radius inf;
6. the old ARI beside the background-free scores and the trivial baselines.

The sweep specs are written to results/*.toml. Intervals: ``critical`` gives percentile
bootstrap intervals over seeds; every other interval is a two-sided Student t interval of
the mean over seeds.

Run: python studies/island_phase_diagram/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _measure as ms  # noqa: E402
import _plots  # noqa: E402

LEVELS = ("textures", "parts", "objects")


t_interval = _common.t_interval


def fmt(mean, lo=math.nan, hi=math.nan, digits=2):
    return _common.fmt_interval(mean, lo, hi, digits, missing="none")


def rlabel(r) -> str:
    return "inf" if math.isinf(float(r)) else f"{float(r):g}"


def critical_rows(c, cell_dims, extra=None):
    """Table rows of a critical Dataset: one per cell and level."""
    rows = []
    stacked = c.stack(cell=[*cell_dims, "level"]) if cell_dims else c.stack(cell=["level"])
    for i in range(stacked.sizes["cell"]):
        one = stacked.isel(cell=i)
        row = dict(extra or {})
        for d in cell_dims:
            v = one[d].item()
            row[d] = rlabel(v) if d == "radius" else f"{v:g}"
        lv = int(one["level"])
        row["level"] = f"{lv} ({LEVELS[lv]})"
        row["critical beta [95% bootstrap]"] = fmt(float(one.critical), float(one.ci_low),
                                                   float(one.ci_high))  # fmt: skip
        row["bracket"] = (f"{float(one.bracket_low):.2f}-{float(one.bracket_high):.2f}"
                          if math.isfinite(float(one.bracket_low)) else "no crossing")  # fmt: skip
        rows.append(row)
    return rows


def main_map(study):
    p = study.params["main"]
    axes = {"beta": [float(b) for b in p["beta"]], "radius": [float(r) for r in p["radius"]],
            "att": [float(a) for a in p["attention"]]}  # fmt: skip
    aliases = {"beta": "attention.beta", "radius": "attention.radius", "att": "mix.attention"}
    return ms.run_sweep(study, ms.spec_dict(study, "main", axes, aliases))


def sizes(study):
    p = study.params["sizes"]
    out = {}
    for g in p["grid"]:
        axes = {"beta": [float(b) for b in p["beta"]], "radius": [float(r) for r in p["radius"]]}
        changes = {"grid": [int(g), int(g)], "mix": {"attention": float(p["attention"])}}
        spec = ms.spec_dict(study, f"grid{int(g)}", axes,
                            {"beta": "attention.beta", "radius": "attention.radius"}, changes)  # fmt: skip
        out[int(g)] = ms.run_sweep(study, spec)
    return out


def mixing(study):
    p = study.params["mixing"]
    axes = {"beta": [float(b) for b in p["beta"]], "bu": [float(x) for x in p["bottom_up"]],
            "td": [float(x) for x in p["top_down"]]}  # fmt: skip
    aliases = {"beta": "attention.beta", "bu": "mix.bottom_up", "td": "mix.top_down"}
    changes = {"attention": {"radius": float(p["radius"])},
               "mix": {"attention": float(p["attention"])}}  # fmt: skip
    return ms.run_sweep(study, ms.spec_dict(study, "mixing", axes, aliases, changes))


def learned(study):
    from glomsim.sweep import critical

    w, hist = ms.train_net(study)
    w.save(study.results / "learned_weights.npz")
    print(f"trained one net: loss {float(hist.total[0]):.3g} -> {float(hist.total[-1]):.3g}")
    ds = ms.refine_learned(study, w)
    r, sp = study.params["refine"], study.params["study"]
    c = critical(ds, axis="beta", measure=r["measure"], crossing=float(r["crossing"]),
                 resamples=int(sp["resamples"]), confidence=float(sp["confidence"]))  # fmt: skip
    return ds, c


def cosines_and_prediction(study, atts):
    """Per seed: the code cosines, and the mean-field critical beta (radius inf) per
    attention weight; printed as t intervals over seeds."""
    from glomsim.scenes import make_scene

    conf = float(study.params["study"]["confidence"])
    cfg0 = study.config()
    thr, cross = (
        float(study.params["islands"]["threshold"]),
        float(study.params["refine"]["crossing"]),
    )
    cos, pred, base = [], {a: [] for a in atts}, []
    for seed in range(int(study.params["study"]["seeds"])):
        scene = make_scene(grid=cfg0.grid, dim=cfg0.dim, levels=cfg0.levels, seed=seed,
                           **study.params["scene"])  # fmt: skip
        cos.append(ms.code_cosines(scene))
        base.append(ms.baselines(scene))
        for a in atts:
            cfg = study.config(mix={"attention": float(a)}, attention={"radius": math.inf})
            pred[a].append(ms.predicted_critical(scene, cfg, thr, cross))
    rows = []
    for k in ms.PAIR_CLASSES:
        m, lo, hi = t_interval([c[k] for c in cos], conf)
        rows.append({"pair": k, "cosine [95% t]": fmt(m, lo, hi, 3),
                     "weight vs same texture": f"exp(-{1 - m:.2f} beta)"})  # fmt: skip
    print("\ncosines between texture codes (one part / one object / other objects / "
          "background), and of noisy tokens of one texture, over scene seeds")  # fmt: skip
    print(_common.table(rows))
    pred = {a: np.stack(v) for a, v in pred.items()}
    return cos, pred, base


def score_table(study, ds, base):
    """The old ARI beside the background-free scores and the baselines, att = config's."""
    conf = float(study.params["study"]["confidence"])
    att = float(study.params["config"]["mix"]["attention"])
    sub = ds.sel(att=att).where(ds.status.sel(att=att) == 1)
    rows = []
    grid_betas = [float(b) for b in study.params["main"]["beta"]]
    for rad in sub.radius.values:
        for b in grid_betas:
            one = sub.sel(radius=rad, beta=b)
            row = {"radius": rlabel(rad), "beta": f"{b:g}"}
            for lv in (1, 2):
                for name, var in (("ARI", "ari"), ("ARI obj", "ari_objects"),
                                  ("leak", "boundary_leak")):  # fmt: skip
                    row[f"{name} L{lv}"] = fmt(*t_interval(one[var].sel(level=lv).values, conf))
            rows.append(row)
    for (name, scored), _ in base[0].items():
        vals = np.stack([b[name, scored] for b in base])
        row = {"radius": "baseline", "beta": f"{name}, {scored}"}
        for lv in (1, 2):
            row[f"{'ARI' if scored == 'all columns' else 'ARI obj'} L{lv}"] = fmt(
                *t_interval(vals[:, lv], conf)
            )
        rows.append(row)
    print(f"\nscores at the grid's beta, attention weight {att:g}, grid 16 (mean [95% t] over "
          "seeds): the old ARI (all columns), ARI over object columns, boundary leak; "
          "baselines: trivial partitions scored the same way")  # fmt: skip
    print(_common.table(rows))


def old_claim(study, ds):
    """The old README: 'beta <= 1: level 2 is one island at every radius'."""
    att = float(study.params["config"]["mix"]["attention"])
    rows = []
    for rad in ds.radius.values:
        for b in (0.0, 1.0):
            if b not in ds.beta.values:
                continue
            one = ds.sel(radius=rad, beta=b, att=att)
            cnt = one.island_count.sel(level=2).values
            ari = one.ari.sel(level=2).values
            rows.append({"radius": rlabel(rad), "beta": f"{b:g}",
                         "L2 islands per seed": " ".join(str(int(x)) for x in cnt),
                         "L2 ARI per seed": " ".join(f"{x:.2f}" for x in ari)})  # fmt: skip
    print(f"\nlevel 2 at beta 0 and 1 per seed (attention weight {att:g}): old claim 'one "
          "island at every radius'")  # fmt: skip
    print(_common.table(rows))


def spread_table(study, ds, c):
    """Seed spread inside the transition: per-seed leak at the evaluated beta nearest the
    critical one (attention weight of [config])."""
    att = float(study.params["config"]["mix"]["attention"])
    rows = []
    for rad in ds.radius.values:
        for lv in (1, 2):
            cb = float(c.critical.sel(radius=rad, att=att, level=lv))
            if not math.isfinite(cb):
                continue
            one = ds.sel(radius=rad, att=att)
            done = one.status.all("seed").values == 1
            betas = one.beta.values[done]
            b = float(betas[np.argmin(np.abs(betas - cb))])
            leak = one.boundary_leak.sel(beta=b, level=lv).values
            rows.append({"radius": rlabel(rad), "level": lv, "critical": f"{cb:.2f}",
                         "beta": f"{b:.2f}", "leak per seed": " ".join(f"{x:.2f}" for x in leak),
                         "min-max": f"{leak.min():.2f}-{leak.max():.2f}"})  # fmt: skip
    print("\nseed spread inside the transition: leak per seed at the evaluated beta nearest "
          f"the critical one (attention weight {att:g})")  # fmt: skip
    print(_common.table(rows))


def prediction_table(study, c, pred, cos):
    """Radius inf: the mean-field critical beta beside the refined one, and the attention
    weights (relative to a same-texture neighbour) at the refined beta, from the measured
    mean code cosines."""
    conf = float(study.params["study"]["confidence"])
    gap = {k: 1 - float(np.mean([x[k] for x in cos])) for k in ms.PAIR_CLASSES}
    rows = []
    for a, arr in pred.items():
        for lv in range(1, arr.shape[1]):
            got = c.sel(radius=math.inf, att=a, level=lv)
            m, lo, hi = t_interval(arr[:, lv], conf)
            b = float(got.critical)
            row = {"att": f"{a:g}", "level": f"{lv} ({LEVELS[lv]})",
                   "mean-field beta_c [95% t]": fmt(m, lo, hi),
                   "refined beta_c [95% bootstrap]": fmt(b, float(got.ci_low),
                                                         float(got.ci_high))}  # fmt: skip
            for k in ("same part", "same object", "background"):
                row[f"w {k}"] = f"{math.exp(-gap[k] * b):.4f}" if math.isfinite(b) else ""
            rows.append(row)
    print("\nradius inf: the critical beta the mean-field model predicts from the codes "
          "(per seed, t interval) beside the refined one; w = exp(-(1 - cos) beta_c), the "
          "weight of a neighbour of that class relative to a same-texture one at the refined "
          "beta_c (mean code cosines)")  # fmt: skip
    print(_common.table(rows))


def main():
    study = _common.setup(__file__, __doc__)
    atts = [float(a) for a in study.params["main"]["attention"]]
    cos, pred, base = cosines_and_prediction(study, atts)

    ds, c = main_map(study)
    study.save_results(c, "critical_main.nc")
    print(f"\npart 1, grid 16: critical beta where the seed-mean boundary leak crosses "
          f"{study.params['refine']['crossing']:g} ({ds.attrs['refine_rounds']} refinement "
          f"rounds, {ds.attrs['sweep_done']} runs)")  # fmt: skip
    print(_common.table(critical_rows(c, ["radius", "att"])))
    if math.inf in list(ds.radius.values):
        prediction_table(study, c, pred, cos)
    spread_table(study, ds, c)
    old_claim(study, ds)
    score_table(study, ds, base)

    size_out = sizes(study)
    rows = []
    for g, (_dsg, cg) in size_out.items():
        study.save_results(cg, f"critical_grid{g}.nc")
        rows += critical_rows(cg, ["radius"], {"grid": g})
    att0 = float(study.params["sizes"]["attention"])
    for rad in study.params["sizes"]["radius"]:
        if float(rad) in list(ds.radius.values) and att0 in list(ds.att.values):
            one = c.sel(radius=float(rad), att=att0).expand_dims(radius=[float(rad)])
            rows = critical_rows(one, ["radius"], {"grid": 16}) + rows
    print(f"\npart 2: grid sizes, attention weight {att0:g}")
    print(_common.table(rows))

    dsm, cm = mixing(study)
    study.save_results(cm, "critical_mixing.nc")
    print(f"\npart 3: bottom-up (bu) and top-down (td) weights, radius "
          f"{study.params['mixing']['radius']:g}, attention weight "
          f"{study.params['mixing']['attention']:g}")  # fmt: skip
    print(_common.table(critical_rows(cm, ["bu", "td"])))

    dsl, cl = learned(study)
    study.save_results(cl, "critical_learned.nc")
    study.save_results(dsl, "learned_points.nc")
    rows = critical_rows(cl, ["radius"], {"nets": "learned"})
    for rad in cl.radius.values:
        if float(rad) in list(ds.radius.values):
            one = c.sel(radius=float(rad), att=float(study.params["learned"]["attention"]))
            rows = critical_rows(one.expand_dims(radius=[float(rad)]), ["radius"],
                                 {"nets": "identity"}) + rows  # fmt: skip
    print(f"\npart 4: identity against learned nets, attention weight "
          f"{study.params['learned']['attention']:g}")  # fmt: skip
    print(_common.table(rows))
    leak_rows = []
    conf = float(study.params["study"]["confidence"])
    for rad in dsl.radius.values:
        for b in dsl.beta.values:
            one = dsl.sel(radius=rad, beta=b)
            if int(one.status[0]) != 1:
                continue
            row = {"radius": rlabel(rad), "beta": f"{b:.2f}"}
            for lv in range(dsl.sizes["level"]):
                row[f"leak L{lv}"] = fmt(*t_interval(one.boundary_leak.sel(level=lv), conf))
                row[f"ARI obj L{lv}"] = fmt(*t_interval(one.ari_objects.sel(level=lv), conf))
            leak_rows.append(row)
    print("\nlearned net: every evaluated beta (mean [95% t] over seeds)")
    print(_common.table(leak_rows))

    _plots.critical_figure(study, c, pred)
    _plots.comparison_figure(study, c, size_out, cm, cl)
    _plots.leak_figure(study, ds, c)
    _plots.maps_figure(study, c)
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
