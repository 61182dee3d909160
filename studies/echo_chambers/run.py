"""Echo chambers: what the weight and the selectivity of same-level attention do to islands.

Synthetic scenes, identity nets, cosine attention over the 8 surrounding columns. Three
parts, every score at the last step, over the objects' columns only (background left
out), with two-sided Student t intervals over scene seeds:

1. beta x noise x attention weight: ARI, purity, inverse purity, boundary leak and the
   threshold-free cosine contrast of the islands against the truth, the ARI at several
   island thresholds, and the trivial baselines of analysis.agreement;
2. gain: from the settled state, the tokens change by the same per-entry RMS as white
   noise on every column, white noise on one part, or one vector added to one whole part
   (coherent); how much of the change reaches each level after the run settles again;
3. start dependence: scene B from zeros, from the settled state of scene A, from that of
   an unrelated scene C, and from a random state. If "from A" and "from C" score alike,
   the state depends on where the run starts (multistability), not on A in particular.

Run: python studies/echo_chambers/run.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _measure as m  # noqa: E402
import _plots  # noqa: E402


def sweep_dataset(study, out, base):
    import xarray as xr

    from analysis.agreement import BASELINES

    p, sw = study.params["study"], study.params["sweep"]
    levels = np.arange(int(study.params["config"]["levels"]))
    dims = ("seed", "beta", "attention", "noise", "level")
    data = {k: (dims, out[k]) for k in m.SCORES}
    data["ari_threshold"] = (dims[:-1] + ("threshold", "level"), out["ari_threshold"])
    data |= {k: (("seed", "baseline", "level"), v) for k, v in base.items()}
    ds = xr.Dataset(data, coords=dict(
        seed=p["seeds"], beta=[float(b) for b in sw["beta"]],
        attention=[float(a) for a in sw["attention"]], noise=[float(n) for n in sw["noise"]],
        threshold=[float(t) for t in sw["thresholds"]], level=levels, baseline=list(BASELINES),
    ))  # fmt: skip
    ds.attrs["note"] = "attention 0 has no beta: its runs are shared by every beta"
    ds.attrs["island_threshold"] = float(study.params["islands"]["threshold"])
    return ds


def _cells(ds, level):
    """(the row's first columns, the cell) over beta x attention x noise at one level;
    attention 0 once (it has no beta)."""
    for beta in ds.beta.values:
        for weight in ds.attention.values:
            if weight == 0 and beta != ds.beta.values[0]:
                continue
            for noise in ds.noise.values:
                cell = ds.sel(beta=beta, attention=weight, noise=noise, level=level)
                row = dict(beta="-" if weight == 0 else f"{beta:g}", attention=f"{weight:g}",
                           noise=f"{noise:g}")  # fmt: skip
                yield row, cell


def sweep_rows(ds, level, conf):
    """Part 1 table rows at one level."""
    rows = []
    for row, cell in _cells(ds, level):
        for k in ("ari", "purity", "inverse_purity", "leak", "leak_bg", "contrast"):
            row[k] = m.fmt(cell[k].values, conf)
        row["islands"] = m.fmt(cell["count"].values, conf, 1)
        row["settled"] = f"{float(np.nanmean(cell['settled'].values)):.2f}"
        rows.append(row)
    return rows


def threshold_rows(ds, level, conf):
    """The ARI at every island threshold, and the contrast, at one level."""
    rows = []
    for row, cell in _cells(ds, level):
        for th in ds.threshold.values:
            row[f"ari @{th:g}"] = m.fmt(cell["ari_threshold"].sel(threshold=th).values, conf)
        row["contrast"] = m.fmt(cell["contrast"].values, conf)
        rows.append(row)
    return rows


def baseline_rows(ds, conf):
    rows = []
    for b in ds.baseline.values:
        for lv in ds.level.values:
            cell = ds.sel(baseline=b, level=lv)
            rows.append(dict(baseline=str(b), level=int(lv), **{
                k.removeprefix("baseline_"): m.fmt(cell[k].values, conf)
                for k in m.BASELINE_SCORES
            }))  # fmt: skip
    return rows


def gain_rows(gain, conf):
    rows = []
    for a, weight in enumerate(gain.attention.values):
        for k, name in enumerate(m.PERTURBATIONS):
            row = dict(attention=f"{weight:g}", change=name)
            for lv in gain.level.values:
                row[f"gain L{lv}"] = m.fmt(gain["gain"].values[:, a, k, lv], conf)
            cell = gain["gain"].values[:, a, k]
            row["median L0/L1/L2"] = "/".join(f"{v:.2f}" for v in np.median(cell, axis=0))
            row["max L0/L1/L2"] = "/".join(f"{v:.2f}" for v in cell.max(axis=0))
            rows.append(row)
        diff = gain["gain"].values[:, a, 2] - gain["gain"].values[:, a, 1]
        row = dict(attention=f"{weight:g}", change="coherent - white, one part (paired)")
        for lv in gain.level.values:
            row[f"gain L{lv}"] = m.fmt(diff[:, lv], conf)
        rows.append(row)
    return rows


def switch_rows(sw, conf):
    rows = []
    starts = list(sw.start.values)
    for a, weight in enumerate(sw.attention.values):
        cells = [(start, {k: sw[k].values[:, a, i] for k in sw.data_vars})
                 for i, start in enumerate(starts)]  # fmt: skip
        pairs = (("from A", "from C"), ("from A", "fresh"), ("from random", "fresh"))
        for one, other in pairs:
            i, j = starts.index(one), starts.index(other)
            cells.append((f"{one} - {other} (paired)",
                          {k: sw[k].values[:, a, i] - sw[k].values[:, a, j] for k in sw.data_vars}))  # fmt: skip
        for start, v in cells:
            row = dict(attention=f"{weight:g}", start=start)
            for lv in sw.level.values:
                row[f"ari L{lv}"] = m.fmt(v["ari"][:, lv], conf)
            row["contrast L1"] = m.fmt(v["contrast"][:, 1], conf)
            row["ari vs A L1"] = m.fmt(v["ari_vs_A"][:, 1], conf)
            row["islands L1"] = m.fmt(v["count"][:, 1], conf, 1)
            paired = "paired" in start
            row["settled"] = "" if paired else f"{float(np.nanmean(v['settled'])):.2f}"
            rows.append(row)
    return rows


def main():
    study = _common.setup(__file__, __doc__)
    import xarray as xr

    p, pr = study.params["study"], study.params["probe"]
    conf = float(p["confidence"])
    levels = np.arange(int(study.params["config"]["levels"]))
    runs = m.Runs(study)

    out, base = m.sweep(study, runs)
    ds = sweep_dataset(study, out, base)
    study.save_results(ds, "sweep.nc")
    head = f"mean [{conf:.0%} t interval] over {len(p['seeds'])} seeds"
    th = float(study.params["islands"]["threshold"])
    for lv in levels:
        print(f"part 1, level {lv} ({head}); object columns only; islands at threshold {th:g}")
        print(_common.table(sweep_rows(ds, lv, conf)))
        print()
    print(f"trivial baselines (analysis.agreement, object columns only; {head})")
    print(_common.table(baseline_rows(ds, conf)))
    for lv in (1, 2):
        print(f"\nlevel {lv}: ARI at each island threshold, and the threshold-free cosine "
              f"contrast ({head})")  # fmt: skip
        print(_common.table(threshold_rows(ds, lv, conf)))
    _plots.plot_sweep(study, ds, 1, ("ari", "purity", "inverse_purity", "leak", "contrast"),
                      "sweep_level1.png", conf)  # fmt: skip
    _plots.plot_sweep(study, ds, 2, ("ari", "purity", "inverse_purity", "leak_bg", "contrast"),
                      "sweep_level2.png", conf)  # fmt: skip
    probe_beta = float(pr["beta"]) if float(pr["beta"]) in ds.beta.values else ds.beta.values[-1]
    _plots.plot_thresholds(study, ds, probe_beta, 1, conf)

    coords = dict(seed=p["seeds"], attention=[float(a) for a in pr["attention"]])
    gain = xr.Dataset(
        {"gain": (("seed", "attention", "perturbation", "level"), m.gains(study, runs))},
        coords=coords | dict(perturbation=list(m.PERTURBATIONS), level=levels),
        attrs=dict(
            beta=float(pr["beta"]),
            noise=float(pr["noise"]),
            perturbation_rms=float(pr["perturbation"]),
        ),  # fmt: skip
    )
    study.save_results(gain, "gain.nc")
    print(f"\npart 2: gain = RMS change of the state / RMS change of the unit tokens, per-entry "
          f"RMS {float(pr['perturbation']):g} on the columns changed; beta {float(pr['beta']):g}, "
          f"noise {float(pr['noise']):g} ({head})")  # fmt: skip
    print(_common.table(gain_rows(gain, conf)))
    _plots.plot_gain(study, gain, conf)

    got, maps = m.switch(study, runs)
    sw = xr.Dataset(
        {k: (("seed", "attention", "start", "level"), v) for k, v in got.items()},
        coords=coords | dict(start=list(m.STARTS), level=levels),
        attrs=dict(
            beta=float(pr["beta"]), noise=float(pr["noise"]), steps=int(pr["switch_steps"])
        ),  # fmt: skip
    )
    study.save_results(sw, "switch.nc")
    print(f"\npart 3: scene B (seed + {pr['b_offset']}) for {pr['switch_steps']} steps from each "
          f"start; A = the seed's scene, C = seed + {pr['c_offset']}; scores against B "
          f"except 'ari vs A' ({head})")  # fmt: skip
    print(_common.table(switch_rows(sw, conf)))
    _plots.plot_switch(study, sw, conf)
    grid = tuple(int(v) for v in study.params["config"]["grid"])
    _plots.plot_switch_maps(study, maps, pr.get("map_attention", []), grid)
    print(f"\n{len(runs.settled)} settled runs; done in {study.elapsed():.1f} s; "
          f"figures in {study.figures}")  # fmt: skip


if __name__ == "__main__":
    main()
