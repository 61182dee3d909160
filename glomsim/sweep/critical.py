"""The critical values of a refined sweep: where the seed-mean measure crosses a value.

:func:`critical` reads the crossing from every evaluated point (the grid and the
refinement rounds, :func:`glomsim.sweep.refine.open_sweep`) and puts a bootstrap interval
over seeds around it.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from .._validate import check_int, check_real, not_allowed
from ..variables import attrs
from . import store as st
from .refine import first_crossing, open_sweep

__all__ = ["critical"]


def _settings(ds, axis, measure, level, crossing) -> dict:
    """The refinement's settings: the spec's ``[refine]``, overridden by the arguments."""
    import tomllib

    got = dict(tomllib.loads(ds.attrs.get("sweep_spec", "")).get("refine") or {})
    for key, value in (("axis", axis), ("measure", measure), ("crossing", crossing)):
        if value is not None:
            got[key] = value
    if level is not None:
        got["level"] = level
    for key in ("axis", "measure", "crossing"):
        if key not in got:
            raise ValueError(f"critical: {key} is not given and the sweep has no [refine] {key}")
    axes = json.loads(ds.attrs.get("sweep_axes", "[]")) or [
        d for d in ds.dims if d not in ("seed", "member", "level")
    ]
    if got["axis"] not in axes or got["axis"] not in ds.dims:
        raise not_allowed("critical: axis", got["axis"], ", ".join(a for a in axes if a in ds.dims))
    if got["measure"] not in ds.data_vars:
        names = [n for n in ds.data_vars if n not in ("status", "error")]
        raise not_allowed("critical: measure", got["measure"], ", ".join(names))
    check_real("critical: crossing", got["crossing"])
    return got


def _sums(ds, s: dict):
    """Sums and counts of the done runs' measure per seed: (cells..., seed, axis) each."""
    values = ds[s["measure"]]
    level = s.get("level")
    if level is not None:
        values = values.sel(level=level)
    ok = ds["status"] == st.DONE
    v = values.where(ok)
    reduce = [d for d in ("member",) if d in v.dims]
    sums = v.fillna(0).where(ok, 0).sum(reduce)
    counts = (ok & v.notnull()).sum(reduce)
    order = [d for d in sums.dims if d not in ("seed", s["axis"])] + ["seed", s["axis"]]
    return sums.transpose(*order), counts.transpose(*order)


def critical(
    store_or_dataset,
    *,
    axis=None,
    measure=None,
    level=None,
    crossing=None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
):
    """The crossing of a refined sweep per cell of the other axes, with a bootstrap interval.

    Parameters
    ----------
    store_or_dataset : path or xarray.Dataset
        A sweep store (opened with :func:`glomsim.sweep.open_sweep`, every evaluated point)
        or a Dataset so opened.
    axis, measure, level, crossing : optional
        Default: the spec's ``[refine]`` table; given, they override it (so a plain grid
        sweep can be read too).
    resamples : int
        Bootstrap resamples: seeds drawn with replacement (members go with their seed),
        the crossing recomputed on every evaluated point for each.
    confidence : float
        The interval's coverage: quantiles (1 - confidence)/2 and (1 + confidence)/2 of
        the resampled crossings (those that bracket one; the rest are left out).
    seed : int
        Seed of the resampling (``numpy.random.default_rng(seed)``).

    Returns
    -------
    xarray.Dataset
        ``critical``, ``ci_low``, ``ci_high``, ``bracket_low``, ``bracket_high``, with dims
        the other axes (and ``level`` for a per-level measure without ``level``): the first
        crossing of the seed-mean along the axis, linearly interpolated inside its
        bracket; NaN where none is bracketed.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"status": (("eps", "seed"), np.ones((3, 2), "int8")),
    ...                  "count": (("eps", "seed"), [[5, 5], [5, 3], [1, 1]])},
    ...                 coords={"eps": [0.0, 1.0, 2.0], "seed": [0, 1]})
    >>> out = critical(ds, axis="eps", measure="count", crossing=2.5)  # means 5, 4, 1
    >>> float(out.critical), float(out.bracket_low), float(out.bracket_high)
    (1.5, 1.0, 2.0)
    """
    import xarray as xr

    resamples = check_int("critical: resamples", resamples, lo=1)
    check_real("critical: confidence", confidence, lo=0, hi=1, lo_open=True, hi_open=True)
    seed = check_int("critical: seed", seed, lo=0)
    if isinstance(store_or_dataset, (str, os.PathLike)):
        ds = open_sweep(store_or_dataset)
    elif isinstance(store_or_dataset, xr.Dataset):
        ds = store_or_dataset
    else:
        raise TypeError(
            f"critical: store_or_dataset must be a path or an xarray.Dataset, got "
            f"{type(store_or_dataset).__name__}"
        )
    s = _settings(ds, axis, measure, level, crossing)
    sums, counts = _sums(ds, s)
    x = ds[s["axis"]].values.astype(np.float64)
    c = float(s["crossing"])
    V, N = sums.values.astype(np.float64), counts.values.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        est, lo, hi = first_crossing(x, V.sum(-2) / N.sum(-2), c)
        n_seeds = V.shape[-2]
        rng = np.random.default_rng(seed)
        w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples).astype(float)
        boot = np.einsum("bs,...sp->...bp", w, V) / np.einsum("bs,...sp->...bp", w, N)
        boot_est = first_crossing(x, boot, c)[0]
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells with no resample bracketed
        ci = np.nanquantile(boot_est, q, axis=-1)
    ci = np.where(np.isfinite(est), ci, np.nan)
    dims = sums.dims[:-2]
    coords = {d: sums.coords[d] for d in dims}
    out = xr.Dataset(coords=coords)
    for name, arr in (("critical", est), ("ci_low", ci[0]), ("ci_high", ci[1]),
                      ("bracket_low", lo), ("bracket_high", hi)):  # fmt: skip
        out[name] = (dims, arr, attrs(f"critical.{name}"))
    if s.get("level") is not None:
        out = out.assign_coords(level=s["level"])
    out.attrs.update(
        axis=s["axis"],
        measure=s["measure"],
        crossing=c,
        resamples=resamples,
        confidence=confidence,
        bootstrap_seed=seed,
    )
    return out
