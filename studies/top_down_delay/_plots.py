"""Figures of the top-down-delay study: residuals, spectra, the rule check, settling."""

from __future__ import annotations

import numpy as np

STYLES = {1: ("-", "o", "C0"), 2: ("--", "x", "C1"), 3: (":", "+", "C2")}
CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 200))


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
            for delay in p["delay"]:
                style, _, colour = STYLES[int(delay)]
                res = runs[(kind, name, int(delay), seed)]["residual"]
                t = np.arange(len(res))
                ok = np.isfinite(res) & (res > 0)
                ax.semilogy(t[ok], res[ok], style, color=colour, lw=1, label=f"delay {delay}")
            ax.set_title(f"{kind} nets, {name}", fontsize=8)
            if i == len(kinds) - 1:
                ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("RMS change per step")
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"residual (RMS over levels), seed {seed}", fontsize=9)
    study.save_figure(fig, "residuals.png")


def _unit(ax):
    ax.plot(CIRCLE.real, CIRCLE.imag, color="0.7", lw=0.8)
    ax.axhline(0, color="0.85", lw=0.5)
    ax.axvline(0, color="0.85", lw=0.5)
    ax.set_aspect("equal")
    ax.set(xlim=(-1.15, 1.15), ylim=(-1.15, 1.15))
    ax.tick_params(labelsize=7)


def plot_spectra(study, runs):
    """Every transverse eigenvalue (nothing truncated, so every conjugate pair is whole)."""
    from matplotlib.figure import Figure

    p = study.params["study"]
    if not p["stability_seeds"]:
        return
    kinds, names = p["weights"], [m["name"] for m in study.params["mixing"]]
    seed = p["stability_seeds"][0]
    fig = Figure(figsize=(2.4 * len(names), 2.5 * len(kinds) + 0.3), layout="constrained")
    axes = fig.subplots(len(kinds), len(names), squeeze=False)
    for i, kind in enumerate(kinds):
        for j, name in enumerate(names):
            ax = axes[i, j]
            _unit(ax)
            for delay in p["stability_delays"]:
                _, marker, colour = STYLES[int(delay)]
                r = runs[(kind, name, int(delay), seed)]
                ev = r["eigenvalues"]
                ev = ev[np.isfinite(ev)]
                ax.plot(ev.real, ev.imag, marker, ms=3.5, mfc="none", color=colour, mew=0.7,
                        label=f"d={delay}: rho {r['radius']:.3f}")  # fmt: skip
            ax.set_title(f"{kind}, {name}", fontsize=8)
            ax.legend(fontsize=6, loc="lower left")
            if i == len(kinds) - 1:
                ax.set_xlabel("Re", fontsize=7)
            if j == 0:
                ax.set_ylabel("Im", fontsize=7)
    fig.suptitle(
        f"all transverse eigenvalues at the end state (seed {seed}; unit circle grey)",
        fontsize=9,
    )
    study.save_figure(fig, "spectra.png")


def plot_rule(study, panels):
    """``panels``: rows of (title, computed eigenvalues, rule's eigenvalues, delay)."""
    from matplotlib.figure import Figure

    if not panels:
        return
    ncol = max(len(r) for r in panels)
    fig = Figure(figsize=(2.45 * ncol, 2.55 * len(panels) + 0.3), layout="constrained")
    axes = fig.subplots(len(panels), ncol, squeeze=False)
    for i, row in enumerate(panels):
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(row):
                ax.set_axis_off()
                continue
            title, lam, pred, d = row[j]
            _unit(ax)
            _, marker, colour = STYLES[int(d)]
            lam = lam[np.isfinite(lam)]
            ax.plot(pred.real, pred.imag, ".", ms=2, color="k", label="rule from d=1")
            # computed on top: the rule's dots would hide them where they agree
            ax.plot(lam.real, lam.imag, marker, ms=4.5, mfc="none", mew=0.9, color=colour,
                    label=f"computed, d={d}", zorder=3)  # fmt: skip
            ax.set_title(title, fontsize=7.5)
            if i == len(panels) - 1:
                ax.set_xlabel("Re", fontsize=7)
            if j == 0:
                ax.set_ylabel("Im", fontsize=7)
            ax.legend(fontsize=5.5, loc="lower left")
    fig.suptitle(
        "delay-d eigenvalues at a shared fixed point: computed vs lambda^(d+1) = mu^2",
        fontsize=9,
    )
    study.save_figure(fig, "rule.png")


def plot_settling(study, groups):
    """``groups``: (label, delay, predicted per seed, measured per seed, ratio CI)."""
    from matplotlib.figure import Figure

    if not groups:
        return
    fig = Figure(figsize=(8.0, 3.9), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    top = 1.0
    markers = ["o", "s", "^", "D", "v", "P"]
    labels = list(dict.fromkeys(g[0] for g in groups))
    for label, d, pred, meas, _ in groups:
        _, _, colour = STYLES[int(d)]
        mk = markers[labels.index(label) % len(markers)]
        ax.plot(pred, meas, mk, color=colour, ms=4, mfc="none", label=f"{label}, d={d}")
        top = max(top, float(np.nanmax(np.r_[pred, meas, 1.0])))
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.6", lw=0.8, label="measured = predicted")
    ax.set(xlabel="predicted t_d = t_1 log rho_1 / log rho_d", ylabel="measured t_d (step)")
    ax.legend(fontsize=5.5, loc="lower right")
    ax.tick_params(labelsize=7)
    for k, (_label, d, _, _, (m, lo, hi)) in enumerate(groups):
        _, _, colour = STYLES[int(d)]
        bx.errorbar([k], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=colour, capsize=3, ms=4)
    bx.axhline(1.0, color="0.6", lw=0.8)
    bx.set_xticks(range(len(groups)))
    bx.set_xticklabels([f"{g[0]}\nd={g[1]}" for g in groups], fontsize=5.5, rotation=60)
    bx.set_ylabel("measured / predicted t_d\n(mean, 95% t interval over seeds)", fontsize=7)
    bx.tick_params(labelsize=7)
    fig.suptitle("settling step of delay d against the spectral prediction (one point a seed)",
                 fontsize=9)  # fmt: skip
    study.save_figure(fig, "settling.png")
