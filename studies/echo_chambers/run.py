"""Echo chambers: how the same-level attention weight shapes islands and their robustness.

Three experiments on synthetic scenes, for every attention weight (Mix.attention):

1. noise sweep: islands and their ARI against the ground truth at the end of a run, for
   scenes of increasing input noise;
2. sensitivity: from the settled state, the inputs get a small perturbation; how much of
   it reaches each level after the run settles again (gain, relative to the change of the
   unit-normalised input);
3. switch: settle on scene A, then feed scene B starting from A's settled state; compare
   the islands with those of a fresh run on B (from zeros). A state that stays away from
   the fresh answer remembers A: the columns listen to each other more than to the input.

Run: python studies/echo_chambers/run.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402


def _scene(study, cfg, seed, noise):
    from glomsim.scenes import make_scene

    return make_scene(
        grid=cfg.grid,
        dim=cfg.dim,
        levels=cfg.levels,
        seed=seed,
        noise=noise,
        **study.params["scene"],
    )


def _islands_end(study, ds, labels):
    """(count per level, ARI per level against ``labels``, island labels) at the last step."""
    import analysis as an

    isl = an.islands(ds, time=-1, **study.params["islands"])
    lab = isl["labels"].values[-1]
    ari = np.array([an.adjusted_rand_index(lab[lv], labels[lv]) for lv in range(len(lab))])
    return isl["count"].values[-1], ari, lab


def noise_sweep(study):
    import analysis as an
    import glomsim as gs

    p = study.params["study"]
    weights, noises, seeds = p["attention"], p["noise"], p["scene_seeds"]
    levels = int(study.params["config"]["levels"])
    shape = (len(seeds), len(weights), len(noises), levels)
    count, ari, settled = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for s, seed in enumerate(seeds):
        for a, w_att in enumerate(weights):
            cfg = study.config(mix=dict(attention=float(w_att)))
            w = gs.identity_weights(cfg)
            for k, noise in enumerate(noises):
                scene = _scene(study, cfg, seed, noise)
                ds = gs.simulate(cfg, w, inputs=scene, record_every=int(p["record_every"]))
                count[s, a, k], ari[s, a, k], _ = _islands_end(study, ds, scene.labels)
                settled[s, a, k] = an.convergence(ds)["settled_step"].values >= 0
    return count, ari, settled


def probes(study):
    """Sensitivity gain and the switch test at ``probe_noise``."""
    import analysis as an
    import glomsim as gs

    p = study.params["study"]
    weights, seeds = p["attention"], p["scene_seeds"]
    levels = int(study.params["config"]["levels"])
    shape = (len(seeds), len(weights), levels)
    out = {
        k: np.zeros(shape)
        for k in (
            "gain",
            "fresh_ari",
            "switched_ari",
            "switched_ari_vs_old",
            "fresh_count",
            "switched_count",
            "switched_settled",
        )
    }
    maps = {}
    for s, seed in enumerate(seeds):
        for a, w_att in enumerate(weights):
            cfg = study.config(mix=dict(attention=float(w_att)))
            w = gs.identity_weights(cfg)
            old = _scene(study, cfg, seed, p["probe_noise"])
            new = _scene(study, cfg, seed + int(p["switch_offset"]), p["probe_noise"])
            settled = gs.simulate(cfg, w, inputs=old, record_every=cfg.steps)
            end = settled.embedding.values[-1]

            # sensitivity: both continuations start from the same state, so drift of a
            # run that had not quite settled cancels out
            rng = np.random.default_rng(1000 + seed)
            delta = float(p["perturbation"]) * rng.standard_normal(old.tokens.shape)
            base = gs.simulate(cfg, w, inputs=old.tokens, init=end, record_every=cfg.steps)
            pert = gs.simulate(cfg, w, inputs=old.tokens + delta, init=end, record_every=cfg.steps)
            d_state = pert.embedding.values[-1] - base.embedding.values[-1]
            d_unit = _unit(old.tokens + delta) - _unit(old.tokens)
            out["gain"][s, a] = _rms(d_state, axis=(1, 2)) / _rms(d_unit)

            steps = int(p["switch_steps"])
            switched = gs.simulate(
                cfg, w, inputs=new, init=end, steps=steps, record_every=int(p["record_every"])
            )
            fresh = gs.simulate(cfg, w, inputs=new, steps=steps, record_every=steps)
            c_sw, ari_sw, lab_sw = _islands_end(study, switched, new.labels)
            c_fr, ari_fr, lab_fr = _islands_end(study, fresh, new.labels)
            _, ari_old, _ = _islands_end(study, switched, old.labels)
            out["switched_count"][s, a], out["switched_ari"][s, a] = c_sw, ari_sw
            out["fresh_count"][s, a], out["fresh_ari"][s, a] = c_fr, ari_fr
            out["switched_ari_vs_old"][s, a] = ari_old
            out["switched_settled"][s, a] = an.convergence(switched)["settled_step"].values >= 0
            if s == 0 and w_att in p["map_attention"]:
                maps[float(w_att)] = (new.labels, lab_fr, lab_sw, old.labels, cfg.grid)
    return out, maps


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _rms(x, axis=None):
    return np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2, axis=axis))


def plot_noise(study, result):
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    mean = result.mean("seed")
    levels = result.sizes["level"]
    names = ("level 0 vs textures", "level 1 vs parts", "level 2 vs objects")
    fig = Figure(figsize=(3.3 * levels, 2.8), layout="constrained")
    axes = fig.subplots(1, levels, sharey=True)
    cmap = colormaps["viridis"]
    n_att = result.sizes["attention"]
    for lv, ax in enumerate(axes):
        for a, w_att in enumerate(result.attention.values):
            ax.plot(
                result.noise.values,
                mean["ari"].isel(level=lv, attention=a),
                "o-",
                ms=3,
                color=cmap(a / max(n_att - 1, 1)),
                label=f"{w_att:g}",
            )
        ax.set(xlabel="input noise (std)", title=names[lv], ylim=(-0.05, 1.05))
        if lv == 0:
            ax.set_ylabel("ARI at the end")
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        title="attention",
        fontsize=7,
        title_fontsize=7,
        loc="outside right center",
    )
    fig.suptitle(f"islands vs ground truth (mean over {result.sizes['seed']} scenes)", fontsize=9)
    study.save_figure(fig, "ari_vs_noise.png")


def plot_probes(study, probe):
    from matplotlib.figure import Figure

    mean = probe.mean("seed")
    x = np.arange(probe.sizes["attention"])
    xl = [f"{a:g}" for a in probe.attention.values]
    fig = Figure(figsize=(9.5, 2.9), layout="constrained")
    ax, ax2, ax3 = fig.subplots(1, 3)
    for lv in range(probe.sizes["level"]):
        ax.plot(x, mean["gain"].isel(level=lv), "o-", ms=3, label=f"level {lv}")
    ax.set(
        xlabel="attention weight",
        ylabel="|d state| / |d unit input|",
        title="sensitivity to a small input change",
    )
    ax.legend(fontsize=7)
    for ax_, lv in ((ax2, 1), (ax3, 2)):
        ax_.plot(x, mean["fresh_ari"].isel(level=lv), "o-", ms=3, label="fresh run on B")
        ax_.plot(x, mean["switched_ari"].isel(level=lv), "s-", ms=3, label="switched A -> B, vs B")
        ax_.plot(
            x, mean["switched_ari_vs_old"].isel(level=lv), "^:", ms=3, label="switched A -> B, vs A"
        )
        ax_.set(
            xlabel="attention weight",
            ylabel="ARI",
            ylim=(-0.1, 1.05),
            title=f"switch test, level {lv}",
        )
    ax3.legend(fontsize=7)
    for a in (ax, ax2, ax3):
        a.set_xticks(x, xl, fontsize=7)
    study.save_figure(fig, "sensitivity_and_switch.png")


def plot_switch_maps(study, maps):
    """Level 1 per drawn attention weight: the parts of A and B, then the islands of a
    fresh run on B and of the switched run, both judged against B's parts."""
    from matplotlib.figure import Figure

    from analysis._maps import wrap_title

    if not maps:
        return
    weights = sorted(maps)
    width = 7.6
    fig = Figure(figsize=(width, 2.1 * len(weights) + 0.5), layout="constrained")
    axes = fig.subplots(len(weights), 4, squeeze=False)
    for row, w_att in enumerate(weights):
        truth_new, fresh, switched, truth_old, grid = maps[w_att]
        _common.truth_panel(axes[row, 0], grid, truth_old[1], "scene A parts")
        _common.truth_panel(axes[row, 1], grid, truth_new[1], "scene B parts")
        runs = [("fresh on B", fresh[1]), ("A -> B", switched[1])]
        _common.island_panels(axes[row, 2:], grid, truth_new[1], runs)
        axes[row, 0].set_ylabel(f"attention {w_att:g}", fontsize=8)
    title = (
        "echo_chambers: level 1 after the switch (first scene seed); "
        "ARI = agreement with the parts of B"
    )
    fig.suptitle(wrap_title(title, width, 9), fontsize=9)
    study.save_figure(fig, "switch_maps.png")


def main():
    study = _common.setup(__file__, __doc__)
    import xarray as xr

    p = study.params["study"]
    levels = np.arange(int(study.params["config"]["levels"]))
    coords = dict(seed=p["scene_seeds"], attention=[float(a) for a in p["attention"]])
    count, ari, settled = noise_sweep(study)
    dims = ("seed", "attention", "noise", "level")
    result = xr.Dataset(
        {"count": (dims, count), "ari": (dims, ari), "settled": (dims, settled)},
        coords=coords | dict(noise=[float(x) for x in p["noise"]], level=levels),
    )
    study.save_results(result, "noise_sweep.nc")
    plot_noise(study, result)

    out, maps = probes(study)
    probe = xr.Dataset(
        {k: (("seed", "attention", "level"), v) for k, v in out.items()},
        coords=coords | dict(level=levels),
    )
    probe.attrs.update(probe_noise=float(p["probe_noise"]), perturbation=p["perturbation"])
    study.save_results(probe, "probes.nc")
    plot_probes(study, probe)
    plot_switch_maps(study, maps)

    mean, pm = result.mean("seed"), probe.mean("seed")
    rows = []
    for w_att in result.attention.values:
        row = dict(attention=float(w_att))
        for noise in result.noise.values:
            row[f"ARI L1 @{noise:g}"] = float(mean["ari"].sel(attention=w_att, noise=noise)[1])
        row["islands L1 @0.3"] = float(
            mean["count"].sel(attention=w_att).sel(noise=p["probe_noise"])[1]
        )
        cell = pm.sel(attention=w_att)
        row["gain L0/L1/L2"] = "/".join(f"{g:.2f}" for g in cell["gain"].values)
        row["fresh ARI L1"] = float(cell["fresh_ari"][1])
        row["switched ARI L1"] = float(cell["switched_ari"][1])
        row["switched settled"] = float(cell["switched_settled"].mean())
        rows.append(row)
    print(f"means over {result.sizes['seed']} scene seed(s); probes at noise {p['probe_noise']}")
    print(_common.table(rows, floatfmt=".3g"))
    print(f"settled share of the noise-sweep runs: {float(result['settled'].mean()):.2f}")
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


if __name__ == "__main__":
    main()
