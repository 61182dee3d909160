"""Is the settled state stable? Jacobian spectrum, perturbation recovery, Lyapunov exponent.

All three linearise or re-run the update rule in float64, whatever the dataset's dtype:
the Jacobian uses central differences of :func:`glomsim.reference.step` (the executable
spec), so it measures the rule itself, not a kernel's rounding.

The step map acts on the state ``z = (E_t, E_{t-1}, ..., E_{t-d+1})`` with ``d`` the
top-down delay (``z = E_t`` for the default ``d = 1``): ``G(z) = (F(E_t, E_{t+1-d}), E_t,
..., E_{t-d+2})``.

Pure consensus has a neutral subspace: shifting every column of an island (columns that
agree and attend to each other) by the same vector is again a fixed point, so the
Jacobian has eigenvalue 1 there, ``dim`` directions per island (``dim - 1`` under ``l2``,
which only allows shifts along the sphere; ``dim - 2`` under ``layernorm``). With identity
nets a shift passes between levels, and it is the joint shift of islands linked across
levels that is neutral. The subspace is found, checked (``J v = v``) and reported as
``neutral_dimension``; ``spectral_radius_transverse`` is the radius of the rest of the
spectrum, which decides whether the islands are stable.
"""

from __future__ import annotations

import math

import numpy as np

from glomsim.variables import annotate

from ._common import add_history
from ._linearisation import (
    DENSE_MAX,
    NEUTRAL_TOL,
    _check_positive,
    _delay_states,
    _fd_step,
    _leading,
    _neutral_subspace,
    _prepare,
    _spectra_arnoldi,
    _spectra_dense,
    _StepMap,
)

__all__ = ["stability", "perturbation_recovery", "lyapunov"]


def stability(
    cfg,
    weights,
    ds,
    *,
    k: int = 6,
    eps: float | None = None,
    island_tol: float | None = None,
    neutral_tol: float = NEUTRAL_TOL,
    dense_max: int = DENSE_MAX,
    seed: int = 0,
):
    """Spectrum of the step map's Jacobian at the last recorded state, neutral part apart.

    Parameters
    ----------
    cfg : GlomConfig or None
        The run's config (None: read from ``ds``); linearised in float64.
    weights : GlomWeights or None
        The run's weights (None: ``random_weights(cfg, cfg.seed)``, as simulate does);
        checked against ``ds.attrs["weights_hash"]``.
    ds : xarray.Dataset
        A simulation; its last recorded state is the linearisation point (with
        ``top_down_delay = d`` the last ``d`` steps must be recorded).
    k : int
        Number of leading eigenvalues reported.
    eps : float, optional
        Relative central-difference step; default ``eps_machine**(1/3)`` (about 6e-6),
        times ``max(1, max|z|)``.
    island_tol : float, optional
        Columns closer than this (Euclidean) agree; default ``sqrt(eps)`` of the data's
        dtype times ``max(1, max|z|)`` (1.5e-8 for float64 data, 3.5e-4 for float32).
    neutral_tol : float
        A common-shift direction v is neutral when ``|J v - v| <= neutral_tol``.
    dense_max : int
        State sizes up to this build the dense Jacobian (2 evaluations of the rule per
        state entry) and use ``numpy.linalg.eigvals``; larger ones use ARPACK (``eigs``)
        on a matrix-free ``LinearOperator`` of central-difference JVPs.
    seed : int
        Seeds the random start vectors (ARPACK, neutrality checks).

    Returns
    -------
    xarray.Dataset
        Scalars ``spectral_radius``, ``spectral_radius_transverse``, ``neutral_dimension``,
        ``neutral_defect``, ``fixed_point_residual``; ``island_count(level)``;
        ``eigenvalues_real(mode)``, ``eigenvalues_imag(mode)``,
        ``transverse_eigenvalues_real(mode)``, ``transverse_eigenvalues_imag(mode)``
        (largest modulus first, NaN-padded); attrs ``method`` ("dense" or "arnoldi"),
        ``state_size``, ``at_step``.

    Examples
    --------
    Lazy uniform averaging of 4 columns that already agree: common shifts are neutral
    (2 dims), the rest contracts by 1/2 per step.

    >>> import glomsim as gs
    >>> from analysis import stability
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 4), steps=1, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=0, top_down=0),
    ...                     attention=gs.Attention(beta=0.0))
    >>> w = gs.identity_weights(cfg)
    >>> ds = gs.simulate(cfg, w, init=np.ones((1, 4, 2)))
    >>> out = stability(cfg, w, ds)
    >>> int(out.neutral_dimension), round(float(out.spectral_radius_transverse), 6)
    (2, 0.5)
    """
    func = "stability"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "k", k, integer=True)
    _check_positive(func, "eps", eps, allow_none=True)
    _check_positive(func, "island_tol", island_tol, allow_none=True)
    _check_positive(func, "neutral_tol", neutral_tol)
    _check_positive(func, "dense_max", dense_max, integer=True)
    rng = np.random.default_rng(seed)

    z, T = _delay_states(cfg64, ds, func)
    t = T + 1
    gmap = _StepMap(cfg64, weights, ds["input"].values)
    h = _fd_step(z, eps)
    scale = max(1.0, float(np.max(np.abs(z))))
    if island_tol is None:
        data_eps = float(np.finfo(ds["embedding"].dtype).eps)
        island_tol = math.sqrt(data_eps) * scale
    gz = gmap(z, t)
    fixed_res = float(np.sqrt(np.mean((gz - z) ** 2)) / max(float(np.sqrt(np.mean(z**2))), 1.0))

    V, counts, defect = _neutral_subspace(
        cfg64, weights, gmap, z, t, h, island_tol, neutral_tol, rng
    )
    n = z.size
    if n <= max(dense_max, k + 2):
        method = "dense"
        full, trans = _spectra_dense(gmap, z, t, h, V)
    else:
        method = "arnoldi"
        full, trans = _spectra_arnoldi(gmap, z, t, h, V, k, rng)
    m = V.shape[1]
    lead = _leading(full, k)
    lead_t = _leading(trans, k) if n > m else np.full(k, np.nan + 0j)
    radius = float(np.max(np.abs(full))) if len(full) else math.nan
    radius_t = float(np.max(np.abs(trans))) if n > m and len(trans) else math.nan

    import xarray as xr

    out = xr.Dataset(
        {
            "spectral_radius": ((), radius),
            "spectral_radius_transverse": ((), radius_t),
            "neutral_dimension": ((), np.int64(m)),
            "neutral_defect": ((), defect),
            "fixed_point_residual": ((), fixed_res),
            "island_count": (("level",), counts),
            "eigenvalues_real": (("mode",), lead.real),
            "eigenvalues_imag": (("mode",), lead.imag),
            "transverse_eigenvalues_real": (("mode",), lead_t.real),
            "transverse_eigenvalues_imag": (("mode",), lead_t.imag),
        },
        coords={"level": ds["level"].copy(), "mode": ("mode", np.arange(k, dtype=np.int64))},
    )
    annotate(out, "stability")
    out = add_history(
        out, ds.attrs, func, {"k": k, "eps": eps, "island_tol": island_tol, "seed": seed}
    )
    out.attrs.update(method=method, state_size=n, at_step=T, fd_step=h)
    return out


# ----- perturbation recovery -------------------------------------------------------------------
def _continuation_config(cfg, T, steps):
    """The config that continues a run from step T: mixing schedules start at entry T."""
    import glomsim as gs

    def shift(m):
        fields = {}
        for name in ("bottom_up", "top_down", "previous", "attention"):
            v = getattr(m, name)
            fields[name] = v[min(T, len(v) - 1) :] if isinstance(v, tuple) else v
        return gs.Mix(**fields)

    mix = shift(cfg.mix) if isinstance(cfg.mix, gs.Mix) else tuple(shift(m) for m in cfg.mix)
    return cfg.replace(mix=mix, steps=steps, dtype="float64")


def perturbation_recovery(cfg, weights, ds, *, size=1e-6, steps=50, seed=0):
    """Perturb the last recorded state and follow its distance to the unperturbed run.

    Both runs continue from the last recorded state E_T with :func:`glomsim.simulate` in
    float64 (mixing schedules continue at step T + 1). The perturbation is Gaussian over
    all levels, columns and features, scaled to RMS ``size * RMS(E_T)`` (``size`` when
    E_T is zero).

    Parameters
    ----------
    cfg, weights, ds
        As for :func:`stability`.
    size : float
        Relative RMS size of the perturbation.
    steps : int
        Steps to follow.
    seed : int
        Seed of the perturbation.

    Returns
    -------
    xarray.Dataset
        ``distance(time)`` (RMS over level, column, feature), ``distance_level(time, level)``,
        ``growth_factor(time)`` (distance ratio per step, NaN at the start) and the scalar
        ``mean_growth_factor`` (geometric mean over the run); ``time`` counts the steps of
        the original run (T ... T + steps).

    Notes
    -----
    With ``top_down_delay > 1`` the restarted runs read E_T for the steps before T, as
    :func:`glomsim.simulate` does before step 0; at a fixed point that is the true history.
    A component of the perturbation along neutral directions (pure consensus) does not
    decay, so the distance levels off at its size: see :func:`stability`.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import perturbation_recovery
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 5), steps=30, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=1, top_down=0),
    ...                     attention=gs.Attention(beta=0.0))
    >>> w = gs.identity_weights(cfg)
    >>> inputs = np.random.default_rng(0).normal(size=(5, 2))
    >>> rec = perturbation_recovery(cfg, w, gs.simulate(cfg, w, inputs=inputs), steps=10)
    >>> round(float(rec.growth_factor[-1]), 3)  # (w_prev + w_att) / (sum of weights)
    0.667
    """
    import xarray as xr

    import glomsim as gs

    func = "perturbation_recovery"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "size", size)
    _check_positive(func, "steps", steps, integer=True)
    T = int(ds["time"].values[-1])
    start = np.asarray(ds["embedding"].isel(time=-1).values, dtype=np.float64)
    inputs = np.asarray(ds["input"].values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    delta = rng.standard_normal(start.shape)
    rms = float(np.sqrt(np.mean(start**2)))
    delta *= size * (rms if rms > 0 else 1.0) / float(np.sqrt(np.mean(delta**2)))

    run_cfg = _continuation_config(cfg64, T, steps)
    base = gs.simulate(run_cfg, weights, inputs=inputs, init=start, steps=steps)
    pert = gs.simulate(run_cfg, weights, inputs=inputs, init=start + delta, steps=steps)
    diff = pert["embedding"].values - base["embedding"].values
    dist_level = np.sqrt(np.mean(diff**2, axis=(2, 3)))
    dist = np.sqrt(np.mean(diff**2, axis=(1, 2, 3)))
    growth = np.full(len(dist), np.nan)
    np.divide(dist[1:], dist[:-1], out=growth[1:], where=dist[:-1] > 0)
    mean_growth = math.nan
    if dist[0] > 0 and dist[-1] > 0:
        mean_growth = math.exp(math.log(dist[-1] / dist[0]) / steps)
    elif dist[0] > 0:
        mean_growth = 0.0

    times = T + np.arange(steps + 1, dtype=np.int64)
    out = xr.Dataset(
        {
            "distance": (("time",), dist),
            "distance_level": (("time", "level"), dist_level),
            "growth_factor": (("time",), growth),
            "mean_growth_factor": ((), mean_growth),
        },
        coords={"time": ("time", times), "level": ds["level"].copy()},
    )
    annotate(out, "perturbation_recovery")
    return add_history(out, ds.attrs, func, {"size": size, "steps": steps, "seed": seed})


# ----- largest Lyapunov exponent ------------------------------------------------------------------
def lyapunov(cfg, weights, ds, *, steps=100, eps=None, seed=0):
    """Largest Lyapunov exponent along the trajectory continuing from the last state.

    Benettin's method: a unit tangent vector is pushed through the Jacobian of each step
    (central-difference JVP of :func:`glomsim.reference.step`, float64) and renormalised;
    the exponent is the mean log stretch per step.

    Parameters
    ----------
    cfg, weights, ds
        As for :func:`stability`.
    steps : int
        Steps to follow from the last recorded state.
    eps : float, optional
        Relative central-difference step, as for :func:`stability`.
    seed : int
        Seed of the initial tangent vector.

    Returns
    -------
    xarray.Dataset
        Scalars ``exponent`` (natural log per step; -inf if the tangent vector is
        annihilated) and ``multiplier`` (``exp(exponent)``); ``local_exponent(time)`` (log
        stretch of each step) and ``running_exponent(time)`` (running mean); ``time`` is
        the step computed (T + 1 ... T + steps).

    Notes
    -----
    For pure consensus the neutral common shifts give exponent 0 at a consensus state
    (the tangent vector aligns with them), whatever the transverse contraction.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import lyapunov
    >>> cfg = gs.GlomConfig(levels=1, dim=1, grid=(1, 3), steps=5, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=1, top_down=0, previous=1, attention=0))
    >>> w = gs.identity_weights(cfg)
    >>> out = lyapunov(cfg, w, gs.simulate(cfg, w), steps=5)
    >>> round(float(out.multiplier), 6)  # E <- (u + E) / 2 halves every tangent vector
    0.5
    """
    import xarray as xr

    func = "lyapunov"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "steps", steps, integer=True)
    _check_positive(func, "eps", eps, allow_none=True)
    z, T = _delay_states(cfg64, ds, func)
    gmap = _StepMap(cfg64, weights, ds["input"].values)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(z.shape)
    v /= np.linalg.norm(v)
    local = np.full(steps, np.nan)
    for s in range(steps):
        t = T + 1 + s
        h = _fd_step(z, eps)
        jv = gmap.jvp(z, v, t, h)
        stretch = float(np.linalg.norm(jv))
        if not math.isfinite(stretch):
            raise FloatingPointError(
                f"{func}: the tangent vector became non-finite at step {t}; the trajectory "
                "diverges (try a smaller eps or check the run)"
            )
        if stretch == 0.0:
            local[s] = -math.inf
            break
        local[s] = math.log(stretch)
        v = jv / stretch
        z = gmap(z, t)
    done = np.isfinite(local) | (local == -math.inf)
    counts = np.arange(1, steps + 1)
    with np.errstate(invalid="ignore"):
        running = np.where(done, np.cumsum(np.where(done, local, 0.0)) / counts, np.nan)
    exponent = -math.inf if np.any(local == -math.inf) else float(np.mean(local))
    out = xr.Dataset(
        {
            "exponent": ((), exponent),
            "multiplier": ((), math.exp(exponent) if exponent < 700 else math.inf),
            "local_exponent": (("time",), local),
            "running_exponent": (("time",), running),
        },
        coords={"time": ("time", T + 1 + np.arange(steps, dtype=np.int64))},
    )
    annotate(out, "lyapunov")
    return add_history(out, ds.attrs, func, {"steps": steps, "eps": eps, "seed": seed})
