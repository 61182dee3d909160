"""Classic consensus models reproduced with glomsim: DeGroot, Hegselmann-Krause and
self-attention dynamics on the sphere, measured against their theoretical numbers.

Run: python studies/classic_limits/run.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402


def degroot(study):
    """Lazy uniform averaging on a grid: consensus value and rate against the matrix theory."""
    import scipy.linalg

    import analysis as an
    import glomsim as gs
    from glomsim.reference import neighbourhood

    p = study.params["degroot"]
    cfg = study.config(p["config"])
    w = gs.identity_weights(cfg)
    n = cfg.n_columns
    init = np.random.default_rng(p["init_seed"]).normal(size=(1, n, cfg.dim))
    ds = gs.simulate(cfg, w, init=init)

    # theory: M = (w_prev I + w_att A) / (w_prev + w_att), A uniform over each neighbourhood
    _, _, w_prev, w_att = cfg.mix_weights(1)[0]
    allowed = neighbourhood(cfg.position_array(), cfg.attention_at(0).radius).astype(float)
    mixing = (w_prev * np.eye(n) + w_att * allowed / allowed.sum(1, keepdims=True)) / (
        w_prev + w_att
    )
    moduli = np.sort(np.abs(np.linalg.eigvals(mixing)))[::-1]
    values, left = scipy.linalg.eig(mixing, left=True, right=False)
    pi = np.real(left[:, np.argmax(np.real(values))])
    pi /= pi.sum()
    consensus = pi @ init[0]

    conv = an.convergence(ds)
    stab = an.stability(cfg, w, ds)
    final = ds.embedding.values[-1, 0]
    rows = [
        dict(
            quantity="consensus value, feature 0",
            theory=consensus[0],
            measured=float(final[:, 0].mean()),
        ),
        dict(
            quantity="consensus value, feature 1",
            theory=consensus[1],
            measured=float(final[:, 1].mean()),
        ),
        dict(
            quantity="plain mean of x0 (not the limit)",
            theory=float(init[0, :, 0].mean()),
            measured=float("nan"),
        ),
        dict(
            quantity="rate |lambda_2| (convergence fit)",
            theory=moduli[1],
            measured=float(conv.rate[0]),
        ),
        dict(
            quantity="transverse spectral radius",
            theory=moduli[1],
            measured=float(stab.spectral_radius_transverse),
        ),
        dict(
            quantity="neutral dimension (= dim)",
            theory=float(cfg.dim),
            measured=float(stab.neutral_dimension),
        ),
    ]
    summary = dict(
        max_deviation_from_theory=float(np.abs(final - consensus).max()),
        settled_step=int(conv.settled_step[0]),
    )
    return ds, conv, moduli, consensus, rows, summary


def plot_degroot(study, ds, conv, moduli, consensus):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.0), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    t = ds.time.values
    ax.plot(t, ds.embedding.values[:, 0, :, 0], lw=0.8, color="tab:blue", alpha=0.6)
    ax.axhline(consensus[0], color="k", ls="--", lw=1, label=r"$\pi^\top x_0$ (theory)")
    ax.set_xlim(0, 40)
    ax.set(xlabel="step", ylabel="feature 0", title="DeGroot: 24 columns, 4x6 grid")
    ax.legend(fontsize=8)
    res = conv.residual.values[:, 0]
    ok = np.isfinite(res) & (res > 0)
    ax2.semilogy(t[ok], res[ok], color="tab:blue", label="measured residual")
    k = 100  # anchor the theory line where the slower modes have died out
    ax2.semilogy(
        t,
        res[k] * moduli[1] ** (t - t[k]),
        "k--",
        lw=1,
        label=rf"$|\lambda_2|^t$, $|\lambda_2|$={moduli[1]:.4f}",
    )
    ax2.set(xlabel="step", ylabel="RMS change per step", title="rate")
    ax2.set_ylim(max(res[ok].min(), 1e-17), res[ok].max() * 3)
    ax2.legend(fontsize=8)
    study.save_figure(fig, "degroot.png")


def hegselmann_krause(study):
    """Equally spaced agents: clusters, their gaps and the freezing step against theory."""
    import analysis as an
    import glomsim as gs

    p = study.params["hk"]
    eps = float(p["epsilon"])
    rows, trajectories = [], {}
    for n in p["n"]:
        steps = 5 * n // 6 + 10
        cfg = study.config(p["config"], grid=[1, n], steps=steps)
        init = np.arange(n, dtype=float).reshape(1, n, 1)
        ds = gs.simulate(cfg, gs.identity_weights(cfg), init=init)
        traj = ds.embedding.values[:, 0, :, 0]
        trajectories[n] = traj
        values, sizes = np.unique(traj[-1], return_counts=True)
        predicted = [3] * (n // 6) + ([n % 6] if n % 6 else []) + [3] * (n // 6)
        conv = an.convergence(ds)
        gaps = np.diff(values)
        rows.append(
            dict(
                n=n,
                clusters_theory=len(predicted),
                clusters=len(values),
                sizes_match=bool(sizes.tolist() == predicted),
                min_gap=float(gaps.min()) if len(gaps) else float("nan"),
                gap_above_eps=bool(len(gaps) == 0 or gaps.min() > eps),
                freeze_theory=5 * n / 6,
                freeze_step=int(conv.settled_step[0]),
                finite_time=bool(conv.finite_time[0]),
            )
        )
    return rows, trajectories


def plot_hk(study, rows, trajectories):
    from matplotlib.figure import Figure

    n_show = study.params["hk"]["n_show"]
    traj = trajectories[n_show]
    fig = Figure(figsize=(8.0, 3.0), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(np.arange(len(traj)), traj, color="tab:red", lw=0.9, alpha=0.7)
    ax.set(
        xlabel="step",
        ylabel="opinion",
        title=f"Hegselmann-Krause, {n_show} agents 1 apart, eps = 1",
    )
    n = np.array([r["n"] for r in rows])
    ax2.plot(n, [r["freeze_step"] for r in rows], "o", ms=4, label="measured freezing step")
    ax2.plot(n, 5 * n / 6, "k--", lw=1, label="5n/6 (Hegarty-Wedin)")
    ax2.plot(
        n, [r["clusters"] for r in rows], "s", ms=3, color="tab:green", label="clusters (measured)"
    )
    ax2.plot(
        n, [r["clusters_theory"] for r in rows], "g_", ms=8, label="2 floor(n/6) + [n mod 6 > 0]"
    )
    ax2.set(xlabel="agents n", ylabel="steps / clusters", title="freezing and clusters")
    ax2.legend(fontsize=7)
    study.save_figure(fig, "hegselmann_krause.png")


def sphere(study):
    """Dot-kernel attention + l2 on S^2: one cluster, its local rate, metastability in beta."""
    import analysis as an
    import glomsim as gs

    p = study.params["sphere"]
    n, tol = int(p["n"]), float(p["merge_tol"])
    rows, kept = [], {}
    for beta in p["beta"]:
        for seed in p["init_seeds"]:
            cfg = study.config(p["config"], grid=[1, n], attention=dict(beta=float(beta)))
            w = gs.identity_weights(cfg)
            x = np.random.default_rng(seed).normal(size=(1, n, cfg.dim))
            x /= np.linalg.norm(x, axis=-1, keepdims=True)
            ds = gs.simulate(cfg, w, init=x)
            emb = ds.embedding.values[:, 0]
            min_cos = np.einsum("tid,tjd->tij", emb, emb).min(axis=(1, 2))
            merged = np.nonzero(1 - min_cos < tol)[0]
            merge_step = int(merged[0]) if len(merged) else -1
            conv = an.convergence(ds)
            # the default fit spans the whole decay, metastable plateau included; the local
            # rate at the cluster is fitted on the steps after the last merge only
            start = max(merge_step - 10, 0) if merge_step >= 0 else 0
            conv_end = an.convergence(ds.isel(time=slice(start, None)))
            stab = an.stability(cfg, w, ds)
            isl = an.islands(ds, threshold=1 - 1e-3, connectivity="global", time=-1)
            log_e = an.energy(ds).log_energy.values[:, 0]
            _, _, w_prev, w_att = cfg.mix_weights(1)[0]
            rows.append(
                dict(
                    beta=float(beta),
                    seed=int(seed),
                    merge_step=merge_step,
                    clusters_end=int(isl["count"].values[-1, 0]),
                    one_minus_min_cos=float(1 - min_cos[-1]),
                    rate_whole_run=float(conv.rate[0]),
                    rate_after_merge=float(conv_end.rate[0]) if merge_step >= 0 else math.nan,
                    rate_theory=w_prev / (w_prev + w_att),
                    fixed_point_res=float(stab.fixed_point_residual),
                    transverse_radius=float(stab.spectral_radius_transverse),
                    neutral_dim=int(stab.neutral_dimension),
                    log_energy_gap=float(math.log(n * n) + beta - log_e[-1]),
                    # softmax weight of the farthest column relative to a coinciding one:
                    # how hard the most distant clusters still pull on each other
                    far_weight=float(np.exp(-beta * (1 - min_cos[-1]))),
                )
            )
            kept[(float(beta), int(seed))] = (emb, min_cos)
    return rows, kept


def plot_sphere(study, kept):
    from matplotlib.figure import Figure

    betas = sorted({b for b, _ in kept})
    seed0 = min(s for _, s in kept)
    fig = Figure(figsize=(3.0 * len(betas) + 3.0, 3.2), layout="constrained")
    colours = {beta: f"C{k}" for k, beta in enumerate(betas)}
    for k, beta in enumerate(betas):
        ax = fig.add_subplot(1, len(betas) + 1, k + 1, projection="3d")
        emb, _ = kept[(beta, seed0)]
        for i in range(emb.shape[1]):
            ax.plot(*emb[:, i].T, lw=0.6, color="0.5")
        ax.scatter(*emb[0].T, s=6, color="tab:blue")
        ax.scatter(*emb[-1].T, s=30, color="tab:red", marker="*")
        ax.set_title(f"beta = {beta:g}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
        ax.set_box_aspect((1, 1, 1))
    ax = fig.add_subplot(1, len(betas) + 1, len(betas) + 1)
    for (beta, _seed), (_, min_cos) in sorted(kept.items()):
        gap = np.maximum(1 - min_cos, 1e-17)
        ax.loglog(np.arange(1, len(gap) + 1), gap, color=colours[beta], lw=0.8, alpha=0.8)
    for beta in betas:
        ax.plot([], [], color=colours[beta], label=f"beta = {beta:g}")
    ax.set(xlabel="step + 1", ylabel="1 - min cosine (floor 1e-17)", title="diameter of the cloud")
    ax.legend(fontsize=7)
    study.save_figure(fig, "sphere.png")


def main():
    study = _common.setup(__file__, __doc__)
    import xarray as xr

    import glomsim as gs

    ds, conv, moduli, consensus, rows, summary = degroot(study)
    gs.save(ds, study.results / "degroot.nc", overwrite=True)  # a rerun replaces it
    plot_degroot(study, ds, conv, moduli, consensus)
    print("DeGroot (lazy uniform averaging, 4x6 grid, radius 1.5)")
    print(_common.table(rows, floatfmt=".6g"))
    print(
        f"max |final - pi^T x0| = {summary['max_deviation_from_theory']:.2e}, "
        f"settled at step {summary['settled_step']}\n"
    )

    hk_rows, trajectories = hegselmann_krause(study)
    plot_hk(study, hk_rows, trajectories)
    xr.Dataset.from_dataframe(_frame(hk_rows, "n")).pipe(study.save_results, "hk.nc")
    print("Hegselmann-Krause, equally spaced agents, eps = 1")
    print(_common.table(hk_rows))
    n_match = sum(r["sizes_match"] for r in hk_rows)
    worst = max(abs(r["freeze_step"] - r["freeze_theory"]) for r in hk_rows)
    print(
        f"cluster sizes as predicted for {n_match}/{len(hk_rows)} values of n; "
        f"max |freezing step - 5n/6| = {worst:.2f}\n"
    )

    sphere_rows, kept = sphere(study)
    plot_sphere(study, kept)
    frame = _frame(sphere_rows, ["beta", "seed"])
    xr.Dataset.from_dataframe(frame).pipe(study.save_results, "sphere.nc")
    print("Self-attention on S^2 (dot kernel + l2, N = 32, step 1/2)")
    print(_common.table(sphere_rows, floatfmt=".4g"))
    print(f"\ndone in {study.elapsed():.1f} s; figures in {study.figures}")


def _frame(rows, index):
    import pandas as pd

    return pd.DataFrame(rows).set_index(index)


if __name__ == "__main__":
    main()
