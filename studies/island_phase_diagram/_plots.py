"""The figures of island_phase_diagram (run.py calls them after printing its tables)."""

from __future__ import annotations

import math

import _common
import numpy as np

MARKERS = ("o", "s", "^")
STYLES = ("-", "--", ":")


def _rpos(radii):
    return np.arange(len(radii)), ["inf" if math.isinf(r) else f"{r:g}" for r in radii]


def _err(one):
    est = np.asarray(one.critical, float)
    lo, hi = np.asarray(one.ci_low, float), np.asarray(one.ci_high, float)
    return est, np.nan_to_num(np.abs(np.stack([est - lo, hi - est])))


def _levels_with_crossing(c):
    return [lv for lv in c.level.values if np.isfinite(c.critical.sel(level=lv)).any()]


def critical_figure(study, c, pred):
    """Critical beta against radius: one panel per level, one line per attention weight;
    at radius inf the mean-field prediction (open markers)."""
    from matplotlib.figure import Figure
    from scipy.stats import t

    radii = [float(r) for r in c.radius.values]
    x, xl = _rpos(radii)
    levels = _levels_with_crossing(c) or [int(c.level.values[-1])]
    fig = Figure(figsize=(3.3 * len(levels) + 0.3, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(levels), sharey=True))
    conf = float(study.params["study"]["confidence"])
    for ax, lv in zip(axes, levels, strict=True):
        for k, a in enumerate(c.att.values):
            one = c.sel(att=a, level=lv)
            est, err = _err(one)
            ax.errorbar(x + 0.06 * (k - 1), est, yerr=err, marker=MARKERS[k % 3], ms=4,
                        capsize=2, lw=1, color=f"C{k}", label=f"attention weight {a:g}")  # fmt: skip
            if a in pred and math.isinf(radii[-1]):
                v = pred[a][:, lv]
                v = v[np.isfinite(v)]
                if v.size > 1:
                    half = t.ppf((1 + conf) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
                    ax.errorbar(x[-1] + 0.25 + 0.06 * (k - 1), v.mean(), yerr=half, marker="*",
                                mfc="none", ms=7, capsize=2, color=f"C{k}", ls="none",
                                label="mean-field prediction" if k == 0 else None)  # fmt: skip
        ax.set_xticks(x, xl)
        ax.set_xlim(-0.4, len(x) - 0.4 + 0.3)
        ax.set_xlabel("attention radius (all levels)", fontsize=8)
        ax.set_title(f"level {lv} ({('textures', 'parts', 'objects')[lv]})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("critical beta (leak crosses 0.5)", fontsize=8)
    axes[0].legend(fontsize=6, loc="upper left")
    n = c.attrs.get("resamples", "")
    fig.suptitle(f"critical beta per level, grid 16, {conf:.0%} bootstrap intervals over "
                 f"seeds ({n} resamples)\nno point = no crossing in the beta range; stars: "
                 "mean-field prediction at radius inf (t interval)", fontsize=8)  # fmt: skip
    study.save_figure(fig, "phase_diagram.png")


def comparison_figure(study, c, size_out, cm, cl):
    """Grid size, bottom-up / top-down weights, identity against learned nets."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.0), layout="constrained")
    ax_g, ax_m, ax_n = fig.subplots(1, 3, sharey=True)
    sp = study.params
    att = float(sp["sizes"]["attention"])
    rad = float(sp["sizes"]["radius"][0])
    main_ok = rad in list(c.radius.values) and att in list(c.att.values)
    for lv in (1, 2):
        xs, ests, errs = [], [], []
        if main_ok:
            est, err = _err(c.sel(radius=rad, att=att, level=lv))
            xs.append(int(sp["config"]["grid"][0]))
            ests.append(float(est))
            errs.append(err[:, None])
        for g, (_, cg) in size_out.items():
            est, err = _err(cg.sel(radius=rad, level=lv))
            xs.append(g)
            ests.append(float(est))
            errs.append(err[:, None])
        ax_g.errorbar(xs, ests, yerr=np.concatenate(errs, 1), marker=MARKERS[lv], capsize=2,
                      lw=1, color=f"C{lv}", label=f"level {lv}")  # fmt: skip
    ax_g.set_xlabel("grid side (columns)", fontsize=8)
    ax_g.set_title(f"grid size (radius {rad:g}, attention {att:g})", fontsize=9)
    ax_g.set_xticks(sorted({int(sp["config"]["grid"][0]), *size_out}))
    # mixing: the cells of the mixing sweep, and bu = td = 1 from the main map
    mrad = float(sp["mixing"]["radius"])
    matt = float(sp["mixing"]["attention"])
    labels = [f"bu {b:g}\ntd {d:g}" for b in cm.bu.values for d in cm.td.values]
    for lv in (1, 2):
        est, err = _err(cm.sel(level=lv).stack(cell=["bu", "td"]))
        xs = list(range(len(labels)))
        if mrad in list(c.radius.values) and matt in list(c.att.values):
            e0, r0 = _err(c.sel(radius=mrad, att=matt, level=lv))
            est, err = np.append(est, e0), np.concatenate([err, r0[:, None]], 1)
            xs.append(len(labels))
        ax_m.errorbar(np.array(xs) + 0.08 * (lv - 1.5), est, yerr=err, marker=MARKERS[lv],
                      capsize=2, ls="none", color=f"C{lv}", label=f"level {lv}")  # fmt: skip
    ax_m.set_xticks(range(len(labels) + 1), labels + ["bu 1\ntd 1"], fontsize=6)
    ax_m.set_title(f"bottom-up / top-down weight (radius {mrad:g})", fontsize=9)
    # nets
    latt = float(sp["learned"]["attention"])
    radii = [float(r) for r in cl.radius.values]
    x, xl = _rpos(radii)
    for lv in (1, 2):
        if all(r in list(c.radius.values) for r in radii):
            est, err = _err(c.sel(att=latt, level=lv).sel(radius=radii))
            ax_n.errorbar(x - 0.05, est, yerr=err, marker=MARKERS[lv], capsize=2, lw=1,
                          color=f"C{lv}", label=f"identity, level {lv}")  # fmt: skip
        est, err = _err(cl.sel(level=lv))
        ax_n.errorbar(x + 0.05, est, yerr=err, marker=MARKERS[lv], mfc="none", capsize=2,
                      lw=1, ls="--", color=f"C{lv}", label=f"learned, level {lv}")  # fmt: skip
    ax_n.set_xticks(x, xl)
    ax_n.set_xlim(-0.5, len(x) - 0.5)
    ax_n.set_xlabel("attention radius", fontsize=8)
    ax_n.set_title(f"identity vs learned nets (attention {latt:g})", fontsize=9)
    for ax in (ax_g, ax_m, ax_n):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    ax_g.set_ylabel("critical beta", fontsize=8)
    fig.suptitle("critical beta (boundary leak crosses 0.5), 95% bootstrap intervals over "
                 "seeds; a missing point = no crossing", fontsize=8)  # fmt: skip
    study.save_figure(fig, "comparison.png")


def leak_figure(study, ds, c):
    """Boundary leak against beta at the config's attention weight: every evaluated beta,
    mean and every seed, per radius; the critical value and its interval shaded."""
    from matplotlib.figure import Figure

    att = float(study.params["config"]["mix"]["attention"])
    radii = [float(r) for r in ds.radius.values]
    fig = Figure(figsize=(2.5 * len(radii) + 0.3, 2.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(radii), sharey=True))
    for ax, rad in zip(axes, radii, strict=True):
        one = ds.sel(radius=rad, att=att)
        done = (one.status == 1).all("seed").values
        betas = one.beta.values[done]
        for lv in (1, 2):
            leak = one.boundary_leak.sel(level=lv).values[done]  # (beta, seed)
            ax.plot(betas, leak, color=f"C{lv}", lw=0.4, alpha=0.35)
            ax.plot(betas, leak.mean(1), color=f"C{lv}", marker=MARKERS[lv], ms=3, lw=1.3,
                    label=f"level {lv} mean")  # fmt: skip
            cc = c.sel(radius=rad, att=att, level=lv)
            if np.isfinite(float(cc.critical)):
                ax.axvspan(float(cc.ci_low), float(cc.ci_high), color=f"C{lv}", alpha=0.15)
                ax.axvline(float(cc.critical), color=f"C{lv}", lw=0.8, ls="--")
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_xlim(-0.3, float(betas.max()) + 0.3)
        ax.set_xlabel("beta", fontsize=8)
        ax.set_title(f"radius {'inf' if math.isinf(rad) else f'{rad:g}'}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("boundary leak", fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"boundary leak at every evaluated beta (thin: one seed each), grid 16, "
                 f"attention {att:g}\ndashed: critical beta, band: its 95% bootstrap interval; "
                 "dotted: the crossing value 0.5", fontsize=8)  # fmt: skip
    study.save_figure(fig, "leak_curves.png")


def maps_figure(study, c):
    """Islands of levels 1 and 2 either side of level 1's critical beta (scene seed 0)."""
    from matplotlib.figure import Figure

    import analysis as an
    import glomsim as gs
    from glomsim.scenes import make_scene

    mp = study.params["maps"]
    rad, att = float(mp["radius"]), float(mp["attention"])
    if rad not in list(c.radius.values) or att not in list(c.att.values):
        return
    cb = float(c.critical.sel(radius=rad, att=att, level=1))
    if not math.isfinite(cb):
        cb = float(np.nanmean(c.critical.sel(att=att).values))
    if not math.isfinite(cb):
        return
    betas = [cb * float(f) for f in mp["factors"]]
    cfg0 = study.config()
    scene = make_scene(grid=cfg0.grid, dim=cfg0.dim, levels=cfg0.levels, seed=0,
                       **study.params["scene"])  # fmt: skip
    isl = {}
    for b in betas:
        cfg = study.config(attention={"beta": b, "radius": rad}, mix={"attention": att})
        ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene,
                         record_every=int(study.params["study"]["record_every"]))  # fmt: skip
        isl[b] = an.islands(ds, time=-1, **study.params["islands"])["labels"].values[-1]
    fig = Figure(figsize=(1.9 * (len(betas) + 1), 4.3), layout="constrained")
    axes = fig.subplots(2, len(betas) + 1, squeeze=False)
    for row, lv in enumerate((1, 2)):
        _common.truth_panel(axes[row, 0], cfg0.grid, scene.labels[lv])
        runs = [(f"beta {b:.1f}", isl[b][lv]) for b in betas]
        _common.island_panels(axes[row, 1:], cfg0.grid, scene.labels[lv], runs)
        axes[row, 0].set_ylabel(f"level {lv}", fontsize=8)
    fig.suptitle(f"islands either side of level 1's critical beta {cb:.1f} (radius "
                 f"{'inf' if math.isinf(rad) else f'{rad:g}'}, attention {att:g}, seed 0); "
                 "ARI over all columns", fontsize=8)  # fmt: skip
    study.save_figure(fig, "island_maps.png")
