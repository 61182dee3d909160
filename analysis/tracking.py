"""Islands over time: identities that persist from step to step, and tracking lag.

GLOM fed a sequence of frames should keep an island on an object as the object moves.
:func:`track` matches the islands of consecutive recorded steps by overlap and gives each
island an identity that persists while it is matched; :func:`tracking_lag` measures how
many steps a level's islands take, after each frame change, to agree with the new frame's
ground truth.

Matching: between recorded steps t-1 and t, islands A (at t-1) and B (at t) may be paired
when their column sets overlap with Jaccard index |A ∩ B| / |A ∪ B| >= ``min_overlap``; the
pairing is one-to-one and maximises the summed Jaccard index over the pairs (the Hungarian
algorithm, :func:`scipy.optimize.linear_sum_assignment`, run on each connected group of
candidate pairs). A paired island inherits its predecessor's identity; an unpaired one gets
a new identity. So an island that moves a little keeps its identity, and when an island
splits, the part that overlaps it most keeps it while the smaller part gets a new one.
"""

from __future__ import annotations

import numpy as np

from glomsim._validate import check_real, is_int, not_allowed
from glomsim.variables import annotate

from ._common import add_history, is_islands
from .hierarchy import adjusted_rand_index
from .islands import islands_of

__all__ = ["track", "tracking_lag", "match_islands"]


def _check_min_overlap(min_overlap, where):
    return check_real(f"{where}: min_overlap", min_overlap, lo=0, lo_open=True, hi=1,
                      note="(the Jaccard index two islands must reach to be matched)")  # fmt: skip


def match_islands(previous, current, min_overlap: float = 0.2) -> np.ndarray:
    """For each island of ``current``, the island of ``previous`` it continues, or -1.

    ``previous`` and ``current`` are island labels 0..K-1 of the same columns (as
    :func:`analysis.islands` gives them). Islands pair one-to-one where their Jaccard
    index reaches ``min_overlap``, maximising the summed Jaccard index.

    Examples
    --------
    >>> match_islands([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]).tolist()
    [0, 1]
    >>> match_islands([0, 0, 0, 0, 0], [0, 0, 0, 1, 1]).tolist()  # a split
    [0, -1]
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    min_overlap = _check_min_overlap(min_overlap, "match_islands")
    a, b = np.asarray(previous, dtype=np.int64), np.asarray(current, dtype=np.int64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"match_islands: previous and current must be 1-D labels of the same columns; "
            f"got shapes {a.shape} and {b.shape}"
        )
    na = int(a.max()) + 1 if a.size else 0
    nb = int(b.max()) + 1 if b.size else 0
    match = np.full(nb, -1, dtype=np.int64)
    if na == 0 or nb == 0:
        return match
    # overlapping pairs only: a sparse contingency table
    pair, inter = np.unique(a * nb + b, return_counts=True)
    pa, pb = pair // nb, pair % nb
    jac = inter / (np.bincount(a, minlength=na)[pa] + np.bincount(b, minlength=nb)[pb] - inter)
    keep = jac >= min_overlap
    pa, pb, jac = pa[keep], pb[keep], jac[keep]
    if pa.size == 0:
        return match
    # independent groups of candidate pairs, each solved exactly
    graph = coo_matrix((np.ones(pa.size), (pa, na + pb)), shape=(na + nb, na + nb))
    _, group = connected_components(graph, directed=False)
    for g in np.unique(group[pa]):
        sel = group[pa] == g
        ra, ia = np.unique(pa[sel], return_inverse=True)
        rb, ib = np.unique(pb[sel], return_inverse=True)
        weights = np.zeros((ra.size, rb.size))
        weights[ia, ib] = jac[sel]
        rows, cols = linear_sum_assignment(weights, maximize=True)
        ok = weights[rows, cols] > 0  # zero weight: not a candidate pair
        match[rb[cols[ok]]] = ra[rows[ok]]
    return match


def _track_level(labels, min_overlap):
    """Identities (T, N) of one level's island labels (T, N), with births and deaths."""
    n_times = labels.shape[0]
    ids = np.empty_like(labels)
    births = np.zeros(n_times, dtype=np.int64)
    deaths = np.zeros(n_times, dtype=np.int64)
    prev_ids = np.arange(int(labels[0].max()) + 1 if labels.shape[1] else 0)
    ids[0] = prev_ids[labels[0]]
    births[0] = next_id = prev_ids.size
    for t in range(1, n_times):
        match = match_islands(labels[t - 1], labels[t], min_overlap)
        new = np.where(match >= 0, prev_ids[np.maximum(match, 0)], -1)
        unmatched = np.nonzero(match < 0)[0]
        new[unmatched] = next_id + np.arange(unmatched.size)
        next_id += unmatched.size
        births[t] = unmatched.size
        deaths[t] = prev_ids.size - int((match >= 0).sum())
        ids[t] = new[labels[t]]
        prev_ids = new
    return ids, births, deaths, next_id


def track(ds_or_islands, *, min_overlap: float = 0.2, **island_kwargs):
    """Island identities that persist over the recorded steps, per level.

    Parameters
    ----------
    ds_or_islands : xarray.Dataset
        A simulation (``embedding(time, level, column, feature)``; islands are computed
        with ``island_kwargs``) or a result of :func:`analysis.islands`. May be
        dask-backed; never modified.
    min_overlap : float
        Jaccard index in (0, 1] two islands of consecutive recorded steps must reach to
        be matched (see the module's notes: one-to-one, maximal summed Jaccard index). An
        island moving by a fraction f of its width keeps roughly 1 - f of its columns in
        common; 0.2 follows a square island moving by up to 2/3 of its side per record.
    **island_kwargs
        Options of :func:`analysis.islands` (``threshold``, ``metric``,
        ``connectivity``, ``radius``, ``linkage``, ``time``, ...), for a simulation only.

    Returns
    -------
    xarray.Dataset
        ``track(time, level, column)`` (identities 0, 1, ... per level, in order of
        birth), ``islands``, ``births``, ``deaths`` and ``kept_fraction`` per (time,
        level), and per (level, identity) ``lifetime`` (steps from first to last record),
        ``first_time``, ``last_time`` and ``alive_at_end``; coords as the islands' plus
        ``identity`` (and ``frame(time)`` or ``label`` when the input has them).

    Examples
    --------
    >>> import numpy as np, xarray as xr, analysis as an
    >>> labels = np.array([[[0, 0, 1, 1, 1]], [[0, 0, 0, 1, 1]], [[0, 1, 1, 2, 2]]])
    >>> isl = xr.Dataset({"labels": (("time", "level", "column"), labels)},
    ...                  coords={"time": [0, 1, 2], "level": [0], "column": np.arange(5)})
    >>> tr = an.track(isl)
    >>> tr.track.values[:, 0].tolist()
    [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [2, 0, 0, 1, 1]]
    >>> tr.lifetime.values.tolist()
    [[2, 2, 0]]
    """
    import xarray as xr

    min_overlap = _check_min_overlap(min_overlap, "track")
    isl = islands_of(ds_or_islands, island_kwargs, "track")
    labels = np.asarray(isl["labels"].transpose("time", "level", "column").values)
    n_times, n_levels, n = labels.shape
    times = np.asarray(isl["time"].values, dtype=np.int64)
    ids = np.zeros_like(labels, dtype=np.int64)
    births = np.zeros((n_times, n_levels), dtype=np.int64)
    deaths = np.zeros((n_times, n_levels), dtype=np.int64)
    counts = []
    for level in range(n_levels):
        ids[:, level], births[:, level], deaths[:, level], k = _track_level(
            labels[:, level], min_overlap
        )
        counts.append(k)
    n_ids = max(counts, default=0)
    first = np.full((n_levels, n_ids), -1, dtype=np.int64)
    last = np.full((n_levels, n_ids), -1, dtype=np.int64)
    for level in range(n_levels):
        for t in range(n_times):  # identities are born in order, so first = min
            present = np.unique(ids[t, level])
            first[level, present] = np.where(first[level, present] < 0, times[t],
                                             first[level, present])  # fmt: skip
            last[level, present] = times[t]
    lifetime = np.where(first >= 0, last - first, -1)
    alive = (last == times[-1]) & (first >= 0) if n_times else np.zeros_like(first, bool)
    kept = np.full((n_times, n_levels), np.nan)
    if n_times > 1 and n:
        kept[1:] = (ids[1:] == ids[:-1]).mean(axis=-1)
    islands_count = np.array([[np.unique(ids[t, lv]).size for lv in range(n_levels)]
                              for t in range(n_times)], dtype=np.int64).reshape(n_times, n_levels)  # fmt: skip
    dims = ("time", "level")
    out = xr.Dataset(
        {
            "track": (("time", "level", "column"), ids),
            "islands": (dims, islands_count),
            "births": (dims, births),
            "deaths": (dims, deaths),
            "kept_fraction": (dims, kept),
            "lifetime": (("level", "identity"), lifetime),
            "first_time": (("level", "identity"), first),
            "last_time": (("level", "identity"), last),
            "alive_at_end": (("level", "identity"), alive),
        },
        coords={**_coords(isl), "identity": np.arange(n_ids, dtype=np.int64)},
    )
    if "label" in isl.data_vars:
        out["label"] = isl["label"].copy(deep=True).load()
    annotate(out, "track")
    out.attrs["title"] = "island identities over time of a GLOM simulation"
    params = dict(min_overlap=float(min_overlap), **island_kwargs)
    add_history(out, isl.attrs, "track", params)
    out.attrs["track_min_overlap"] = float(min_overlap)
    return out


def _coords(isl):
    """The islands' time, level and column coordinates (with frame, y, x when present)."""
    keep = ("time", "level", "column", "y", "x", "frame")
    return {k: isl.coords[k].variable.copy(deep=True) for k in keep if k in isl.coords}


def _frames_and_truth(ds, isl):
    """``frame(time)`` (T,) and ``label(frame, level, column)`` as numpy, from ``ds``/``isl``."""
    source = None
    for cand in (ds, isl):
        if "frame" in cand.coords and "label" in cand.variables:
            source = cand
            break
    if source is None:
        raise ValueError(
            "tracking_lag: ds has no frame(time) coordinate with label(frame, level, column); "
            "it needs a run of a movie: simulate(cfg, w, frames=make_movie(...), "
            "steps_per_frame=k)"
        )
    label = source["label"]
    if "frame" not in label.dims:
        raise ValueError(
            f"tracking_lag: ds.label has dims {label.dims}; it needs (frame, level, column), "
            "the labels of each frame of a movie"
        )
    frame = np.asarray(source["frame"].sel(time=isl["time"]).values
                       if "time" in source["frame"].dims else source["frame"].values)  # fmt: skip
    truth = np.asarray(label.transpose("frame", "level", "column").sel(level=isl["level"]).values)
    return frame.astype(np.int64), truth


def _scored_ari(pred, truth, background):
    """ARI over columns whose true label is known (>= 0) and not the background."""
    keep = truth >= 0
    if background is not None:
        keep &= truth != background
    if not keep.any():
        return np.nan
    return adjusted_rand_index(pred[keep], truth[keep])


def _lags(ari, frame, times, n_frames, fraction):
    """(settled, lag, change_time) per frame for one level's ari (T,)."""
    settled = np.full(n_frames, np.nan)
    lag = np.full(n_frames, np.nan)
    change = np.full(n_frames, -1, dtype=np.int64)
    for f in range(n_frames):
        idx = np.nonzero(frame == f)[0]
        if idx.size == 0:
            continue
        change[f] = times[idx[0]]
        settled[f] = ari[idx[-1]]
        if f == 0 or not settled[f] > 0:
            continue
        reached = idx[ari[idx] >= fraction * settled[f]]
        lag[f] = times[reached[0]] - times[idx[0]]
    return settled, lag, change


def tracking_lag(ds_or_islands, *, fraction: float = 0.9, background=None, **island_kwargs):
    """Steps each level's islands take, after each frame change, to follow the new frame.

    For every recorded step, the islands are scored against the ground truth of the frame
    that step read (adjusted Rand index, ``ari``). A frame's settled agreement is its
    ``ari`` at the last recorded step that read it; its lag is the number of steps from
    the first recorded step that read it until ``ari`` first reaches ``fraction`` times
    the settled agreement. The first step that reads a frame counts as 0, so a lag of 0
    means the islands agreed with the new frame at once (level l's bottom-up input
    reaches it l steps after level 0's). With ``record_every`` > 1 the lag is known only
    to the recording interval.

    Parameters
    ----------
    ds_or_islands : xarray.Dataset
        A run of a movie (``simulate(cfg, w, frames=make_movie(...), steps_per_frame=k)``:
        ``embedding``, the coordinate ``frame(time)`` and ``label(frame, level,
        column)``), or a result of :func:`analysis.islands` that carries them. May be
        dask-backed; never modified.
    fraction : float
        Share of the settled agreement that counts as following, in (0, 1].
    background : int, optional
        A true label left out of the scores at every level (0 for ``make_movie``'s
        background), so that a large background cannot inflate them; columns with a
        negative (unknown) label are always left out.
    **island_kwargs
        Options of :func:`analysis.islands`, for a simulation only.

    Returns
    -------
    xarray.Dataset
        ``ari(time, level)``, ``settled_ari(frame, level)``, ``lag(frame, level)`` (steps;
        NaN for frame 0, frames never recorded, and where the settled agreement is not
        > 0), ``mean_lag(level)`` over the frames with a lag, ``change_time(frame)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, analysis as an
    >>> truth = np.array([[[0, 0, 1, 1]], [[0, 1, 1, 1]]])  # (frame, level, column)
    >>> labels = np.array([[[0, 0, 1, 1]]] * 3 + [[[0, 1, 1, 1]]] * 2)  # one step late
    >>> isl = xr.Dataset(
    ...     {"labels": (("time", "level", "column"), labels),
    ...      "label": (("frame", "level", "column"), truth)},
    ...     coords={"time": np.arange(5), "frame": ("time", [0, 0, 1, 1, 1]),
    ...             "level": [0], "column": np.arange(4)})
    >>> an.tracking_lag(isl).lag.values[:, 0].tolist()
    [nan, 1.0]
    """
    import xarray as xr

    fraction = check_real("tracking_lag: fraction", fraction, lo=0, lo_open=True, hi=1)
    if background is not None and not is_int(background):
        raise not_allowed("tracking_lag: background", background, "None or an integer label")
    isl = islands_of(ds_or_islands, island_kwargs, "tracking_lag")
    source = ds_or_islands if not is_islands(ds_or_islands) else isl
    frame, truth = _frames_and_truth(source, isl)
    labels = np.asarray(isl["labels"].transpose("time", "level", "column").values)
    n_times, n_levels, _ = labels.shape
    n_frames = truth.shape[0]
    if frame.size and (frame.min() < 0 or frame.max() >= n_frames):
        raise ValueError(
            f"tracking_lag: frame(time) runs from {frame.min()} to {frame.max()} but "
            f"label has {n_frames} frames"
        )
    times = np.asarray(isl["time"].values, dtype=np.int64)
    ari = np.full((n_times, n_levels), np.nan)
    for t in range(n_times):
        for level in range(n_levels):
            ari[t, level] = _scored_ari(labels[t, level], truth[frame[t], level], background)
    settled = np.full((n_frames, n_levels), np.nan)
    lag = np.full((n_frames, n_levels), np.nan)
    change = np.full(n_frames, -1, dtype=np.int64)
    for level in range(n_levels):
        settled[:, level], lag[:, level], change = _lags(
            ari[:, level], frame, times, n_frames, fraction
        )
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(lag)
        mean_lag = np.where(finite.any(axis=0), np.nansum(lag, axis=0) / finite.sum(axis=0),
                            np.nan)  # fmt: skip
    out = xr.Dataset(
        {
            "ari": (("time", "level"), ari),
            "settled_ari": (("frame", "level"), settled),
            "lag": (("frame", "level"), lag),
            "mean_lag": (("level",), mean_lag),
            "change_time": (("frame",), change),
        },
        coords={
            "time": ("time", times),
            "level": isl["level"].variable.copy(deep=True),
            "frame": ("frame", np.arange(n_frames, dtype=np.int64)),
        },
    )
    annotate(out, "tracking_lag")
    out["time"].attrs.update(isl["time"].attrs)
    out.attrs["title"] = "tracking lag of GLOM islands behind a movie"
    params = dict(fraction=float(fraction), background=background, **island_kwargs)
    add_history(out, isl.attrs, "tracking_lag", params)
    return out
