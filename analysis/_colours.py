"""Island colours that stay distinct: the palette, the adjacency colouring, the background.

One scheme for every figure (island maps, animations, the projection):

- **Palette**: tab20, tab20b and tab20c with their greys left out, kept only where a colour
  differs from every colour kept before it and from the background grey by at least
  :data:`MIN_DELTA_E` in CIELAB (so no two palette entries can be mistaken for each other).
- **Adjacent islands differ**: the islands' adjacency graph (two islands touch when a pair
  of neighbouring columns joins them) is coloured greedily, islands of most neighbours
  first, each taking the least used palette colour that none of its neighbours has (the
  whole palette gets used, so islands far apart rarely share a colour either).
- **Background grey**: with ground truth, label 0 is the background (``glomsim.scenes``);
  the island holding the most background columns is drawn in :data:`BACKGROUND` when
  background columns make up at least :data:`BACKGROUND_SHARE` of it. A level whose truth is one label (the whole
  scene) has no background; without ground truth no island is grey.
- **Stable colours**: an island takes, in this order and when no neighbour has it yet, the
  colour of the true label it matches (each the other's largest overlap), then the colour
  of the island of the previous recorded step it continues (its tracked identity, as
  :func:`analysis.tracking.track` matches islands: one-to-one by Jaccard index), then a
  free colour. So an island keeps its colour while it persists, and an island that
  matches the truth has the truth panel's colour.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "BACKGROUND",
    "UNKNOWN",
    "MIN_DELTA_E",
    "palette",
    "grid_pairs",
    "island_pairs",
    "colour_islands",
    "colour_truth",
    "colour_series",
    "truth_rgb",
    "to_rgb",
    "lightness",
]

#: The background island's (and the background label's) colour: a neutral grey.
BACKGROUND = np.array([0.78, 0.78, 0.78])
#: Least share of background columns in the island drawn as the background: an island
#: that has swallowed objects as well is an island like any other.
BACKGROUND_SHARE = 2 / 3
#: Columns whose true label is unknown (negative).
UNKNOWN = np.array([1.0, 1.0, 1.0])
#: Least CIELAB distance between two palette colours, and between one and the background.
MIN_DELTA_E = 14.0
#: Least CIELAB chroma of a palette colour: greyish colours read as background.
MIN_CHROMA = 18.0


def _lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB colours in [0, 1], shape (..., 3)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def delta_e(a, b) -> np.ndarray:
    """CIE76 colour difference of sRGB colours ``a`` and ``b`` (broadcast)."""
    return np.linalg.norm(_lab(a) - _lab(b), axis=-1)


def lightness(rgb) -> np.ndarray:
    """CIELAB lightness L* (0 black .. 100 white) of sRGB colours (..., 3)."""
    return _lab(np.asarray(rgb, dtype=np.float64)[..., :3])[..., 0]


@functools.cache
def _palette() -> np.ndarray:
    from matplotlib import colormaps

    tab20 = np.asarray(colormaps["tab20"].colors)
    tab20b = np.asarray(colormaps["tab20b"].colors)
    tab20c = np.asarray(colormaps["tab20c"].colors)
    # strong shades first (tab20 pairs a dark and a light shade of each hue); greys out
    strong = [i for i in range(0, 20, 2) if i != 14]
    light = [i for i in range(1, 20, 2) if i != 15]
    candidates = np.concatenate(
        [tab20[strong], tab20b[0::4], tab20c[0:16:4], tab20[light], tab20b, tab20c[:16]]
    )
    kept: list[np.ndarray] = []
    for c in candidates:
        lab = _lab(c)
        if np.hypot(lab[1], lab[2]) < MIN_CHROMA or delta_e(c, BACKGROUND) < MIN_DELTA_E:
            continue
        if kept and delta_e(np.asarray(kept), c).min() < MIN_DELTA_E:
            continue
        kept.append(c)
    out = np.asarray(kept)
    out.setflags(write=False)
    return out


def palette() -> np.ndarray:
    """The island palette (K, 3), RGB in [0, 1]: no greys, no two colours alike.

    Examples
    --------
    >>> p = palette()
    >>> p.shape[1], len(p) >= 24
    (3, True)
    """
    return _palette()


def grid_pairs(y, x) -> np.ndarray:
    """Pairs of columns that touch (the 8 surrounding positions on a grid; on other
    layouts, those within 1.5 times the median nearest-neighbour distance)."""
    from scipy.spatial import cKDTree

    from glomsim.neighbours import neighbour_pairs

    pos = np.stack([np.asarray(y, float), np.asarray(x, float)], axis=1)
    if len(pos) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if np.all(pos == np.round(pos)):
        return neighbour_pairs(pos, 1.5)
    dist, _ = cKDTree(pos).query(pos, k=2)
    return neighbour_pairs(pos, 1.5 * float(np.median(dist[:, 1])))


def island_pairs(labels, pairs) -> np.ndarray:
    """(E, 2) pairs a < b of islands that touch: joined by a pair of neighbouring columns."""
    labels = np.asarray(labels)
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    keep = a != b
    edges = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1)
    return np.unique(edges, axis=0) if len(edges) else edges.astype(np.int64)


def _neighbours(n_islands: int, edges: np.ndarray) -> list[np.ndarray]:
    both = np.concatenate([edges, edges[:, ::-1]]) if len(edges) else edges
    if len(both) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_islands)]
    both = both[np.argsort(both[:, 0], kind="stable")]
    cuts = np.searchsorted(both[:, 0], np.arange(n_islands + 1))
    return [both[cuts[i] : cuts[i + 1], 1] for i in range(n_islands)]


def colour_islands(labels, pairs, *, background=None, prefer=()) -> np.ndarray:
    """Palette index of each island (K,), -1 for the background island.

    ``labels`` (N,) numbers the islands 0..K-1; ``pairs`` (P, 2) are neighbouring columns;
    ``background`` is the background island or None; ``prefer`` a sequence of
    {island: palette index} tried in order before a free colour is chosen. Adjacent
    islands always get different indices while an island has fewer neighbours than the
    palette has colours.

    Examples
    --------
    >>> # island 1 touches both others: it is coloured first
    >>> colour_islands(np.array([0, 0, 1, 2]), np.array([[0, 1], [1, 2], [2, 3]])).tolist()
    [1, 0, 2]
    """
    labels = np.asarray(labels)
    n_islands = int(labels.max()) + 1 if labels.size else 0
    n_colours = len(palette())
    nbrs = _neighbours(n_islands, island_pairs(labels, pairs))
    colour = np.full(n_islands, -2, dtype=np.int64)  # -2: not yet coloured
    if background is not None:
        colour[background] = -1
    usage = np.zeros(n_colours)
    sizes = np.bincount(labels, minlength=n_islands) if labels.size else np.zeros(0, int)
    by_size = np.argsort(-sizes, kind="stable")
    for wanted in prefer:
        for isl in by_size:
            c = wanted.get(int(isl))
            if c is None or colour[isl] != -2 or c < 0 or np.any(colour[nbrs[isl]] == c):
                continue
            colour[isl] = c
            usage[c] += 1
    degree = np.array([len(n) for n in nbrs], dtype=np.int64)
    for isl in np.lexsort((-sizes, -degree)):
        if colour[isl] != -2:
            continue
        taken = colour[nbrs[isl]]
        free = usage.copy()
        free[taken[taken >= 0]] = np.inf
        if np.isinf(free).all():  # more neighbours than colours: the least clashing one
            free = np.bincount(taken[taken >= 0], minlength=n_colours).astype(float)
        c = int(np.argmin(free))
        colour[isl] = c
        usage[c] += 1
    return colour


def _mutual_best(a, b, n_a, n_b) -> dict[int, int]:
    """{i: j}: a's island i and b's island j that are each other's largest overlap
    (ties to the lower number). Sparse: memory grows with the overlapping pairs only."""
    if n_a == 0 or n_b == 0 or len(a) == 0:
        return {}
    codes, counts = np.unique(np.asarray(a) * n_b + np.asarray(b), return_counts=True)
    ia, jb = codes // n_b, codes % n_b

    def best(key, other):
        order = np.lexsort((other, -counts, key))  # by key, then largest, then lowest
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        return set(zip(key[order][first].tolist(), other[order][first].tolist(), strict=True))

    mutual = best(ia, jb) & {(i, j) for j, i in best(jb, ia)}
    return dict(mutual)


def background_island(labels, truth):
    """The island holding most background columns (true label 0) when they make up at
    least :data:`BACKGROUND_SHARE` of it; None without truth, without background
    columns, or when the truth is one label."""
    if truth is None:
        return None
    truth = np.asarray(truth)
    bg = truth == 0
    known = truth >= 0
    if not bg.any() or np.all(truth[known] == 0):
        return None
    isl = int(np.bincount(np.asarray(labels)[bg]).argmax())
    members = np.asarray(labels) == isl
    return isl if bg[members].sum() >= BACKGROUND_SHARE * members.sum() else None


def colour_truth(truth, pairs) -> dict[int, int]:
    """{true label: palette index} of one level's truth (N,) or (frames, N), -1 for the
    background label 0 (when other labels exist); a label keeps its colour over frames
    (labels that touch in any frame get different colours)."""
    truth = np.atleast_2d(np.asarray(truth))
    names = np.unique(truth[truth >= 0])
    if names.size == 0:
        return {}
    edges = [np.zeros((0, 2), dtype=np.int64)]
    for row in truth:
        ok = (row[pairs[:, 0]] >= 0) & (row[pairs[:, 1]] >= 0)
        edges.append(island_pairs(np.searchsorted(names, np.maximum(row, 0)), pairs[ok]))
    edges = np.unique(np.concatenate(edges), axis=0)
    has_bg = names[0] == 0 and len(names) > 1
    # the labels as the nodes of a graph: node k is label names[k], joined by ``edges``
    nodes = np.arange(len(names))
    colours = colour_islands(nodes, edges, background=0 if has_bg else None)
    return {int(n): int(c) for n, c in zip(names, colours, strict=True)}


def truth_rgb(truth, truth_colours) -> np.ndarray:
    """RGB (N, 3) of one frame's true labels (N,); unknown (negative) labels white."""
    truth = np.asarray(truth)
    idx = np.array([truth_colours.get(int(v), -3) if v >= 0 else -3 for v in truth.ravel()])
    return _table()[_row(idx)].reshape(truth.shape + (3,))


def _tracked(previous, current, previous_colours) -> dict[int, int]:
    """{island: the colour of the previous step's island it continues}: the identity of
    :func:`analysis.tracking.track` (one-to-one matching by Jaccard index)."""
    if np.array_equal(previous, current):  # a settled step: every island continues
        return {i: int(c) for i, c in enumerate(previous_colours)}
    from .tracking import match_islands

    match = match_islands(previous, current)
    return {i: int(previous_colours[j]) for i, j in enumerate(match) if j >= 0}


def colour_series(labels, pairs, truth=None, truth_colours=None) -> list[np.ndarray]:
    """Palette index per island (-1 background) at each step of ``labels`` (T, N).

    ``truth`` is None, (N,) or (T, N) (the true labels each step was judged against) and
    ``truth_colours`` its {label: palette index} (default :func:`colour_truth`).
    """
    labels = np.asarray(labels)
    if truth is not None:
        truth = np.broadcast_to(np.asarray(truth), labels.shape)
        if truth_colours is None:
            truth_colours = colour_truth(np.unique(truth, axis=0), pairs)
    out: list[np.ndarray] = []
    for t, lab in enumerate(labels):
        n_isl = int(lab.max()) + 1 if lab.size else 0
        prefer = []
        bg = None
        if truth is not None:
            tr = truth[t]
            bg = background_island(lab, tr)
            known = tr >= 0
            names, dense = np.unique(tr[known], return_inverse=True)
            match = _mutual_best(lab[known], dense, n_isl, len(names))
            prefer.append({i: truth_colours.get(int(names[j]), -1) for i, j in match.items()})
        if out:
            prefer.append(_tracked(labels[t - 1], lab, out[-1]))
        out.append(colour_islands(lab, pairs, background=bg, prefer=prefer))
    return out


def _table() -> np.ndarray:
    """Palette rows, then the unknown white, then the background grey."""
    return np.concatenate([palette(), UNKNOWN[None], BACKGROUND[None]])


def _row(idx) -> np.ndarray:
    """Rows of :func:`_table` of palette indices (-1 background, other negatives unknown)."""
    k = len(palette())
    idx = np.asarray(idx)
    return np.where(idx >= 0, idx, np.where(idx == -1, k + 1, k))


def to_rgb(labels, colours) -> np.ndarray:
    """RGB (N, 3) of columns from their island ``labels`` and the islands' palette
    indices ``colours`` (-1 the background grey).

    Examples
    --------
    >>> to_rgb(np.array([0, 1, 1]), np.array([-1, 0])).shape
    (3, 3)
    """
    return _table()[_row(np.asarray(colours)[np.asarray(labels)])]
