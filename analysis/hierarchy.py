"""Parse trees from islands, and agreement of islands with ground-truth labels.

GLOM's islands should nest: every island at level l should lie inside one island at level
l + 1, as a part lies inside one object. :func:`hierarchy` measures how far that holds
and gives each island its parent; :func:`agreement` compares islands with a scene's
ground truth through the adjusted Rand index and purity, computed here in plain numpy
(contingency tables from ``np.unique``; no scikit-learn).
"""

from __future__ import annotations

import numpy as np

from glomsim.variables import annotate

from ._common import add_history, is_islands
from .islands import islands_of

__all__ = ["hierarchy", "agreement", "adjusted_rand_index", "purity", "contingency"]


def _as_1d(a, name):
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} has shape {a.shape}; it must be a 1-D array of labels")
    return a


def contingency(a, b) -> np.ndarray:
    """Dense contingency table (classes of ``a``, classes of ``b``) of two labelings.

    Examples
    --------
    >>> contingency([0, 0, 1], ["x", "y", "y"]).tolist()
    [[1, 1], [0, 1]]
    """
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"the labelings have {a.size} and {b.size} entries; they must match")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    ai, bi = ai.reshape(-1), bi.reshape(-1)
    na = int(ai.max()) + 1 if ai.size else 0
    nb = int(bi.max()) + 1 if bi.size else 0
    return np.bincount(ai * nb + bi, minlength=na * nb).reshape(na, nb)


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index (Hubert and Arabie 1985) of two labelings of the same items.

    1 for identical partitions (whatever the label names), about 0 in expectation for
    independent random ones, symmetric in ``a`` and ``b``. As in scikit-learn, two
    partitions that agree on every pair (including two empty ones, or both with a
    single cluster) give 1. Computed from pair counts in float64, so it does not overflow.

    Examples
    --------
    >>> adjusted_rand_index([0, 0, 1, 1], [5, 5, 3, 3])
    1.0
    >>> round(adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]), 3)
    -0.5
    """
    table = contingency(a, b).astype(np.float64)
    n = table.sum()
    sum_squares = float((table**2).sum())
    rows = float((table.sum(axis=1) ** 2).sum())
    cols = float((table.sum(axis=0) ** 2).sum())
    # pair confusion: same/same (tp), same in a only (fn), same in b only (fp), neither (tn)
    tp = sum_squares - n
    fn = rows - sum_squares
    fp = cols - sum_squares
    tn = n * n - tp - fn - fp - n
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def purity(pred, truth) -> float:
    """Purity of predicted clusters against true classes, in [0, 1].

    Each predicted cluster is credited with the columns of its most common true class;
    purity is the credited fraction. 1 when every cluster holds a single class (which
    also holds for all-singleton clusters: read it with the inverse purity
    ``purity(truth, pred)``). 1.0 for empty inputs.

    Examples
    --------
    >>> purity([0, 0, 1, 1], [0, 0, 0, 1])
    0.75
    """
    table = contingency(pred, truth)
    n = table.sum()
    if n == 0:
        return 1.0
    return float(table.max(axis=1).sum() / n)


def _nesting(lower, upper):
    """(n_parents per island, parent per island) of the islands ``lower`` within ``upper``.

    Both are canonical labels 0..K-1 of the same columns.
    """
    n_upper = int(upper.max()) + 1
    keys = np.unique(lower * n_upper + upper)
    owner, other = np.divmod(keys, n_upper)
    n_lower = int(lower.max()) + 1
    n_parents = np.bincount(owner, minlength=n_lower)
    parent = np.full(n_lower, -1, dtype=np.int64)
    single = n_parents[owner] == 1
    parent[owner[single]] = other[single]
    return n_parents, parent


def hierarchy(ds_or_islands, **island_kwargs):
    """How well the islands form a parse tree, per step and level pair.

    Parameters
    ----------
    ds_or_islands : xarray.Dataset
        A result of :func:`analysis.islands`, or a simulation Dataset (then islands are
        computed with ``island_kwargs``, e.g. ``threshold=0.99``).
    **island_kwargs
        Passed to :func:`analysis.islands` when given a simulation.

    Returns
    -------
    xarray.Dataset
        - ``parse_score(time)``: mean over the level pairs (l, l+1) of ``column_nesting``
          (1 = a perfect parse tree; NaN with a single level).
        - ``column_nesting(time, level)``: fraction of columns whose island at level l lies
          inside one island at level l+1 (NaN at the top level).
        - ``island_nesting(time, level)``: the same counted over islands.
        - ``parent(time, level, island)`` int64: the island at level l+1 that contains the
          island, -1 when it spans several, at the top level and for padding islands.
        - ``n_parents(time, level, island)`` int64: islands at level l+1 it overlaps.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=2, dim=2, grid=(1, 4), steps=0)
    >>> init = [[[1, 0], [1, 0], [0, 1], [0, 1]], [[1, 0], [1, 0], [1, 0], [0, 1]]]
    >>> h = an.hierarchy(gs.simulate(cfg, gs.identity_weights(cfg), init=init))
    >>> h.parent.values[0, 0].tolist(), float(h.parse_score[0])
    ([0, -1], 0.5)
    """
    import xarray as xr

    isl = islands_of(ds_or_islands, island_kwargs, "hierarchy")
    labels = np.asarray(isl["labels"].values)
    n_times, n_levels, n = labels.shape
    n_islands = isl.sizes["island"]
    parent = np.full((n_times, n_levels, n_islands), -1, dtype=np.int64)
    n_parents = np.zeros((n_times, n_levels, n_islands), dtype=np.int64)
    column_nesting = np.full((n_times, n_levels), np.nan)
    island_nesting = np.full((n_times, n_levels), np.nan)
    for t in range(n_times):
        for level in range(n_levels - 1):
            lower, upper = labels[t, level], labels[t, level + 1]
            if n == 0:
                continue
            counts, par = _nesting(lower, upper)
            k = len(counts)
            parent[t, level, :k] = par
            n_parents[t, level, :k] = counts
            column_nesting[t, level] = float(np.mean(counts[lower] == 1))
            island_nesting[t, level] = float(np.mean(counts == 1))
    if n_levels > 1:
        parse_score = column_nesting[:, :-1].mean(axis=1)
    else:
        parse_score = np.full(n_times, np.nan)

    out = xr.Dataset(
        {
            "parse_score": (("time",), parse_score),
            "column_nesting": (("time", "level"), column_nesting),
            "island_nesting": (("time", "level"), island_nesting),
            "parent": (("time", "level", "island"), parent),
            "n_parents": (("time", "level", "island"), n_parents),
        },
        coords={"time": isl["time"], "level": isl["level"], "island": isl["island"]},
    )
    annotate(out, "hierarchy")
    out.attrs.update(title="parse tree of GLOM islands")
    return add_history(out, isl.attrs, "hierarchy", dict(island_kwargs))


def agreement(ds, islands=None, **island_kwargs):
    """Agreement of islands with the ground-truth labels, per step and level.

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation of a scene (with ``label(level, column)``), or an islands Dataset
        that carries ``label``.
    islands : xarray.Dataset, optional
        A result of :func:`analysis.islands`; default ``islands(ds, **island_kwargs)``.

    Returns
    -------
    xarray.Dataset
        ``ari(time, level)`` (adjusted Rand index), ``purity(time, level)`` and
        ``inverse_purity(time, level)``. Columns whose true label is negative (unknown)
        are left out; a level without any known label gets NaN.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> from glomsim.scenes import make_scene
    >>> scene = make_scene(grid=(8, 8), dim=8, levels=3, n_objects=2, noise=0.0)
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=0)
    >>> ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene,
    ...                  init=scene.tokens[None].repeat(3, axis=0))
    >>> float(an.agreement(ds, connectivity="global").ari.sel(level=0)[0])
    1.0
    """
    import xarray as xr

    if islands is None:
        isl = islands_of(ds, island_kwargs, "agreement")
    else:
        if island_kwargs:
            raise ValueError(
                f"agreement: island options {sorted(island_kwargs)} were given with "
                "islands=; pass one or the other"
            )
        if not is_islands(islands):
            raise ValueError("agreement: islands must be a Dataset from analysis.islands")
        isl = islands
    truth_source = ds if "label" in ds.variables else isl
    if "label" not in truth_source.variables:
        raise ValueError(
            "agreement: ds has no ground truth label(level, column); simulate a scene "
            "(simulate(cfg, w, inputs=make_scene(...))) to get one"
        )
    truth = truth_source["label"].transpose("level", "column")
    truth = truth.sel(level=isl["level"]).values
    labels = np.asarray(isl["labels"].values)
    n_times, n_levels, _ = labels.shape
    ari = np.full((n_times, n_levels), np.nan)
    pur = np.full((n_times, n_levels), np.nan)
    inv = np.full((n_times, n_levels), np.nan)
    for level in range(n_levels):
        known = truth[level] >= 0
        if not known.any():
            continue
        true = truth[level][known]
        for t in range(n_times):
            pred = labels[t, level][known]
            ari[t, level] = adjusted_rand_index(pred, true)
            pur[t, level] = purity(pred, true)
            inv[t, level] = purity(true, pred)
    dims = ("time", "level")
    out = xr.Dataset(
        {"ari": (dims, ari), "purity": (dims, pur), "inverse_purity": (dims, inv)},
        coords={"time": isl["time"], "level": isl["level"]},
    )
    annotate(out, "agreement")
    out.attrs.update(title="agreement of GLOM islands with ground truth")
    return add_history(out, isl.attrs, "agreement", dict(island_kwargs))
