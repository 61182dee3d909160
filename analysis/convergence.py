"""How fast, and whether, each level settles: residuals, settling step and geometric rate.

Definitions (``docs/analysis-dynamics.md`` has the maths and the classic results):

- ``residual(time, level)``: the RMS over (column, feature) of the change of one step.
  A run that records ``change(step, level)`` (``summaries_only`` runs, and every run since
  issue 14, thinned ones included) gives it at every step (``time`` = the run's ``step``
  within the recorded window), so thinning never hides what happened between two records.
  Otherwise (older files) it is the RMS of ``E_t - E_prev`` between recorded states divided
  by the steps between them: for a thinned run that is an average over the gap, which can
  alias an oscillation (a swap recorded every 2 steps looks settled), and the output's
  attrs say so. NaN at the first step.
- ``settled_step(level)``: the first step after which the residual stays at or below
  ``tolerance = rtol * final_rms``; -1 if the last residual is still above.
- ``rate(level)``: ``exp(slope)`` of a least-squares line through ``log residual`` against
  the step, over the tail of the *longest* unbroken stretch of residuals above the
  floating-point floor ``100 * eps * final_rms``: round-off spikes that rise above the
  floor after a decay form short stretches of their own and are not fitted. NaN when
  fewer than 3 residuals qualify or when that stretch drops to the floor far faster than
  the fitted rate predicts (convergence in finitely many steps, as in Hegselmann-Krause;
  ``finite_time`` is then True).
"""

from __future__ import annotations

import math

import numpy as np

from glomsim._validate import check_real
from glomsim.variables import annotate, check_dataset

from ._common import add_history, has_step_change

__all__ = ["convergence"]

#: Residuals at most this many machine epsilons (relative to the level's size) are noise.
FLOOR_EPS = 100.0
#: Fewest residuals above the floor for a rate fit.
MIN_FIT_POINTS = 3
#: Finite-time convergence: the fitted decay would still be this far above the floor at the
#: step where the residual hit the floor.
FINITE_TIME_MARGIN = 100.0
#: The output's ``residual_from`` attr: where the residual came from.
FROM_CHANGE = "change: the RMS change of every step, recorded by the run"
FROM_STATES = "embedding: the RMS change between consecutive recorded states per step"
#: The output's ``residual_warning`` attr for a thinned run without ``change``.
ALIASING = (
    "the run was thinned (record_every > 1) and does not record change(step, level): the "
    "residual is the change between recorded states divided by the gap, an average per "
    "step over the gap that may alias oscillations (a state that returns every k steps "
    "looks settled when recorded every k steps); rerun without thinning, or with a "
    "glomsim that records change, for the full run's residual"
)


def default_rtol(dtype) -> float:
    """Default relative settling tolerance: 1e-6 for float64 data, 1e-4 for float32."""
    return 1e-6 if np.dtype(dtype) == np.float64 else 1e-4


def convergence(ds, *, rtol: float | None = None, tail: float = 0.5):
    """Residual, settling step and geometric convergence rate of every level.

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation with ``embedding(time, level, column, feature)``; may be dask-backed
        (the big array is reduced chunk by chunk; the (time, level) results are computed).
        When it records ``change(step, level)`` (every run does since issue 14, thinned
        and ``summaries_only`` ones included), the residual is that per-step change, at
        every step between the first and last recorded state, and the final size its last
        ``rms`` (or the last recorded state's): the same values an unthinned run gives.
    rtol : float, optional
        Settling tolerance relative to each level's RMS embedding size at the last recorded
        step. Default 1e-6 for float64 data and 1e-4 for float32 (about 5000 and 800 times
        the machine epsilon: the residual of a float32 run never falls much below 1e-6).
    tail : float
        Fraction (0, 1] of the longest stretch of residuals above the float floor used for
        the rate fit; the second half by default, so early transients of faster modes do
        not bias the asymptotic rate.

    Returns
    -------
    xarray.Dataset
        ``residual(time, level)``, ``settled_step(level)`` (int64, -1 = never),
        ``rate(level)``, ``tolerance(level)``, ``final_rms(level)``, ``finite_time(level)``;
        ``ds``'s attrs plus a history line and ``residual_from`` (``change`` or
        ``embedding``); a thinned run without ``change`` also gets ``residual_warning``
        (its residual is an average over each gap and may alias oscillations). ``ds`` is
        not modified.

    Notes
    -----
    A level whose final RMS size is 0 has tolerance 0: only an exactly zero residual
    counts as settled there. ``rate`` is a factor per step (``residual_t ~ C rate**t``);
    for linear consensus it is the modulus of the leading non-unit eigenvalue excited by
    the initial state.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import convergence
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 6), steps=60, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=0, top_down=0),
    ...                     attention=gs.Attention(beta=0.0, radius=1.0))
    >>> init = np.random.default_rng(0).normal(size=(1, 6, 2))
    >>> out = convergence(gs.simulate(cfg, gs.identity_weights(cfg), init=init))
    >>> bool(np.isnan(out.residual[0]).all()), bool(0 < out.rate[0] < 1)
    (True, True)
    """
    per_step = has_step_change(ds)
    check_dataset(ds, ["change"] if per_step else ["embedding"], "convergence")
    if per_step and "rms" not in ds.data_vars and "embedding" not in ds.data_vars:
        raise ValueError(
            "convergence: ds has change but neither rms nor embedding; it needs one of them "
            "for the final size (a Dataset from glomsim.simulate)"
        )
    dtype = _run_dtype(ds)
    if rtol is None:
        rtol = default_rtol(dtype)
    check_real("convergence: rtol", rtol, lo=0, hi=1, lo_open=True, hi_open=True)
    check_real("convergence: tail", tail, lo=0, hi=1, lo_open=True)
    eps = float(np.finfo(dtype).eps)

    import xarray as xr

    if per_step:
        residual, final_rms, time_coord = _from_change(ds)
    else:
        residual, final_rms = _from_embedding(ds)
        time_coord = ds["time"].copy()
    times = np.asarray(time_coord.values, dtype=np.int64)
    n_levels = residual.shape[1]
    tolerance = rtol * final_rms

    settled = np.empty(n_levels, dtype=np.int64)
    rate = np.full(n_levels, np.nan)
    finite = np.zeros(n_levels, dtype=bool)
    for lv in range(n_levels):
        settled[lv] = _settled_step(residual[:, lv], times, tolerance[lv])
        rate[lv], finite[lv] = _fit_rate(
            residual[:, lv], times, FLOOR_EPS * eps * final_rms[lv], tail
        )

    out = xr.Dataset(
        {
            "residual": (("time", "level"), residual),
            "settled_step": (("level",), settled),
            "rate": (("level",), rate),
            "tolerance": (("level",), tolerance),
            "final_rms": (("level",), final_rms),
            "finite_time": (("level",), finite),
        },
        coords={"time": time_coord, "level": ds["level"].copy()},
    )
    annotate(out, "convergence")
    add_history(out, ds.attrs, "convergence", {"rtol": rtol, "tail": tail})
    out.attrs["residual_from"] = FROM_CHANGE if per_step else FROM_STATES
    out.attrs.pop("residual_warning", None)  # a source's own note is not about this output
    if not per_step and np.any(np.diff(times) > 1):
        out.attrs["residual_warning"] = ALIASING
    return out


def _run_dtype(ds) -> np.dtype:
    """The dtype the run computed in: its embedding's (the float64 summaries of a
    summaries_only run say nothing about it), else its config's, else float64."""
    if "embedding" in ds.data_vars:
        emb = ds["embedding"].dtype
        return np.dtype(emb if emb.kind == "f" else np.float64)
    if "glomsim_config" in ds.attrs:
        import json

        return np.dtype(json.loads(ds.attrs["glomsim_config"]).get("dtype", "float64"))
    return np.dtype(np.float64)


def _from_embedding(ds):
    """(residual (time, level), final_rms (level)) by differencing the recorded states."""
    import xarray as xr

    times = np.asarray(ds["time"].values, dtype=np.int64)
    x = ds["embedding"].astype(np.float64)
    # squared change, not diff().mean() of a cast array, keeps dask's graph one pass per chunk
    sq_change = (x.diff("time") ** 2).mean(("column", "feature"))
    final_sq = (x.isel(time=-1) ** 2).mean(("column", "feature"))
    small = xr.Dataset({"sq_change": sq_change, "final_sq": final_sq}).compute()
    gaps = np.diff(times).astype(np.float64)
    residual = np.full((len(times), ds.sizes["level"]), np.nan)
    if len(times) > 1:
        residual[1:] = np.sqrt(small["sq_change"].transpose("time", "level").values)
        residual[1:] /= gaps[:, None]
    return residual, np.sqrt(small["final_sq"].values)


def _from_change(ds):
    """(residual, final_rms, time coordinate) from the per-step ``change(step, level)``.

    The window is that of the recorded states (all steps when ``embedding`` has no time,
    e.g. a summaries Dataset alone), so ``ds.isel(time=slice(k, None))`` still measures
    the run from step ``time[k]`` on; the change into the window's first step comes from
    outside it and is NaN, as the first residual of differenced states is.
    """
    steps = np.asarray(ds["step"].values, dtype=np.int64)
    keep = np.ones(len(steps), dtype=bool)
    has_states = "embedding" in ds.data_vars and "time" in ds["embedding"].dims
    if has_states and ds.sizes["time"] > 0:
        t = np.asarray(ds["time"].values, dtype=np.int64)
        keep = (steps >= t[0]) & (steps <= t[-1])
    change = ds["change"].isel(step=np.nonzero(keep)[0]).transpose("step", "level")
    residual = np.array(change.values, dtype=np.float64)
    if len(residual):
        residual[0] = np.nan
    if "rms" in ds.data_vars and "step" in ds["rms"].dims:
        rms = ds["rms"].isel(step=np.nonzero(keep)[0]).transpose("step", "level").values
        final_rms = np.asarray(rms[-1], dtype=np.float64)
    else:
        last = ds["embedding"].isel(time=-1).astype(np.float64)
        final_rms = np.sqrt((last**2).mean(("column", "feature")).values)
    time = change["step"].rename(step="time").rename("time").copy()
    time.attrs.update(ds["time"].attrs if "time" in ds.coords else {})
    return residual, final_rms, time


def _settled_step(res: np.ndarray, times: np.ndarray, tol: float) -> int:
    """Recorded step after which every residual is <= tol (-1 if the last one is above)."""
    if len(times) < 2:
        return -1
    above = ~(res[1:] <= tol)  # NaN counts as above: nothing is known there
    if not above.any():
        return int(times[0])
    last_above = int(np.nonzero(above)[0][-1]) + 1  # index into times
    if last_above == len(times) - 1:
        return -1
    return int(times[last_above])


def _longest_stretch(qualifies: np.ndarray) -> tuple[int, int]:
    """(first, last) index of the longest unbroken run of True (the later one of equal
    runs, as the asymptotic decay comes last); ``qualifies`` must hold a True."""
    edges = np.diff(np.concatenate([[0], qualifies.astype(np.int8), [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0] - 1
    lengths = ends - starts
    k = len(lengths) - 1 - int(np.argmax(lengths[::-1]))
    return int(starts[k]), int(ends[k])


def _fit_rate(res: np.ndarray, times: np.ndarray, floor: float, tail: float):
    """(rate, finite_time) of one level's residual series; see the module docstring."""
    with np.errstate(invalid="ignore"):
        qualifies = np.isfinite(res) & (res > floor)
    if not qualifies.any():
        return math.nan, False
    first, last = _longest_stretch(qualifies)
    n_run = last - first + 1
    rate = math.nan
    if n_run >= MIN_FIT_POINTS:
        n_fit = max(MIN_FIT_POINTS, math.ceil(tail * n_run))
        idx = np.arange(last - n_fit + 1, last + 1)
        slope = np.polyfit(times[idx].astype(np.float64), np.log(res[idx]), 1)[0]
        rate = math.exp(min(slope, 700.0))  # a growth beyond e**700 per step is overflow
    finite = False
    if last + 1 < len(res) and res[last + 1] <= floor:
        gap = float(times[last + 1] - times[last])
        # without a fit (too few points) a drop from well above the floor is finite-time;
        # compared in logs so that a steep fitted rate cannot overflow
        log_rate = math.log(rate) if math.isfinite(rate) else 0.0
        log_predicted = math.log(res[last]) + gap * log_rate
        finite = log_predicted > math.log(FINITE_TIME_MARGIN * floor) if floor > 0 else True
    if finite:
        rate = math.nan
    return rate, finite
