"""top_down_delay 1 vs 2: does reading the level above from two steps back ("skipping a
frame") change how GLOM settles?

For identity and random nets and four mixing settings, the same scene is run with delay 1
and 2. Measured per run: the settling step and geometric rate (analysis.convergence), an
oscillation index (mean cosine between successive changes E_t - E_t-1: -1 is a zigzag of
period 2, +1 a monotone approach), and, for the first seed, the spectrum of the step map's
Jacobian at the end state (analysis.stability; with delay 2 the map acts on (E_t, E_t-1)).

Run: python studies/top_down_delay/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402


def oscillation(emb, window):
    """(mean cosine, share of negative cosines) of successive changes over ``window`` steps.

    ``emb`` is (time, level, column, feature); cosines are taken per level between the
    whole-level change vectors of consecutive steps; steps without change are skipped.
    """
    d = np.diff(np.asarray(emb, dtype=np.float64), axis=0)[: window + 1]
    num = (d[1:] * d[:-1]).sum(axis=(2, 3))
    den = np.sqrt((d[1:] ** 2).sum(axis=(2, 3)) * (d[:-1] ** 2).sum(axis=(2, 3)))
    ok = den > 0
    if not ok.any():
        return math.nan, math.nan
    cos = num[ok] / den[ok]
    return float(cos.mean()), float((cos < 0).mean())


def _nanmax(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x[np.isfinite(x)].max()) if np.isfinite(x).any() else math.nan


def _nanmean(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else math.nan


def run_one(study, weights_kind, mixing, delay, seed, with_stability):
    import analysis as an
    import glomsim as gs
    from glomsim.scenes import make_scene

    cfg = study.config(mix=mixing["mix"], top_down_delay=int(delay), seed=int(seed))
    scene = make_scene(
        grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=int(seed), **study.params["scene"]
    )
    if weights_kind == "identity":
        w = gs.identity_weights(cfg)
    else:
        w = gs.random_weights(cfg, seed=int(seed))
    # a random start at every column and level: from the default (identical columns, zeros
    # for identity nets) some modes are never excited and the run lands on its fixed point
    # in a few steps
    rng = np.random.default_rng(10_000 + int(seed))
    init = float(study.params["study"]["init_scale"]) * rng.standard_normal(
        (cfg.levels, cfg.n_columns, cfg.dim)
    )
    ds = gs.simulate(cfg, w, inputs=scene, init=init)
    conv = an.convergence(ds)
    settled = conv["settled_step"].values
    osc, zigzag = oscillation(ds.embedding.values, int(study.params["study"]["osc_window"]))
    out = dict(
        settled_step=int(settled.max()) if (settled >= 0).all() else -1,
        rate=_nanmax(conv["rate"].values),
        osc=osc,
        zigzag=zigzag,
        residual=np.sqrt(np.mean(conv["residual"].values ** 2, axis=1)),
        final=ds.embedding.values[-1],
    )
    if with_stability:
        k = int(study.params["study"]["eigenvalues"])
        stab = an.stability(cfg, w, ds, k=k)
        ev = (
            stab["transverse_eigenvalues_real"].values
            + 1j * stab["transverse_eigenvalues_imag"].values
        )
        out.update(
            radius=float(stab["spectral_radius_transverse"]),
            eigenvalues=ev,
            fixed_point_residual=float(stab["fixed_point_residual"]),
            neutral_dimension=int(stab["neutral_dimension"]),
        )
    return out


def sweep(study):
    p = study.params["study"]
    runs = {}
    for kind in p["weights"]:
        for mixing in study.params["mixing"]:
            for delay in p["delay"]:
                for seed in p["seeds"]:
                    runs[(kind, mixing["name"], int(delay), int(seed))] = run_one(
                        study, kind, mixing, delay, seed, seed in p["stability_seeds"]
                    )
    return runs


def to_dataset(study, runs):
    import xarray as xr

    p = study.params["study"]
    kinds, delays, seeds = p["weights"], [int(d) for d in p["delay"]], p["seeds"]
    names = [m["name"] for m in study.params["mixing"]]
    shape = (len(kinds), len(names), len(delays), len(seeds))
    fields = ("settled_step", "rate", "osc", "zigzag", "radius", "fixed_point_residual")
    data = {f: np.full(shape, np.nan) for f in fields}
    for (kind, name, delay, seed), r in runs.items():
        idx = (kinds.index(kind), names.index(name), delays.index(delay), seeds.index(seed))
        for f in fields:
            data[f][idx] = r.get(f, np.nan)
    dims = ("weights", "mixing", "delay", "seed")
    ds = xr.Dataset(
        {f: (dims, v) for f, v in data.items()},
        coords=dict(weights=kinds, mixing=names, delay=delays, seed=seeds),
    )
    long_names = dict(
        settled_step="last level's settling step (-1: some level never settled)",
        rate="slowest level's geometric rate (analysis.convergence)",
        osc="mean cosine of successive changes (-1 zigzag, +1 monotone)",
        zigzag="share of successive changes with negative cosine",
        radius="transverse spectral radius at the end state (NaN: not computed)",
        fixed_point_residual="fixed-point residual of the end state (analysis.stability)",
    )
    for f, name in long_names.items():
        ds[f].attrs.update(long_name=name, units="1")
    return ds


def plot_residuals(study, runs):
    from matplotlib.figure import Figure

    p = study.params["study"]
    kinds, names = p["weights"], [m["name"] for m in study.params["mixing"]]
    seed = p["seeds"][0]
    fig = Figure(figsize=(2.6 * len(names), 2.3 * len(kinds) + 0.3), layout="constrained")
    axes = fig.subplots(len(kinds), len(names), squeeze=False, sharex=True)
    for i, kind in enumerate(kinds):
        for j, name in enumerate(names):
            ax = axes[i, j]
            for delay, style in zip(p["delay"], ("-", "--", ":"), strict=False):
                res = runs[(kind, name, int(delay), seed)]["residual"]
                t = np.arange(len(res))
                ok = np.isfinite(res) & (res > 0)
                ax.semilogy(t[ok], res[ok], style, lw=1, label=f"delay {delay}")
            ax.set_title(f"{kind} nets, {name}", fontsize=8)
            if i == len(kinds) - 1:
                ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("RMS change per step")
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"residual (RMS over levels), seed {seed}", fontsize=9)
    study.save_figure(fig, "residuals.png")


def plot_spectra(study, runs):
    from matplotlib.figure import Figure

    p = study.params["study"]
    if not p["stability_seeds"]:
        return
    kinds, names = p["weights"], [m["name"] for m in study.params["mixing"]]
    seed = p["stability_seeds"][0]
    fig = Figure(figsize=(2.4 * len(names), 2.5 * len(kinds) + 0.3), layout="constrained")
    axes = fig.subplots(len(kinds), len(names), squeeze=False)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    for i, kind in enumerate(kinds):
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.plot(circle.real, circle.imag, color="0.7", lw=0.8)
            for delay, marker in zip(p["delay"], ("o", "x", "+"), strict=False):
                r = runs[(kind, name, int(delay), seed)]
                ev = r["eigenvalues"]
                ax.plot(
                    ev.real,
                    ev.imag,
                    marker,
                    ms=4,
                    mfc="none",
                    label=f"d={delay}: rho {r['radius']:.3f}",
                )
            ax.set_aspect("equal")
            ax.set(xlim=(-1.15, 1.15), ylim=(-1.15, 1.15))
            ax.set_title(f"{kind}, {name}", fontsize=8)
            ax.legend(fontsize=6, loc="lower left")
            ax.tick_params(labelsize=7)
    fig.suptitle(f"leading transverse eigenvalues at the end state (seed {seed})", fontsize=9)
    study.save_figure(fig, "spectra.png")


def _leading(ev, tol=1e-6):
    """The distinct eigenvalues of largest modulus, e.g. '+0.853 -0.853' or '-0.45+0.78j':
    equal moduli come in an arbitrary order, and their angles tell the period (180 degrees:
    a zigzag of period 2, about 120: period 3)."""
    ev = np.asarray(ev)[np.isfinite(ev)]
    if not len(ev):
        return "-"
    top = ev[np.abs(ev) >= np.abs(ev).max() - tol]
    top = top[top.imag >= -tol]  # one of each conjugate pair
    parts = []
    for z in sorted(top, key=lambda z: -z.real):
        text = f"{z.real:+.3f}" if abs(z.imag) < tol else f"{z.real:+.2f}{z.imag:+.2f}j"
        if text not in parts:
            parts.append(text)
    return " ".join(parts[:3])


def main():
    study = _common.setup(__file__, __doc__)
    runs = sweep(study)
    result = to_dataset(study, runs)
    study.save_results(result, "delay.nc")
    plot_residuals(study, runs)
    plot_spectra(study, runs)

    p = study.params["study"]
    rows = []
    for kind in p["weights"]:
        for m in study.params["mixing"]:
            finals = {}
            for delay in p["delay"]:
                cell = result.sel(weights=kind, mixing=m["name"], delay=int(delay))
                settled = cell["settled_step"].values
                row = dict(
                    weights=kind,
                    mixing=m["name"],
                    delay=int(delay),
                    settled=float(settled.mean()) if (settled >= 0).all() else "no",
                    rate=_nanmean(cell["rate"].values),
                    osc=float(cell["osc"].mean()),
                    zigzag=float(cell["zigzag"].mean()),
                )
                s0 = p["stability_seeds"][0] if p["stability_seeds"] else None
                if s0 is not None:
                    r = runs[(kind, m["name"], int(delay), s0)]
                    row.update(
                        rho_T=r["radius"],
                        leading=_leading(r["eigenvalues"]),
                        fp_res=r["fixed_point_residual"],
                    )
                finals[int(delay)] = np.stack(
                    [runs[(kind, m["name"], int(delay), int(s))]["final"] for s in p["seeds"]]
                )
                rows.append(row)
            if len(finals) == 2:
                a, b = finals.values()
                rows[-1]["end diff d1-d2"] = float(np.sqrt(np.mean((a - b) ** 2)))
                if "rho_T" in rows[-1]:
                    # a bottom-up/top-down round trip takes 1 + d steps: if its gain were
                    # all that mattered, rho(d=2) = rho(d=1) ** (2/3)
                    rows[-1]["rho1^(2/3)"] = rows[-2]["rho_T"] ** (2 / 3)
    n = len(p["seeds"])
    print(
        f"means over {n} seed(s); settled = step after which every level stays settled "
        "('no' if some seed never settles); rate = slowest level; spectrum at seed "
        f"{p['stability_seeds'][:1]}; end diff = RMS difference of the final states"
    )
    print(_common.table(rows, floatfmt=".3g"))
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
