"""Parse trees from islands.

GLOM's islands should nest: every island at level l should lie inside one island at level
l + 1, as a part lies inside one object. :func:`hierarchy` measures how far that holds
and gives each island its parent, whatever the scene; :func:`parse_truth` asks whether the
parent is the right one, the island of the column's *true* parent in a scene's ground
truth. The agreement of islands with a scene's ground truth
(:func:`agreement`, :func:`adjusted_rand_index`, :func:`purity`) lives in
:mod:`analysis.agreement` and is importable from here as before.
"""

from __future__ import annotations

import numpy as np

from glomsim.variables import annotate

from ._common import add_history, canonical_labels
from .agreement import adjusted_rand_index, agreement, contingency, purity
from .islands import islands_of

__all__ = [
    "hierarchy",
    "parse_truth",
    "parent_nesting",
    "agreement",
    "adjusted_rand_index",
    "purity",
    "contingency",
]

#: The trivial parses scored beside :func:`parse_truth`, in its ``baseline`` coordinate.
PARSE_BASELINES = ("one_island", "background_and_singletons", "finer_truth")


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


# ----- the parse tree against the scene's true parents ------------------------------------


def _matched_islands(upper, true_upper):
    """(columns,) int64: the island of ``upper`` matched one-to-one to each column's true
    label in ``true_upper`` (-1 for an unknown or unmatched label).

    The matching maximises the columns the matched pairs share (``linear_sum_assignment``
    on the contingency table of the known columns), so one island can stand for one true
    label at most: an island covering the whole grid is matched to the label it overlaps
    most, not to all of them. A pair sharing no column is no match.
    """
    from scipy.optimize import linear_sum_assignment

    target = np.full(upper.shape, -1, dtype=np.int64)
    known = true_upper >= 0
    if not known.any():
        return target
    labels, row = np.unique(true_upper[known], return_inverse=True)
    islands, col = np.unique(upper[known], return_inverse=True)
    table = contingency(row.reshape(-1), col.reshape(-1))
    rows, cols = linear_sum_assignment(table, maximize=True)
    match = np.full(len(labels), -1, dtype=np.int64)
    shared = table[rows, cols] > 0
    match[rows[shared]] = islands[cols[shared]]
    target[known] = match[row.reshape(-1)]
    return target


def parent_nesting(lower, upper, true_upper, scored=None) -> float:
    """Share of columns whose island in ``lower`` lies inside the island of ``upper`` that
    stands for their true parent.

    Parameters
    ----------
    lower, upper : array (columns,)
        Island labels of the same columns at levels l and l + 1 (any label values).
    true_upper : array (columns,)
        True labels at level l + 1 (negative = unknown): a column's true parent.
    scored : bool array (columns,), optional
        The columns counted (default: all with a known ``true_upper``). Islands are
        always taken whole: an island's unscored columns still decide whether it nests.

    Returns
    -------
    float
        In [0, 1]; NaN when no column is scored. Each true label at level l + 1 is matched
        one-to-one to the island of ``upper`` it shares most columns with (see
        :func:`parse_truth`). A column counts when every column of its ``lower`` island
        lies in the island matched to its true parent, i.e. when its island nests (as in
        :func:`hierarchy`) *and* the island it nests in is its true parent's. 1 for a
        perfect parse; an island map that puts everything in one island at both levels
        scores only the columns of the largest true label.

    Examples
    --------
    >>> parent_nesting([0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1])  # one island above
    0.5
    >>> parent_nesting([5, 5, 7, 8], [1, 1, 2, 2], [0, 0, 1, 1])  # relabelled, right parse
    1.0
    """
    lower = canonical_labels(np.asarray(lower).reshape(-1))
    upper = canonical_labels(np.asarray(upper).reshape(-1))
    true_upper = np.asarray(true_upper).reshape(-1)
    if not (lower.shape == upper.shape == true_upper.shape):
        raise ValueError(
            f"parent_nesting: lower, upper and true_upper have {lower.size}, {upper.size} "
            f"and {true_upper.size} columns; they must match"
        )
    scored = true_upper >= 0 if scored is None else np.asarray(scored, dtype=bool).reshape(-1)
    if scored.shape != lower.shape:
        raise ValueError(f"parent_nesting: scored has {scored.size} columns, not {lower.size}")
    if not scored.any():
        return float("nan")
    n_parents, _ = _nesting(lower, upper)
    ok = (n_parents[lower] == 1) & (upper == _matched_islands(upper, true_upper))
    return float(np.mean(ok[scored]))


def _parse_scored(truth, all_truth, exclude, objects_only):
    """Boolean (level, column): at level l < top the columns scored for the pair (l, l+1)."""
    from .agreement import background_columns

    scored = (truth >= 0) & np.roll(truth >= 0, -1, axis=0)
    scored[-1] = False
    if exclude is not None:
        scored &= truth != exclude
    if objects_only:
        scored &= ~background_columns(all_truth)[None, :]
    return scored


def _parse_baselines(truth, scored, background):
    """(baseline, level): :func:`parent_nesting` of the trivial parses of PARSE_BASELINES."""
    n_levels, n = truth.shape
    out = np.full((len(PARSE_BASELINES), n_levels), np.nan)
    one = np.zeros(n, dtype=np.int64)
    alone = np.where(background, -1, np.arange(n))
    for level in range(n_levels - 1):
        # the truth one level late: level l's islands are the labels of level l - 1
        finer_lower = truth[level - 1] if level > 0 else np.arange(n)
        parses = [(one, one), (alone, alone), (finer_lower, truth[level])]
        for b, (lower, upper) in enumerate(parses):
            out[b, level] = parent_nesting(lower, upper, truth[level + 1], scored[level])
    return out


def parse_truth(ds_or_islands, *, exclude=None, objects_only=False, **island_kwargs):
    """The parse tree of the islands against the scene's true parents, per step and level pair.

    :func:`hierarchy` asks whether each island lies inside *some* island one level up;
    this asks whether it lies inside the *right* one. For each level pair (l, l+1) every
    true label at level l + 1 (an object, say) is matched one-to-one to the island at
    level l + 1 sharing most columns with it (maximum total overlap), and a column counts
    when its whole island at level l lies inside the island matched to its true parent.

    Parameters
    ----------
    ds_or_islands : xarray.Dataset
        A simulation of a scene (with ``label(level, column)``; islands are computed with
        ``island_kwargs``) or an islands Dataset that carries ``label``.
    exclude : int, optional
        Leave out the columns whose true label at level l is ``exclude`` from the pair
        (l, l+1), as in :func:`agreement` (``exclude=0`` drops the background).
    objects_only : bool
        Leave out the scene's background (:func:`analysis.agreement.background_columns`)
        from every pair. One of ``exclude`` and ``objects_only`` at most.
    **island_kwargs
        Passed to :func:`analysis.islands` when given a simulation.

    Returns
    -------
    xarray.Dataset
        - ``parent_score(time, level)``: :func:`parent_nesting` of levels (l, l+1) over the
          scored columns (those with known labels at l and l+1, less the left-out ones);
          1 = every island sits inside its true parent's island. NaN at the top level.
        - ``parse_truth_score(time)``: the mean over the level pairs (NaN with one level).
        - ``baseline_parent_score(baseline, level)``: the same score of trivial parses:
          ``one_island`` (every level one island), ``background_and_singletons`` (the
          background one island, every other column its own, at every level) and
          ``finer_truth`` (the truth one level late: level l's islands are level l-1's
          true labels, singletons at level 0). A score is informative only above them.
        - ``columns_scored(level)`` int64.

        Islands are taken whole (all their columns decide whether they nest, scored or
        not), and the matching uses every column with a known label, so the background's
        island is matched to the background and cannot stand in for an object's.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> from analysis.hierarchy import parse_truth
    >>> from glomsim.scenes import make_scene
    >>> scene = make_scene(grid=(8, 8), dim=16, levels=3, n_objects=2, noise=0.0)
    >>> cfg = gs.GlomConfig(levels=3, dim=16, grid=(8, 8), steps=0)
    >>> init = np.stack([np.eye(16)[lab] for lab in scene.labels])  # islands = the truth
    >>> ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene, init=init)
    >>> out = parse_truth(ds, connectivity="global")
    >>> out.parent_score.values[0].tolist()[:2], float(out.parse_truth_score[0])
    ([1.0, 1.0], 1.0)
    """
    import xarray as xr

    from .agreement import _check_options, _history_params, background_columns

    exclude, objects_only = _check_options(exclude, objects_only)
    isl = islands_of(ds_or_islands, island_kwargs, "parse_truth")
    source = ds_or_islands if "label" in ds_or_islands.variables else isl
    if "label" not in source.variables:
        raise ValueError(
            "parse_truth: ds has no ground truth label(level, column); simulate a scene "
            "(simulate(cfg, w, inputs=make_scene(...))) to get one"
        )
    all_truth = np.asarray(source["label"].transpose("level", "column").values)
    truth = np.asarray(source["label"].sel(level=isl["level"].values).transpose(
        "level", "column").values)  # fmt: skip
    labels = np.asarray(isl["labels"].values)
    n_times, n_levels, _ = labels.shape
    scored = _parse_scored(truth, all_truth, exclude, objects_only)
    score = np.full((n_times, n_levels), np.nan)
    for t in range(n_times):
        for level in range(n_levels - 1):
            score[t, level] = parent_nesting(
                labels[t, level], labels[t, level + 1], truth[level + 1], scored[level]
            )
    if n_levels > 1:
        overall = score[:, :-1].mean(axis=1)
    else:
        overall = np.full(n_times, np.nan)
    base = _parse_baselines(truth, scored, background_columns(all_truth))
    out = xr.Dataset(
        {
            "parent_score": (("time", "level"), score),
            "parse_truth_score": (("time",), overall),
            "baseline_parent_score": (("baseline", "level"), base),
            "columns_scored": (("level",), scored.sum(axis=1).astype(np.int64)),
        },
        coords={"time": isl["time"], "level": isl["level"], "baseline": list(PARSE_BASELINES)},
    )
    annotate(out, "parse_truth")
    out.attrs.update(title="parse tree of GLOM islands against the true parents")
    params = _history_params(island_kwargs, exclude, objects_only)
    return add_history(out, isl.attrs, "parse_truth", params)
