"""Agreement of islands with a scene's ground truth, and scores the background cannot inflate.

The adjusted Rand index and purity are computed here in plain numpy (contingency tables
from ``np.unique``; no scikit-learn). A scene's background covers about half the grid and
is one true class at every level, so any partition that keeps it in one island already
scores high: "background one island, every other column alone" reaches ARI 0.93 against
the parts. :func:`agreement` therefore also scores without the background
(``objects_only=True`` or ``exclude=``), reports the trivial baselines beside every score,
measures the boundary leak (how often neighbours across a true boundary agree) and a
threshold-free cosine contrast. ``docs/analysis-islands.md`` has the definitions.
"""

from __future__ import annotations

import numpy as np

from glomsim._validate import check_bool, check_int
from glomsim.variables import annotate

from ._common import add_history, is_islands, iter_time_blocks
from .islands import islands_of, similar_pairs

__all__ = [
    "agreement",
    "adjusted_rand_index",
    "purity",
    "contingency",
    "background_columns",
    "boundary_leak",
    "cosine_contrast",
    "BASELINES",
]

#: The scene's background: this label at the object level (make_scene's convention: the
#: background is texture 0, part 0 and object 0 alike).
BACKGROUND_LABEL = 0
#: The level whose labels name the objects (levels >= 3 are the whole scene).
OBJECT_LEVEL = 2
#: The trivial partitions scored beside every score, in the ``baseline`` coordinate.
BASELINES = ("background_and_singletons", "finer_truth")
#: Neighbouring pairs of the boundary leak: the 4 adjacent columns of a grid.
BOUNDARY_RADIUS = 1.0


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


def background_columns(label) -> np.ndarray:
    """Boolean (columns,): the scene's background, from ground-truth ``label(level, column)``.

    The background is the columns labelled 0 at the object level (level 2, or the top
    level of a scene with fewer levels): :func:`glomsim.scenes.make_scene` makes the
    background texture 0, part 0 and object 0, so these are the same columns at levels
    0-2. (Not the largest class: an object may be larger than the background.)

    Examples
    --------
    >>> background_columns([[0, 1, 2, 0], [0, 1, 1, 0], [0, 1, 1, 0]]).tolist()
    [True, False, False, True]
    """
    label = np.asarray(getattr(label, "values", label))
    if label.ndim != 2:
        raise ValueError(
            f"label has shape {label.shape}; it must be (level, column) ground-truth labels"
        )
    return label[min(OBJECT_LEVEL, label.shape[0] - 1)] == BACKGROUND_LABEL


def boundary_leak(x, truth, pairs, threshold=0.99, metric="cosine") -> float:
    """Share of neighbouring pairs across a true boundary whose embeddings agree.

    Parameters
    ----------
    x : array (columns, feature)
        One level's embeddings.
    truth : array (columns,)
        True labels; a pair crosses a boundary when its two labels differ.
    pairs : array (P, 2)
        Neighbouring pairs (:func:`glomsim.neighbours.neighbour_pairs`).
    threshold, metric
        As in :func:`analysis.islands`: a pair agrees when it would join an island.

    Returns
    -------
    float
        In [0, 1]: 0 when islands follow every boundary, 1 when no boundary separates
        anything (everything one island); NaN without boundary pairs.

    Examples
    --------
    >>> pairs = np.array([[0, 1], [1, 2], [2, 3]])
    >>> x = np.array([[1.0, 0], [1, 0], [1, 0], [0, 1]])
    >>> boundary_leak(x, np.array([0, 0, 1, 1]), pairs)
    1.0
    """
    truth = np.asarray(truth)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    across = pairs[truth[pairs[:, 0]] != truth[pairs[:, 1]]]
    if len(across) == 0:
        return float("nan")
    agree = similar_pairs(np.asarray(x, dtype=np.float64), across, threshold, metric)
    return float(np.mean(agree))


def cosine_contrast(x, truth) -> float:
    """Mean cosine of pairs within a true class minus mean cosine of pairs across classes.

    Threshold-free, in [-2, 2]: 1 when every class is one direction and classes are
    orthogonal (more when classes point apart), 0 when the embeddings do not depend on
    the class (e.g. all equal). As in
    :func:`analysis.islands`, two zero vectors have cosine 1 and a zero and a non-zero
    vector cosine 0. Computed from the class sums of unit vectors, in O(columns x
    feature). NaN without a within-class pair or without two classes.

    Examples
    --------
    >>> x = np.array([[1.0, 0], [2, 0], [0, 1], [0, 3]])
    >>> cosine_contrast(x, [0, 0, 1, 1])
    1.0
    """
    x = np.asarray(x, dtype=np.float64)
    _, cls = np.unique(np.asarray(truth), return_inverse=True)
    cls = cls.reshape(-1)
    norms = np.sqrt(np.einsum("nd,nd->n", x, x))
    zero = norms == 0
    unit = x / np.where(zero, 1.0, norms)[:, None]
    k = int(cls.max()) + 1 if cls.size else 0
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, cls, unit)
    n_k = np.bincount(cls, minlength=k).astype(np.float64)
    z_k = np.bincount(cls[zero], minlength=k).astype(np.float64)

    def pair_sum(s, n, z):
        # sum over ordered pairs i != j of cos: |sum of units|^2 less the diagonal, plus
        # the zero-zero pairs (cos 1 by convention)
        return float(np.einsum("...d,...d->...", s, s).sum() - (n - z).sum() + (z * (z - 1)).sum())

    within = pair_sum(sums, n_k, z_k)
    total = pair_sum(sums.sum(axis=0), n_k.sum(), z_k.sum())
    n_within = float((n_k * (n_k - 1)).sum())
    n_between = float(n_k.sum() ** 2 - (n_k**2).sum())
    if n_within == 0 or n_between == 0:
        return float("nan")
    return within / n_within - (total - within) / n_between


def _islands_for(ds, islands, island_kwargs):
    if islands is None:
        return islands_of(ds, island_kwargs, "agreement")
    if island_kwargs:
        raise ValueError(
            f"agreement: island options {sorted(island_kwargs)} were given with "
            "islands=; pass one or the other"
        )
    if not is_islands(islands):
        raise ValueError("agreement: islands must be a Dataset from analysis.islands")
    return islands


def _scored_columns(truth, all_truth, exclude, objects_only):
    """Boolean (level, column): the columns scored at each level."""
    scored = truth >= 0
    if exclude is not None:
        scored &= truth != exclude
    if objects_only:
        scored &= ~background_columns(all_truth)[None, :]
    return scored


def _baseline_scores(truth, finer, scored, background):
    """(ari, purity, inverse purity), each (baseline, level), of the trivial partitions."""
    n_levels, n = truth.shape
    scores = np.full((3, len(BASELINES), n_levels), np.nan)
    # the background one island, every other column its own (labels -1 and 0..n-1 differ)
    alone = np.where(background, -1, np.arange(n))
    for level in range(n_levels):
        keep = scored[level]
        if not keep.any():
            continue
        true = truth[level][keep]
        preds = [alone[keep], None if finer[level] is None else finer[level][keep]]
        for b, pred in enumerate(preds):
            if pred is not None:
                scores[:, b, level] = _scores(pred, true)
    return scores


def _scores(pred, true):
    return adjusted_rand_index(pred, true), purity(pred, true), purity(true, pred)


def _embedding_scores(emb_source, isl, truth, scored):
    """(boundary_leak, cosine_contrast, boundary_pairs) at the islands' steps, or None
    when there are no embeddings to read."""
    if emb_source is None:
        return None
    from glomsim.neighbours import neighbour_pairs

    emb = emb_source["embedding"]
    if "time" not in emb.dims:
        emb = emb.expand_dims("time")
        positions = np.zeros(isl.sizes["time"], dtype=np.int64)
    else:
        where = {int(t): k for k, t in enumerate(emb_source["time"].values)}
        missing = [int(t) for t in isl["time"].values if int(t) not in where]
        if missing:
            raise ValueError(
                f"agreement: islands has step(s) {missing[:5]} that ds does not record; "
                "pass the islands of this ds"
            )
        positions = np.array([where[int(t)] for t in isl["time"].values], dtype=np.int64)
    emb = emb.transpose("time", "level", "column", "feature")
    level_pos = [int(np.nonzero(emb["level"].values == lv)[0][0]) for lv in isl["level"].values]
    pos = np.stack([np.asarray(isl["y"].values), np.asarray(isl["x"].values)], axis=1)
    pairs = neighbour_pairs(pos.astype(np.float64), BOUNDARY_RADIUS)
    threshold = float(isl.attrs.get("island_threshold", 0.99))
    metric = str(isl.attrs.get("island_metric", "cosine"))
    n_times, n_levels = len(positions), truth.shape[0]
    leak = np.full((n_times, n_levels), np.nan)
    contrast = np.full((n_times, n_levels), np.nan)
    n_pairs = np.zeros(n_levels, dtype=np.int64)
    level_pairs = []
    for level in range(n_levels):
        p = pairs[scored[level][pairs[:, 0]] & scored[level][pairs[:, 1]]]
        level_pairs.append(p)
        n_pairs[level] = int(np.sum(truth[level][p[:, 0]] != truth[level][p[:, 1]]))
    for idx, block in iter_time_blocks(emb, positions):
        for k, t in enumerate(idx):
            for level in range(n_levels):
                keep = scored[level]
                x = np.asarray(block[k, level_pos[level]], dtype=np.float64)
                leak[t, level] = boundary_leak(
                    x, truth[level], level_pairs[level], threshold, metric
                )
                if keep.any():
                    contrast[t, level] = cosine_contrast(x[keep], truth[level][keep])
    return leak, contrast, n_pairs


def _check_options(exclude, objects_only):
    if exclude is not None:
        exclude = check_int("agreement: exclude", exclude, note="or None (score every label)")
    if check_bool("agreement: objects_only", objects_only) and exclude is not None:
        raise ValueError(
            f"agreement: exclude={exclude!r} with objects_only=True; pass one or the other "
            "(objects_only=True leaves out the scene's background at every level)"
        )
    return exclude, bool(objects_only)


def _history_params(island_kwargs, exclude, objects_only) -> dict:
    """The parameters a scoring function records in the history: the island options, and
    ``exclude`` / ``objects_only`` when given."""
    params = dict(island_kwargs)
    if exclude is not None:
        params["exclude"] = exclude
    if objects_only:
        params["objects_only"] = True
    return params


def _which_columns(exclude, objects_only) -> str:
    if objects_only:
        return (
            f"objects only: columns outside the background (true label "
            f"{BACKGROUND_LABEL} at level {OBJECT_LEVEL}) with a known label"
        )
    if exclude is not None:
        return f"columns whose true label is known and not {exclude}"
    return "every column with a known (non-negative) true label"


def agreement(ds, islands=None, *, exclude=None, objects_only=False, **island_kwargs):
    """Agreement of islands with the ground-truth labels, per step and level.

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation of a scene (with ``label(level, column)``), or an islands Dataset
        that carries ``label``.
    islands : xarray.Dataset, optional
        A result of :func:`analysis.islands`; default ``islands(ds, **island_kwargs)``.
    exclude : int, optional
        A true label value left out at every level (``exclude=0`` drops the background at
        levels 0-2, and everything at the scene levels >= 3).
    objects_only : bool
        Leave out the scene's background (:func:`background_columns`) at every level.
        One of ``exclude`` and ``objects_only`` at most.

    Returns
    -------
    xarray.Dataset
        Over the scored columns (those with a known, i.e. non-negative, true label, less
        those ``exclude``/``objects_only`` leave out; ``columns_scored(level)`` counts
        them; NaN at a level without any):

        - ``ari(time, level)``, ``purity(time, level)``, ``inverse_purity(time, level)``;
        - ``baseline_ari``, ``baseline_purity``, ``baseline_inverse_purity``
          ``(baseline, level)``: the same scores of two trivial partitions,
          ``background_and_singletons`` (the background one island, every other column
          its own) and ``finer_truth`` (the true labels of the level below; NaN at
          level 0): a score is informative only above them;
        - with embeddings (``ds`` a simulation): ``boundary_leak(time, level)``, the share
          of 4-neighbour pairs across a true boundary whose embeddings agree at the
          islands' threshold (0 = islands follow the boundaries, 1 = no boundary holds),
          ``boundary_pairs(level)``, how many such pairs there are, and
          ``cosine_contrast(time, level)``, the threshold-free mean within-label cosine
          minus mean between-label cosine.

        Attrs: ``ds``'s, a history line, and ``scored_columns`` saying which were scored.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> from glomsim.scenes import make_scene
    >>> scene = make_scene(grid=(8, 8), dim=8, levels=3, n_objects=2, noise=0.0)
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=0)
    >>> ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene,
    ...                  init=scene.tokens[None].repeat(3, axis=0))
    >>> score = an.agreement(ds, connectivity="global")
    >>> float(score.ari.sel(level=0)[0])
    1.0
    >>> objects = an.agreement(ds, objects_only=True, connectivity="global")
    >>> float(objects.baseline_ari.sel(baseline="background_and_singletons", level=1))
    0.0
    """
    import xarray as xr

    exclude, objects_only = _check_options(exclude, objects_only)
    isl = _islands_for(ds, islands, island_kwargs)
    truth_source = ds if "label" in ds.variables else isl
    if "label" not in truth_source.variables:
        raise ValueError(
            "agreement: ds has no ground truth label(level, column); simulate a scene "
            "(simulate(cfg, w, inputs=make_scene(...))) to get one"
        )
    all_truth = truth_source["label"].transpose("level", "column")
    levels = isl["level"].values
    truth = all_truth.sel(level=levels).values
    all_values = all_truth.values
    level_of = {int(v): k for k, v in enumerate(all_truth["level"].values)}
    finer = [all_values[level_of[lv - 1]] if lv - 1 in level_of else None for lv in levels]
    scored = _scored_columns(truth, all_values, exclude, objects_only)
    labels = np.asarray(isl["labels"].values)
    n_times, n_levels, _ = labels.shape
    scores = np.full((3, n_times, n_levels), np.nan)
    for level in range(n_levels):
        keep = scored[level]
        if not keep.any():
            continue
        for t in range(n_times):
            scores[:, t, level] = _scores(labels[t, level][keep], truth[level][keep])
    base = _baseline_scores(truth, finer, scored, background_columns(all_values))

    tl, bl = ("time", "level"), ("baseline", "level")
    data = {
        "ari": (tl, scores[0]),
        "purity": (tl, scores[1]),
        "inverse_purity": (tl, scores[2]),
        "baseline_ari": (bl, base[0]),
        "baseline_purity": (bl, base[1]),
        "baseline_inverse_purity": (bl, base[2]),
        "columns_scored": (("level",), scored.sum(axis=1).astype(np.int64)),
    }
    emb_source = ds if "embedding" in ds.data_vars else None
    extra = _embedding_scores(emb_source, isl, truth, scored)
    if extra is not None:
        data["boundary_leak"] = (tl, extra[0])
        data["cosine_contrast"] = (tl, extra[1])
        data["boundary_pairs"] = (("level",), extra[2])
    out = xr.Dataset(
        data,
        coords={"time": isl["time"], "level": isl["level"], "baseline": list(BASELINES)},
    )
    annotate(out, "agreement")
    out.attrs.update(title="agreement of GLOM islands with ground truth")
    add_history(out, isl.attrs, "agreement", _history_params(island_kwargs, exclude, objects_only))
    out.attrs["scored_columns"] = _which_columns(exclude, objects_only)
    return out
