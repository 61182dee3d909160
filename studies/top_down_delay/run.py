"""top_down_delay 1, 2, 3: does reading the level above from d steps back ("skipping a
frame") change how GLOM settles, and how does the delay-d spectrum follow from delay 1's?

Part 1 (sweep): identity and random nets, four mixing settings, delays 1-3, on one static
scene per seed. Measured per run: the settling step and geometric rate
(analysis.convergence), an oscillation index (mean cosine between successive changes
E_t - E_t-1: -1 is a zigzag of period 2, +1 a monotone approach), and, for the first seed,
the full spectrum of the step map's Jacobian at the end state (analysis.stability; with
delay d the map acts on (E_t, ..., E_t-d+1)).

Part 2 (rule, _rule.py): without previous-state and attention weight, every nonzero
delay-1 eigenvalue pair (mu, -mu) becomes the d+1 roots of lambda^(d+1) = mu^2 at delay d.
Checked at fixed points shared by all delays, for identity and random nets, d = 2 and 3;
then the settling steps against t_1 log(rho_1) / log(rho_d), and where the rule breaks
(previous or attention weight > 0).

Run: python studies/top_down_delay/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _plots  # noqa: E402
import _rule  # noqa: E402


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
        k = ds.embedding.values[-1].size * int(delay)  # every eigenvalue: the figure shows all
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
                    spec = seed in p["stability_seeds"] and delay in p["stability_delays"]
                    runs[(kind, mixing["name"], int(delay), int(seed))] = run_one(
                        study, kind, mixing, delay, seed, spec
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


def sweep_table(study, runs, result):
    """Rows of the sweep: means [95% t interval] over seeds, spectrum of the first seed."""
    p = study.params["study"]
    s0 = p["stability_seeds"][0] if p["stability_seeds"] else None
    rows = []
    for kind in p["weights"]:
        for m in study.params["mixing"]:
            first = None
            for delay in p["delay"]:
                cell = result.sel(weights=kind, mixing=m["name"], delay=int(delay))
                settled = cell["settled_step"].values
                ok = settled >= 0
                row = dict(
                    weights=kind,
                    mixing=m["name"],
                    delay=int(delay),
                    settled=_rule.fmt_ci(_rule.t_interval(settled))
                    if ok.all()
                    else f"no ({(~ok).sum()}/{len(ok)})",
                    osc=float(cell["osc"].mean()),
                    zigzag=float(cell["zigzag"].mean()),
                )
                r = runs.get((kind, m["name"], int(delay), s0), {})
                if "radius" in r:
                    row.update(
                        rho_T=r["radius"],
                        leading=_leading(r["eigenvalues"]),
                        fp_res=r["fixed_point_residual"],
                    )
                final = np.stack(
                    [runs[(kind, m["name"], int(delay), int(s))]["final"] for s in p["seeds"]]
                )
                if first is None:
                    first = final
                else:
                    row["end diff vs d=1"] = float(np.sqrt(np.mean((final - first) ** 2)))
                rows.append(row)
    return rows


def rule_part(study):
    """The rule check (with settling) and the breakdown runs, keyed by setting and seed."""
    r = study.params["rule"]
    mixes = {m["name"]: m["mix"] for m in study.params["mixing"]}
    base = mixes["bu+td only"]
    checks, breaks = {}, {}
    for kind in r["weights"]:
        for name in r["mixings"]:
            for seed in r["seeds"]:
                checks[(kind, name, seed)] = _rule.check(
                    study, kind, mixes[name], seed, r["delays"], True
                )
        for case in study.params["breakdown"]:
            mix = dict(base, previous=case["previous"], attention=case["attention"])
            key = f"prev {case['previous']:g}, att {case['attention']:g}"
            for seed in r["breakdown_seeds"]:
                breaks[(kind, key, seed)] = _rule.check(study, kind, mix, seed, r["delays"], False)
    return checks, breaks


def _groups(runs):
    out = {}
    for (kind, name, seed), rec in runs.items():
        out.setdefault((kind, name), []).append((seed, rec))
    return out


def rule_tables(study, checks, breaks):
    """(rule rows, settling rows, breakdown rows, settling groups for the figure)."""
    ci, fmt = _rule.t_interval, _rule.fmt_ci
    delays = study.params["rule"]["delays"]
    rule_rows, settle_rows, break_rows, fig_groups = [], [], [], []
    for (kind, name), recs in _groups(checks).items():
        stable = [rec for _, rec in recs if rec["rho"][1] < 1]
        for d in delays:
            rule_rows.append(
                {
                    "nets": kind,
                    "mixing": name,
                    "d": d,
                    "seeds": len(recs),
                    "max mismatch": max(rec["mismatch"][d] for _, rec in recs),
                    "fp residual (max)": max(rec["fp_residual"] for _, rec in recs),
                    "rho_1 < 1": f"{len(stable)}/{len(recs)}",
                    "rho_1": fmt(ci([rec["rho"][1] for _, rec in recs]), ".4g"),
                    "rho_d": fmt(ci([rec["rho"][d] for _, rec in recs]), ".4g"),
                    "rho_1^(2/(d+1))": fmt(ci([rec["rho_pred"][d] for _, rec in recs]), ".4g"),
                }
            )
        # settling: seeds whose runs from the random start settle on the fixed point
        good = [
            rec
            for _, rec in recs
            if all(np.isfinite(v) for v in rec["settled"].values())
            and max(rec["end_dist"].values()) < 1e-8
        ]
        for d in delays:
            t1 = np.array([rec["settled"][1] for rec in good])
            meas = np.array([rec["settled"][d] for rec in good])
            pred = np.array(
                [rec["settled"][1] * np.log(rec["rho"][1]) / np.log(rec["rho"][d]) for rec in good]
            )
            ratio = ci(meas / pred) if len(good) else (np.nan,) * 3
            settle_rows.append(
                {
                    "nets": kind,
                    "mixing": name,
                    "d": d,
                    "seeds settled": f"{len(good)}/{len(recs)}",
                    "t_1": fmt(ci(t1)),
                    "t_d measured": fmt(ci(meas)),
                    "t_d predicted": fmt(ci(pred)),
                    "measured/predicted": fmt(ratio),
                }
            )
            if len(good):
                fig_groups.append((f"{kind}, {name}", d, pred, meas, ratio))
    for (kind, key), recs in _groups(breaks).items():
        for d in delays:
            rel = [(rec["rho"][d] - rec["rho_pred"][d]) / rec["rho_pred"][d] for _, rec in recs]
            break_rows.append(
                {
                    "nets": kind,
                    "weights": key,
                    "d": d,
                    "max mismatch": max(rec["mismatch"][d] for _, rec in recs),
                    "mismatch": fmt(ci([rec["mismatch"][d] for _, rec in recs])),
                    "fp residual (max)": max(rec["fp_residual"] for _, rec in recs),
                    "rho_d": fmt(ci([rec["rho"][d] for _, rec in recs]), ".4g"),
                    "rho_1^(2/(d+1))": fmt(ci([rec["rho_pred"][d] for _, rec in recs]), ".4g"),
                    "(rho_d - rule) / rule": fmt(ci(rel), ".2g"),
                }
            )
    return rule_rows, settle_rows, break_rows, fig_groups


def rule_dataset(study, checks, breaks):
    import xarray as xr

    r = study.params["rule"]
    delays = [1, *r["delays"]]
    out = {}
    for label, runs, seeds in (
        ("", checks, r["seeds"]),
        ("breakdown_", breaks, r["breakdown_seeds"]),
    ):
        groups = list(_groups(runs))
        shape = (len(groups), len(delays), len(seeds))
        data = {f: np.full(shape, np.nan) for f in ("rho", "rho_pred", "mismatch", "settled")}
        for (kind, name, seed), rec in runs.items():
            g, s = groups.index((kind, name)), seeds.index(seed)
            for k, d in enumerate(delays):
                data["rho"][g, k, s] = rec["rho"][d]
                data["rho_pred"][g, k, s] = rec["rho_pred"].get(d, rec["rho"][1])
                data["mismatch"][g, k, s] = rec["mismatch"].get(d, 0.0)
                data["settled"][g, k, s] = rec["settled"].get(d, np.nan)
        dims = (f"{label}setting", "delay", f"{label}seed")
        for f, v in data.items():
            out[f"{label}{f}"] = xr.DataArray(v, dims=dims)
        out[f"{label}setting"] = xr.DataArray([f"{k}, {n}" for k, n in groups], dims=dims[:1])
        out[f"{label}seed"] = xr.DataArray(np.asarray(seeds), dims=dims[2:])
    ds = xr.Dataset(out, coords=dict(delay=delays))
    ds.attrs["note"] = (
        "rho: spectral radius of the delay-d Jacobian at a fixed point shared by all delays; "
        "rho_pred: rho_1^(2/(d+1)); mismatch: largest distance between the computed and the "
        "rule's eigenvalues (modulus > tau); settled: settling step from the random start"
    )
    return ds


def rule_panels(checks, breaks, delays):
    """Rows of the rule figure: per nets kind, delay 2 and 3 (rule holds) and delay 2 with
    previous or attention weight 0.3 (it does not), first seed of each."""
    panels = {}
    for (kind, name, seed), rec in checks.items():
        if name != "bu+td only" or kind in panels:
            continue
        row = [
            (f"{kind} seed {seed}, bu+td, d={d}\nmismatch {rec['mismatch'][d]:.1e}",
             rec["lam"][d], _rule.predict(rec["mu"], d), d)
            for d in delays
        ]  # fmt: skip
        for (k2, key, s2), brec in breaks.items():
            if k2 == kind and s2 == seed and ("0.3" in key):
                d = delays[0]
                row.append(
                    (f"{kind} seed {seed}, {key}, d={d}\nmismatch {brec['mismatch'][d]:.2f}",
                     brec["lam"][d], _rule.predict(brec["mu"], d), d)
                )  # fmt: skip
        panels[kind] = row
    return list(panels.values())


def main():
    study = _common.setup(__file__, __doc__)
    runs = sweep(study)
    result = to_dataset(study, runs)
    study.save_results(result, "delay.nc")
    _plots.plot_residuals(study, runs)
    _plots.plot_spectra(study, runs)
    p = study.params["study"]
    n = len(p["seeds"])
    print(
        f"## sweep: {n} seed(s); settled = step after which every level stays settled, mean "
        "[95% t interval] ('no (k/n)': k seeds never settle); osc, zigzag: means; spectrum "
        f"at seed {p['stability_seeds'][:1]}; end diff = RMS difference of the final states"
    )
    print(_common.table(sweep_table(study, runs, result), floatfmt=".3g"))
    print(f"[{study.elapsed():.0f} s]", flush=True)

    checks, breaks = rule_part(study)
    study.save_results(rule_dataset(study, checks, breaks), "rule.nc")
    rule_rows, settle_rows, break_rows, groups = rule_tables(study, checks, breaks)
    r = study.params["rule"]
    print(
        f"\n## rule lambda^(d+1) = mu^2 at a fixed point shared by all delays, grid {r['grid']}: "
        f"mismatch = largest distance of an optimal matching of the eigenvalues of modulus "
        f"> {r['tau']}; intervals: 95% t over seeds"
    )
    print(_common.table(rule_rows, floatfmt=".2g"))
    print(
        "\n## settling step from the random start, seeds where every delay settles on the "
        "fixed point; predicted t_d = t_1 log(rho_1) / log(rho_d) per seed"
    )
    print(_common.table(settle_rows))
    print("\n## where the rule breaks: bu+td only plus previous / attention weight")
    print(_common.table(break_rows, floatfmt=".2g"))
    _plots.plot_rule(study, rule_panels(checks, breaks, r["delays"]))
    _plots.plot_settling(study, groups)
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
