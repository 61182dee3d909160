"""One run's figures at a glance, composed from the other measurements.

The ``glomsim run`` and ``glomsim analyze`` commands print these; scripts and notebooks
call the same functions, so what the command line reports is reproducible in Python.
"""

from __future__ import annotations

import numpy as np

from glomsim.variables import check_dataset

from .convergence import convergence
from .hierarchy import agreement, hierarchy
from .islands import islands

__all__ = ["summarize", "analyze_run"]


def _last_step_change(ds, last):
    """RMS change per step of every level at the last recorded step, or None."""
    if "change" in ds and ds.sizes["step"] > 1:
        # a summaries_only run recorded the change of every step
        return ds["change"].isel(step=-1).values
    if ds.sizes["time"] > 1:
        prev = ds["embedding"].isel(time=-2).values.astype(np.float64)
        gap = int(ds.time.values[-1] - ds.time.values[-2])
        return np.sqrt(((last - prev) ** 2).mean(axis=(1, 2))) / gap
    return None


def summarize(ds, threshold: float = 0.99) -> dict:
    """Per-level figures of a run at its last recorded step, as plain Python numbers.

    Parameters
    ----------
    ds : xarray.Dataset
        A run from :func:`glomsim.simulate` (``summaries_only`` runs too).
    threshold : float
        Island threshold of :func:`analysis.islands` (cosine similarity).

    Returns
    -------
    dict
        ``{"steps": last step, "levels": {level: row}}``; each row holds ``rms`` (the RMS
        entry of the level's state), ``last_step_change`` (RMS change per step over the last
        recorded interval, absent with one recorded step), ``islands`` (the island count)
        and, when the run has scene labels, ``ari_vs_truth`` (adjusted Rand index of those
        islands against the labels, to 4 decimals).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=5)
    >>> s = summarize(gs.simulate(cfg, gs.identity_weights(cfg)))
    >>> s["steps"], sorted(s["levels"][0])
    (5, ['islands', 'last_step_change', 'rms'])
    """
    check_dataset(ds, ["embedding"], "summarize")
    last = ds["embedding"].isel(time=-1).values.astype(np.float64)
    change = _last_step_change(ds, last)
    end = ds.isel(time=[-1])
    isl = islands(end, threshold=threshold)
    counts = isl["count"].isel(time=-1).values
    ari = agreement(end, islands=isl)["ari"].isel(time=-1).values if "label" in ds else None
    levels = {}
    for level in range(last.shape[0]):
        row = {"rms": float(np.sqrt((last[level] ** 2).mean()))}
        if change is not None:
            row["last_step_change"] = float(change[level])
        row["islands"] = int(counts[level])
        if ari is not None:
            row["ari_vs_truth"] = round(float(ari[level]), 4)
        levels[level] = row
    return {"steps": int(ds.time.values[-1]), "levels": levels}


def analyze_run(ds, threshold: float = 0.99):
    """Islands, hierarchy, agreement (with labels) and convergence of one run, as one Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A single run from :func:`glomsim.simulate` (not a sweep).
    threshold : float
        Island threshold of :func:`analysis.islands` (cosine similarity).

    Returns
    -------
    xarray.Dataset
        ``count``, ``largest_fraction``, ``baseline_count``, ``baseline_largest_fraction``
        and ``parse_score`` per recorded step, ``residual`` per step, ``settled_step`` and
        ``rate`` per level, and with scene labels ``ari`` and ``purity``. For a
        ``summaries_only`` run the island measures exist at its two recorded steps (the
        first and the last) and the residual at every step: they are joined on ``time``,
        NaN where a measure has no value. Attrs: ``source_config`` (the run's config
        JSON) and ``island_threshold``.

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=5)
    >>> res = analyze_run(gs.simulate(cfg, gs.identity_weights(cfg)))
    >>> res["count"].dims, res["rate"].dims
    (('time', 'level'), ('level',))
    """
    import xarray as xr

    check_dataset(ds, ["embedding"], "analyze_run")
    isl = islands(ds, threshold=threshold)
    parts = [
        isl[["count", "largest_fraction", "baseline_count", "baseline_largest_fraction"]],
        hierarchy(isl)[["parse_score"]],
        convergence(ds)[["residual", "settled_step", "rate"]],
    ]
    if "label" in ds:
        parts.append(agreement(ds, islands=isl)[["ari", "purity"]])
    out = xr.merge(parts, compat="override", join="outer", combine_attrs="drop")
    out.attrs.update(source_config=ds.attrs.get("glomsim_config", ""), island_threshold=threshold)
    return out
