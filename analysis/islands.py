"""Islands of agreement: columns whose embeddings at one level (nearly) agree.

Hinton's GLOM represents a parse tree by islands of identical vectors: at each level, the
columns that belong to the same part (or object) agree on its embedding. :func:`islands`
finds these islands at every recorded step and level and summarises them, beside the same
figures for a shuffled baseline (embeddings permuted over positions), which tells islands
that are spatially coherent from chance agreement.
"""

from __future__ import annotations

import math

import numpy as np

from glomsim._validate import check_island_options
from glomsim.neighbours import neighbour_pairs  # also imported from here, where it was
from glomsim.variables import annotate, check_dataset

from ._common import add_history, canonical_labels, is_islands, iter_time_blocks, time_positions

__all__ = ["islands", "islands_of", "similar_pairs", "island_labels"]


#: Rows of the distance matrix computed at once for global single linkage.
_BLOCK = 2048
#: Round-off allowed in 1 - cos: equal rows give cos = 1 only up to a few ulps.
_COS_SLACK = 1e-12


def _unit(x):
    """Rows scaled to unit norm; zero rows stay zero. Also returns the zero-row mask."""
    norms = np.sqrt(np.einsum("nd,nd->n", x, x))
    zero = norms == 0
    unit = x / np.where(zero, 1.0, norms)[:, None]
    return unit, zero


def _rms_norm(x):
    return math.sqrt(float(np.einsum("nd,nd->", x, x)) / max(x.shape[0], 1))


def similar_pairs(x, pairs, threshold, metric="cosine"):
    """Boolean (P,): whether the columns of each pair are similar enough to join.

    ``cosine``: cos(x_i, x_j) >= threshold (less 1e-12 for round-off), with cos = 1 between two zero vectors (they
    agree exactly) and 0 between a zero and a non-zero vector. ``euclidean``:
    |x_i - x_j| <= (1 - threshold) * RMS norm of the rows of ``x``, so the threshold is a
    relative tolerance that does not depend on the embeddings' scale.
    """
    i, j = pairs[:, 0], pairs[:, 1]
    if metric == "cosine":
        unit, zero = _unit(x)
        cos = np.einsum("pd,pd->p", unit[i], unit[j])
        cos[zero[i] & zero[j]] = 1.0
        return 1.0 - cos <= 1.0 - threshold + _COS_SLACK
    diff = x[i] - x[j]
    dist = np.sqrt(np.einsum("pd,pd->p", diff, diff))
    return dist <= (1.0 - threshold) * _rms_norm(x)


def _components(n, pairs):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels


def _cut(x, threshold, metric):
    """Joined iff distance <= cut: 1 - cos for cosine, Euclidean distance otherwise."""
    if metric == "cosine":
        return 1.0 - threshold + _COS_SLACK
    return (1.0 - threshold) * _rms_norm(x)


def _cosine_block(r0, r1, unit, zero):
    """1 - cos (r1 - r0, N) of rows r0:r1 to all rows; two zero rows are at distance 0."""
    cos = unit[r0:r1] @ unit.T
    cos[np.ix_(zero[r0:r1], zero)] = 1.0
    return 1.0 - cos


def _euclidean_block(x, r0, r1, cut):
    """Euclidean distances (r1 - r0, N) of rows r0:r1 to all rows.

    They come from |a|^2 + |b|^2 - 2 a.b through BLAS, which loses digits for nearly equal
    rows; entries whose side of the cut round-off could change are recomputed from
    differences, which are exact for equal rows.
    """
    sq = np.einsum("nd,nd->n", x, x)
    d2 = sq[r0:r1, None] + sq[None, :] - 2.0 * (x[r0:r1] @ x.T)
    # error bound of the expanded formula (a dot product of D terms)
    slack = (x.shape[1] + 2) * np.finfo(np.float64).eps * (sq[r0:r1, None] + sq[None, :])
    dist = np.sqrt(np.maximum(d2, 0.0))
    bi, bj = np.nonzero(np.abs(d2 - cut * cut) <= slack)
    diff = x[bi + r0] - x[bj]
    dist[bi, bj] = np.sqrt(np.einsum("pd,pd->p", diff, diff))
    return dist


def _global_single(x, threshold, metric):
    """Single linkage cut at the threshold = connected components of the threshold graph.

    Built in row blocks; after each block the edges found so far are replaced by a
    spanning forest (each column to its component's first column), so memory stays at
    one block of the distance matrix.
    """
    n = x.shape[0]
    labels = np.arange(n)
    cut = _cut(x, threshold, metric)
    unit, zero = _unit(x) if metric == "cosine" else (None, None)
    forest = np.zeros((0, 2), dtype=np.int64)
    for r0 in range(0, n, _BLOCK):
        r1 = min(n, r0 + _BLOCK)
        if metric == "cosine":
            dist = _cosine_block(r0, r1, unit, zero)
        else:
            dist = _euclidean_block(x, r0, r1, cut)
        bi, bj = np.nonzero(dist <= cut)
        edges = np.concatenate([forest, np.stack([bi + r0, bj], axis=1)])
        labels = _components(n, edges)
        first = np.unique(labels, return_index=True)[1]
        forest = np.stack([np.arange(n), first[labels]], axis=1)
    return labels


def _global_linkage(x, threshold, metric, linkage):
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    n = x.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    cut = _cut(x, threshold, metric)
    if metric == "cosine":
        dist = _cosine_block(0, n, *_unit(x))
    else:
        dist = _euclidean_block(x, 0, n, cut)
    dist = np.maximum((dist + dist.T) / 2.0, 0.0)
    np.fill_diagonal(dist, 0.0)
    z = scipy_linkage(squareform(dist, checks=False), method=linkage)
    return fcluster(z, t=cut, criterion="distance")


def island_labels(
    x, threshold=0.99, metric="cosine", *, pairs=None, linkage="single"
) -> np.ndarray:
    """Canonical island labels (N,) of one level's embeddings ``x`` (N, D).

    With ``pairs`` (from :func:`glomsim.neighbours.neighbour_pairs`), islands are the
    connected components of the similar neighbour pairs; without, agglomerative clustering of all columns
    (``linkage``) cut at the threshold.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    >>> island_labels(x, 0.99).tolist()
    [0, 0, 1]
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if pairs is not None:
        keep = similar_pairs(x, pairs, threshold, metric)
        labels = _components(n, pairs[keep])
    elif linkage == "single":
        labels = _global_single(x, threshold, metric)
    else:
        labels = _global_linkage(x, threshold, metric, linkage)
    return canonical_labels(labels)


def _summaries(x, labels):
    """(sizes, spread) of one level's islands."""
    sizes = np.bincount(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    means = np.add.reduceat(x[order], starts, axis=0) / sizes[:, None]
    diff = x - means[labels]
    spread = math.sqrt(float(np.einsum("nd,nd->", diff, diff)) / x.shape[0])
    return sizes, spread


def islands(
    ds,
    threshold: float = 0.99,
    metric: str = "cosine",
    connectivity: str = "spatial",
    *,
    radius: float = 1.0,
    baseline_seed: int = 0,
    time=None,
    linkage: str = "single",
):
    """Islands of agreeing columns at every recorded step and level.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`glomsim.simulate`: ``embedding(time, level, column, feature)`` and
        column positions ``y``, ``x``. May be dask-backed; it is read one time chunk at a
        time and never modified.
    threshold : float
        How alike two columns must be to join. ``metric="cosine"``: cosine similarity
        >= threshold (two zero vectors count as identical, a zero and a non-zero vector
        as orthogonal). ``metric="euclidean"``: distance <= (1 - threshold) times the RMS
        norm of the level's embeddings at that step, so 0.99 means "within 1 % of the
        typical norm" whatever the scale.
    metric : {"cosine", "euclidean"}
    connectivity : {"spatial", "global"}
        ``spatial``: an island is a connected component of the graph joining
        neighbouring columns (``|pos_i - pos_j| <= radius``) that are alike; it is a
        contiguous region. ``global``: agglomerative clustering of the embeddings
        (``linkage``) cut at the threshold, whatever the positions.
    radius : float
        Neighbourhood of the spatial graph in grid units: 1 joins the 4 adjacent
        columns of a grid, 1.5 the 8 surrounding ones; ``inf`` all pairs (then spatial
        and global single linkage agree).
    baseline_seed : int
        Seed of the shuffled baseline: per level one random permutation of the columns'
        embeddings over the positions (the same at every step).
    time : int or sequence of int, optional
        Positions along ``time`` to analyse (like ``isel``; -1 is the last recorded
        step); default all.
    linkage : {"single", "average", "complete", "weighted"}
        Linkage of ``connectivity="global"``. Single linkage cut at the threshold joins
        exactly the chains of pairs that pass the threshold, like the spatial graph.

    Returns
    -------
    xarray.Dataset
        - ``labels(time, level, column)`` int64: island of each column, numbered 0, 1, ...
          in order of each island's first column, so equal partitions get equal labels.
        - ``count(time, level)`` int64: number of islands, between 1 and N.
        - ``largest_fraction(time, level)``: largest island's share of the columns.
        - ``spread(time, level)``: RMS distance of embeddings to their island's mean.
        - ``sizes(time, level, island)`` int64: columns per island, 0-padded beyond
          ``count``.
        - ``baseline_count(time, level)``, ``baseline_largest_fraction(time, level)``:
          the same for the shuffled baseline (equal to the result for ``global``, which
          ignores positions).
        - ``label(level, column)``: the ground truth, copied when ``ds`` has it.

        Coords ``time``, ``level``, ``column``, ``y``, ``x``, ``island``; the input's
        attrs plus a ``history`` line and the parameters as ``island_*`` attrs.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 6), steps=0)
    >>> init = [[[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [1, 0]]]
    >>> isl = an.islands(gs.simulate(cfg, gs.identity_weights(cfg), init=init))
    >>> isl.labels.values[0, 0].tolist(), int(isl["count"][0, 0])
    ([0, 0, 0, 1, 1, 2], 3)
    >>> an.islands(gs.simulate(cfg, gs.identity_weights(cfg), init=init),
    ...            connectivity="global").labels.values[0, 0].tolist()
    [0, 0, 0, 1, 1, 0]
    """
    import xarray as xr

    check_dataset(ds, ("embedding", "y", "x"), "islands", optional_dims=("time",))
    check_island_options(
        threshold=threshold,
        metric=metric,
        connectivity=connectivity,
        radius=radius,
        baseline_seed=baseline_seed,
        linkage=linkage,
        where="islands",
    )
    if "time" not in ds["embedding"].dims:
        # one step picked with ds.isel(time=k): analyse it as a run of one recorded step
        ds = ds.expand_dims("time") if "time" in ds.coords else ds.expand_dims(time=[0])
    emb = ds["embedding"]
    if tuple(emb.dims) != ("time", "level", "column", "feature"):
        emb = emb.transpose("time", "level", "column", "feature")
    positions = time_positions(emb.sizes["time"], time, "islands")
    n_times, n_levels, n = len(positions), emb.sizes["level"], emb.sizes["column"]
    pos = np.stack([np.asarray(ds["y"].values), np.asarray(ds["x"].values)], axis=1)
    pos = pos.astype(np.float64)

    spatial = connectivity == "spatial"
    pairs = neighbour_pairs(pos, radius) if spatial and not math.isinf(radius) else None
    if spatial and pairs is None:
        # all pairs are neighbours: the same as global single linkage, done without pairs
        mode = dict(pairs=None, linkage="single")
    elif spatial:
        mode = dict(pairs=pairs, linkage="single")
    else:
        mode = dict(pairs=None, linkage=linkage)
    # the baseline only means something when positions matter
    with_baseline = spatial and pairs is not None
    rng = np.random.default_rng(baseline_seed)
    perms = [rng.permutation(n) for _ in range(n_levels)]

    labels = np.zeros((n_times, n_levels, n), dtype=np.int64)
    spread = np.zeros((n_times, n_levels))
    base_count = np.zeros((n_times, n_levels), dtype=np.int64)
    base_largest = np.zeros((n_times, n_levels))
    all_sizes = {}
    for idx, block in iter_time_blocks(emb, positions):
        for k, t in enumerate(idx):
            for level in range(n_levels):
                x = np.asarray(block[k, level], dtype=np.float64)
                lab = island_labels(x, threshold, metric, **mode)
                labels[t, level] = lab
                sizes, spread[t, level] = _summaries(x, lab)
                all_sizes[t, level] = sizes
                if with_baseline:
                    b = island_labels(x[perms[level]], threshold, metric, **mode)
                    bsizes = np.bincount(b)
                    base_count[t, level] = len(bsizes)
                    base_largest[t, level] = bsizes.max() / n
    n_islands = max((len(s) for s in all_sizes.values()), default=0)
    sizes = np.zeros((n_times, n_levels, n_islands), dtype=np.int64)
    for (t, level), s in all_sizes.items():
        sizes[t, level, : len(s)] = s
    count = (sizes > 0).sum(axis=-1).astype(np.int64)
    largest = sizes.max(axis=-1, initial=0) / max(n, 1)
    if not with_baseline:
        base_count, base_largest = count.copy(), largest.copy()

    dims = ("time", "level")
    out = xr.Dataset(
        {
            "labels": (("time", "level", "column"), labels),
            "count": (dims, count),
            "largest_fraction": (dims, largest),
            "spread": (dims, spread),
            "sizes": (("time", "level", "island"), sizes),
            "baseline_count": (dims, base_count),
            "baseline_largest_fraction": (dims, base_largest),
        },
        coords={
            "time": ds["time"].isel(time=positions),
            "level": ds["level"],
            "column": ds["column"],
            "y": ds["y"],
            "x": ds["x"],
            "island": ("island", np.arange(n_islands, dtype=np.int64)),
        },
    )
    if "label" in ds.data_vars:
        out["label"] = ds["label"].copy(deep=True).load()
    annotate(out, "islands")
    out.attrs["title"] = "islands of agreement of a GLOM simulation"
    params = dict(
        threshold=float(threshold),
        metric=metric,
        connectivity=connectivity,
        radius=float(radius),
        baseline_seed=int(baseline_seed),
        linkage=linkage,
    )
    add_history(out, ds.attrs, "islands", params)
    out.attrs.update({f"island_{k}": v for k, v in params.items()})
    return out


def islands_of(ds_or_islands, island_kwargs, func):
    """An islands Dataset as given, or computed from a simulation with ``island_kwargs``."""
    if is_islands(ds_or_islands):
        if island_kwargs:
            raise ValueError(
                f"{func}: island options {sorted(island_kwargs)} were given with an islands "
                "Dataset; they only apply when islands are computed from a simulation"
            )
        return ds_or_islands
    check_dataset(ds_or_islands, ("embedding",), func, optional_dims=("time",))
    return islands(ds_or_islands, **island_kwargs)
