"""How fast, and whether, each level settles: residuals, settling step and geometric rate.

Definitions (``docs/analysis-dynamics.md`` has the maths and the classic results):

- ``residual(time, level)``: RMS over (column, feature) of ``E_t - E_prev``, divided by the
  number of steps between the two recorded states, so a run thinned with ``record_every``
  reports the average change per step. The first recorded step has no predecessor: NaN.
  A ``summaries_only`` run records the RMS change of every step (``change(step, level)``):
  that is the residual then, at every step (``time`` = the run's ``step``).
- ``settled_step(level)``: the first recorded step after which the residual stays at or
  below ``tolerance = rtol * final_rms``; -1 if the last recorded residual is still above.
- ``rate(level)``: ``exp(slope)`` of a least-squares line through ``log residual`` over the
  tail of the decay, using only residuals well above the floating-point floor
  ``100 * eps * final_rms``. NaN when fewer than 3 residuals qualify or when the residual
  drops to the floor far faster than the fitted rate predicts (convergence in finitely many
  steps, as in Hegselmann-Krause; ``finite_time`` is then True).
"""

from __future__ import annotations

import math

import numpy as np

from glomsim._validate import check_real
from glomsim.variables import annotate, check_dataset

from ._common import add_history, is_summaries_only

__all__ = ["convergence"]

#: Residuals at most this many machine epsilons (relative to the level's size) are noise.
FLOOR_EPS = 100.0
#: Fewest residuals above the floor for a rate fit.
MIN_FIT_POINTS = 3
#: Finite-time convergence: the fitted decay would still be this far above the floor at the
#: step where the residual hit the floor.
FINITE_TIME_MARGIN = 100.0


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
        For a ``summaries_only`` run (``simulate(..., summaries_only=True)``) the residual
        is its per-step ``change`` and the final size its last ``rms``: the same values a
        full run gives, at every step.
    rtol : float, optional
        Settling tolerance relative to each level's RMS embedding size at the last recorded
        step. Default 1e-6 for float64 data and 1e-4 for float32 (about 5000 and 800 times
        the machine epsilon: the residual of a float32 run never falls much below 1e-6).
    tail : float
        Fraction (0, 1] of the last run of residuals above the float floor used for the
        rate fit; the second half by default, so early transients of faster modes do not
        bias the asymptotic rate.

    Returns
    -------
    xarray.Dataset
        ``residual(time, level)``, ``settled_step(level)`` (int64, -1 = never),
        ``rate(level)``, ``tolerance(level)``, ``final_rms(level)``, ``finite_time(level)``;
        ``ds``'s attrs plus a history line. ``ds`` is not modified.

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
    summaries = is_summaries_only(ds)
    check_dataset(ds, ["change", "rms"] if summaries else ["embedding"], "convergence")
    dtype = _run_dtype(ds)
    if rtol is None:
        rtol = default_rtol(dtype)
    check_real("convergence: rtol", rtol, lo=0, hi=1, lo_open=True, hi_open=True)
    check_real("convergence: tail", tail, lo=0, hi=1, lo_open=True)
    eps = float(np.finfo(dtype).eps)

    import xarray as xr

    if summaries:
        residual, final_rms, time_coord = _from_summaries(ds)
        times = np.asarray(time_coord.values, dtype=np.int64)
    else:
        residual, final_rms = _from_embedding(ds)
        times = np.asarray(ds["time"].values, dtype=np.int64)
        time_coord = ds["time"].copy()
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
    return add_history(out, ds.attrs, "convergence", {"rtol": rtol, "tail": tail})


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


def _from_summaries(ds):
    """(residual, final_rms, time coordinate) of a summaries_only run: its per-step
    ``change`` (already NaN at step 0) and the last ``rms``, on ``time`` = its steps."""
    residual = np.asarray(ds["change"].transpose("step", "level").values, dtype=np.float64)
    final_rms = np.asarray(ds["rms"].transpose("step", "level").values[-1], dtype=np.float64)
    time = ds["step"].rename(step="time").rename("time").copy()
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


def _fit_rate(res: np.ndarray, times: np.ndarray, floor: float, tail: float):
    """(rate, finite_time) of one level's residual series; see the module docstring."""
    with np.errstate(invalid="ignore"):
        qualifies = np.isfinite(res) & (res > floor)
    if not qualifies.any():
        return math.nan, False
    last = int(np.nonzero(qualifies)[0][-1])
    first = last
    while first - 1 >= 0 and qualifies[first - 1]:
        first -= 1
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
