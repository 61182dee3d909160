"""Parse trees from islands.

GLOM's islands should nest: every island at level l should lie inside one island at level
l + 1, as a part lies inside one object. :func:`hierarchy` measures how far that holds
and gives each island its parent. The agreement of islands with a scene's ground truth
(:func:`agreement`, :func:`adjusted_rand_index`, :func:`purity`) lives in
:mod:`analysis.agreement` and is importable from here as before.
"""

from __future__ import annotations

import numpy as np

from glomsim.variables import annotate

from ._common import add_history
from .agreement import adjusted_rand_index, agreement, contingency, purity
from .islands import islands_of

__all__ = ["hierarchy", "agreement", "adjusted_rand_index", "purity", "contingency"]


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
