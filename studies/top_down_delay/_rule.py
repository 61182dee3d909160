"""The (1+d)/2 rule: the delay-d spectrum predicted from the delay-1 spectrum, checked.

With no previous-state and no attention weight the step map's Jacobian at a state E has
only off-diagonal level blocks: bottom-up B (level l from l-1) and top-down U (level l
from l+1), each already multiplied by the normalisation's projection. With delay d the
map acts on (E_t, ..., E_t-d+1) and its Jacobian is the companion matrix

    [[B, 0, ..., 0, U], [I, 0, ..., 0], ..., [0, ..., I, 0]],

whose eigenvalues lambda solve det(lambda^d - lambda^(d-1) B - U) = 0. Scaling level l by
s^l turns lambda^(d-1) B + U into lambda^((d-1)/2) (B + U); B + U is the delay-1 Jacobian,
whose spectrum is symmetric (mu and -mu: flip the sign of every other level). So the
nonzero eigenvalues of delay d are the d+1 roots of lambda^(d+1) = mu^2, one set per pair
(+mu, -mu) of nonzero delay-1 eigenvalues, and all the others are 0.

This module finds a fixed point shared by all delays, computes the full spectra with
analysis.stability there, and compares them with the rule; it also measures settling.
"""

from __future__ import annotations

import math

import numpy as np


def t_interval(x, level=0.95):
    """(mean, lo, hi): the 95% t interval of the mean (NaN-free input; (m, m, m) if n=1)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def fmt_ci(ci, fmt=".3g"):
    m, lo, hi = ci
    if not math.isfinite(m):
        return "-"
    if lo == hi:
        return format(m, fmt)
    return f"{format(m, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


def predict(mu, d):
    """The rule's delay-d eigenvalues from the delay-1 ones, each pair (mu, -mu) counted
    twice: every mu contributes the d+1 roots of lambda^(d+1) = mu^2 (mu = 0 gives d+1
    zeros), so the list has (d+1) * len(mu) entries, twice the rule's multiset."""
    mu = np.asarray(mu, dtype=np.complex128)
    m2 = mu * mu
    mod = np.abs(m2) ** (1.0 / (d + 1))
    ang = np.angle(m2)
    j = np.arange(d + 1)
    return (mod[:, None] * np.exp(1j * (ang[:, None] + 2 * np.pi * j) / (d + 1))).ravel()


def mismatch(computed, predicted2, tau):
    """Largest distance in an optimal one-to-one matching of the rule's eigenvalues of
    modulus > tau (``predicted2`` holds each twice) with as many computed ones of largest
    modulus; the computed list is doubled so that multiplicities are compared too."""
    from scipy.optimize import linear_sum_assignment

    computed = np.asarray(computed)
    computed = computed[np.isfinite(computed)]
    big = predicted2[np.abs(predicted2) > tau]
    k = (len(big) + 1) // 2
    if k == 0:
        return math.nan
    top = computed[np.argsort(-np.abs(computed), kind="stable")[:k]]
    c2 = np.concatenate([top, top])
    p2 = big[np.argsort(-np.abs(big), kind="stable")[: 2 * k]]
    cost = np.abs(c2[:, None] - p2[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def _cfg(study, mix, delay, steps, seed):
    r = study.params["rule"]
    return study.config(
        mix=mix, top_down_delay=int(delay), seed=int(seed), grid=r["grid"], steps=int(steps)
    )


def _inputs(study, cfg, seed):
    from glomsim.scenes import make_scene

    return make_scene(
        grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=int(seed), **study.params["scene"]
    )


def _weights(cfg, kind, seed):
    import glomsim as gs

    return gs.identity_weights(cfg) if kind == "identity" else gs.random_weights(cfg, seed=seed)


def _init(study, cfg, seed):
    rng = np.random.default_rng(10_000 + int(seed))
    scale = float(study.params["study"]["init_scale"])
    return scale * rng.standard_normal((cfg.levels, cfg.n_columns, cfg.dim))


def fixed_point(study, kind, mix, seed):
    """A fixed point of the map with mixing ``mix`` (any delay: at a fixed point the delay
    drops out), found by the delay-1 run with extra previous-state weight: under l2
    normalisation a fixed point E = normalize(x) also solves E = normalize(x + p E), so the
    damping changes the path only, not the fixed points."""
    import glomsim as gs

    r = study.params["rule"]
    damped = dict(mix, previous=float(mix.get("previous", 0.0)) + float(r["damping"]))
    cfg = _cfg(study, damped, 1, r["fixed_point_steps"], seed)
    w = _weights(cfg, kind, seed)
    scene = _inputs(study, cfg, seed)
    ds = gs.simulate(cfg, w, inputs=scene, init=_init(study, cfg, seed))
    return ds.embedding.values[-1].astype(np.float64), w, scene


def spectrum(study, mix, delay, w, scene, E, seed):
    """(all eigenvalues, fixed-point residual) of the delay-d map's Jacobian at
    (E, ..., E), from analysis.stability (dense, every eigenvalue kept)."""
    import analysis as an
    import glomsim as gs

    cfg = _cfg(study, mix, delay, delay, seed)
    ds = gs.simulate(cfg, w, inputs=scene, init=E, steps=int(delay))
    n = E.size * int(delay)
    st = an.stability(cfg, w, ds, k=n, dense_max=n + 1)
    ev = st["eigenvalues_real"].values + 1j * st["eigenvalues_imag"].values
    return ev, float(st["fixed_point_residual"])


def settling(study, mix, delay, w, scene, seed, E):
    """(settling step, RMS distance of the end state to the fixed point E) of the run from
    the study's random initial state; the step is NaN if some level never settles."""
    import analysis as an
    import glomsim as gs

    r = study.params["rule"]
    cfg = _cfg(study, mix, delay, r["settle_steps"], seed)
    ds = gs.simulate(cfg, w, inputs=scene, init=_init(study, cfg, seed))
    settled = an.convergence(ds)["settled_step"].values
    step = float(settled.max()) if (settled >= 0).all() else math.nan
    dist = float(np.sqrt(np.mean((ds.embedding.values[-1] - E) ** 2)))
    return step, dist


def check(study, kind, mix, seed, delays, with_settling):
    """One (nets, mixing, seed): spectra of delay 1 and each d at a shared fixed point, the
    rule's mismatch, and (optionally) settling steps. Returns a dict of records."""
    tau = float(study.params["rule"]["tau"])
    E, w, scene = fixed_point(study, kind, mix, seed)
    mu, res1 = spectrum(study, mix, 1, w, scene, E, seed)
    out = dict(mu=mu, fp_residual=res1, rho={1: float(np.nanmax(np.abs(mu)))}, lam={})
    out["mismatch"], out["rho_pred"], out["settled"], out["end_dist"] = {}, {}, {}, {}
    for d in delays:
        lam, _ = spectrum(study, mix, d, w, scene, E, seed)
        out["lam"][d] = lam
        out["rho"][d] = float(np.nanmax(np.abs(lam)))
        out["rho_pred"][d] = out["rho"][1] ** (2.0 / (d + 1))
        out["mismatch"][d] = mismatch(lam, predict(mu, d), tau)
    if with_settling:
        for d in (1, *delays):
            out["settled"][d], out["end_dist"][d] = settling(study, mix, d, w, scene, seed, E)
    return out
