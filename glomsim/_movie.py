"""Movies of synthetic part-whole scenes: objects that translate, appear, disappear and
occlude one another, with ground-truth labels per frame.

The public names are :class:`glomsim.scenes.Movie` and :func:`glomsim.scenes.make_movie`;
they live here so that ``glomsim/scenes.py`` stays short. A movie starts from the scene
that :func:`glomsim.scenes.make_scene` draws for the same arguments (layout, codes, first
frame's noise, in the same random order) and moves each object's rectangle, with its parts
and textures, by its velocity per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _scene_draw as sc
from ._validate import check_choice, check_int, is_int, not_allowed
from .neighbours import grid_positions

__all__ = ["Movie", "make_movie", "EDGES", "FRAME_NOISE"]

#: What an object does at the grid's edge: reflect, come back on the other side, or leave.
EDGES = ("bounce", "wrap", "clip")
#: Noise per frame: drawn afresh for every frame, or the first frame's at every frame.
FRAME_NOISE = ("fresh", "frozen")
#: make_scene's arguments that make_movie passes on.
SCENE_ARGUMENTS = (
    "grid",
    "dim",
    "levels",
    "n_objects",
    "parts_per_object",
    "textures_per_part",
    "noise",
    "seed",
    "channels",
    "patch_size",
    "code_shares",
)


@dataclass(frozen=True, eq=False)
class Movie:
    """A movie of a synthetic part-whole scene (arrays are read-only).

    Attributes
    ----------
    tokens : ndarray (frames, columns, dim) float64
        Level-0 tokens of each frame: each column's texture code plus noise.
    images : ndarray (frames, channels, rows * patch_size, cols * patch_size) float64
        The same frames as images, for weights with a patch embedding.
    labels : ndarray (frames, levels, columns) int64
        Ground truth per frame: level 0 texture, 1 part, 2 object (0 = background),
        >= 3 the whole scene (0). An object keeps its label ids in every frame; the
        background is label 0 at every level and frame.
    positions : ndarray (frames, objects, 2) int64
        (top, left) of each object's rectangle in each frame, on the grid (for
        ``edges="wrap"`` taken modulo the grid; for ``"clip"`` possibly outside it).
        Not the columns' positions: those are :attr:`column_positions`.
    visible : ndarray (frames, objects) bool
        Whether each object is shown in each frame (``lifetimes``); a shown object can
        still be hidden behind another or have left the grid.
    grid : (rows, cols)
    patch_size : int
    objects : tuple of (top, left, height, width)
        Each object's rectangle in frame 0 (as ``make_scene``'s ``objects``).
    velocities : ndarray (objects, 2) float64
        (rows, columns) moved per frame by each object.
    depth : tuple of int
        Objects from back to front: a later one covers an earlier one where they overlap.
    edges : str
    frame_noise : str
    codes : ndarray (textures, dim) float64
    noise : float
    seed : int
    params : dict
        The arguments of :func:`make_movie` as given (after defaults).

    Examples
    --------
    >>> m = make_movie(grid=(8, 8), dim=4, levels=3, n_objects=1, n_frames=5,
    ...                velocities=(0, 1), seed=1)
    >>> m.tokens.shape, m.labels.shape, m.images.shape, m.positions.shape
    ((5, 64, 4), (5, 3, 64), (5, 3, 32, 32), (5, 1, 2))
    """

    tokens: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    visible: np.ndarray
    grid: tuple[int, int]
    patch_size: int
    objects: tuple[tuple[int, int, int, int], ...]
    velocities: np.ndarray
    depth: tuple[int, ...]
    edges: str
    frame_noise: str
    codes: np.ndarray
    noise: float
    seed: int
    params: dict

    @property
    def n_frames(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_columns(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def levels(self) -> int:
        return self.labels.shape[1]

    @property
    def dim(self) -> int:
        return self.tokens.shape[2]

    @property
    def column_positions(self) -> np.ndarray:
        """(columns, 2) float64 array of (y, x), row-major: the config's positions."""
        return grid_positions(*self.grid)

    def label_map(self, frame: int, level: int) -> np.ndarray:
        """Labels of one frame and level as a (rows, cols) array."""
        return self.labels[frame, level].reshape(self.grid)

    def __repr__(self):
        return (
            f"Movie(grid={self.grid}, frames={self.n_frames}, dim={self.dim}, "
            f"levels={self.levels}, objects={len(self.objects)}, edges={self.edges!r}, "
            f"noise={self.noise}, seed={self.seed})"
        )


def _check_velocities(velocities, n_objects):
    allowed = f"(dy, dx) or {n_objects} such pairs of finite numbers (grid units per frame)"
    try:
        v = np.asarray(velocities, dtype=np.float64)
    except (TypeError, ValueError):
        raise not_allowed("velocities", velocities, allowed) from None
    if v.shape == (2,):
        v = np.broadcast_to(v, (n_objects, 2))
    if v.shape != (n_objects, 2) or not np.all(np.isfinite(v)):
        raise not_allowed("velocities", velocities, allowed)
    return np.array(v, dtype=np.float64)


def _check_lifetimes(lifetimes, n_objects, n_frames):
    """(frames, objects) bool: object k is shown on frames start <= f < stop."""
    visible = np.ones((n_frames, n_objects), dtype=bool)
    if lifetimes is None:
        return visible
    allowed = f"None or {n_objects} pairs (start, stop) of integers with 0 <= start < stop"
    ok = isinstance(lifetimes, (tuple, list)) and len(lifetimes) == n_objects
    ok = ok and all(
        isinstance(p, (tuple, list))
        and len(p) == 2
        and all(is_int(x) for x in p)
        and 0 <= p[0] < p[1]
        for p in lifetimes
    )
    if not ok:
        raise not_allowed("lifetimes", lifetimes, allowed)
    f = np.arange(n_frames)[:, None]
    start = np.array([p[0] for p in lifetimes])
    stop = np.array([p[1] for p in lifetimes])
    return (f >= start) & (f < stop)


def _check_depth(depth, n_objects):
    if depth is None:
        return tuple(range(1, n_objects + 1))
    ok = isinstance(depth, (tuple, list)) and all(is_int(k) for k in depth)
    if not ok or sorted(int(k) for k in depth) != list(range(1, n_objects + 1)):
        raise not_allowed(
            "depth", depth, f"None or the objects 1..{n_objects} in some order, back to front"
        )
    return tuple(int(k) for k in depth)


def _path(start, size, extent, v, n_frames, edges):
    """Integer start coordinate of a side of length ``size`` in each frame."""
    p = start + v * np.arange(n_frames, dtype=np.float64)
    if edges == "bounce":
        span = extent - size
        if span == 0:
            p = np.zeros_like(p)
        else:
            q = np.mod(p, 2 * span)
            p = np.where(q <= span, q, 2 * span - q)
    p = np.floor(p + 0.5).astype(np.int64)  # nearest column, halves up
    return np.mod(p, extent) if edges == "wrap" else p


def _paste(canvas, local, top, left, wrap):
    """Draw the (h, w) texture map ``local`` at (top, left) on ``canvas``, in place."""
    rows, cols = canvas.shape
    h, w = local.shape
    if wrap:
        canvas[np.ix_((top + np.arange(h)) % rows, (left + np.arange(w)) % cols)] = local
        return
    r0, r1, c0, c1 = max(top, 0), min(top + h, rows), max(left, 0), min(left + w, cols)
    if r0 < r1 and c0 < c1:
        canvas[r0:r1, c0:c1] = local[r0 - top : r1 - top, c0 - left : c1 - left]


def _texture_maps(texture_map, rects, positions, visible, depth, wrap):
    """(frames, rows, cols) texture maps: background 0, objects drawn back to front."""
    locals_ = [texture_map[t : t + h, c : c + w] for t, c, h, w in rects]
    maps = np.zeros((positions.shape[0],) + texture_map.shape, dtype=np.int64)
    for f in range(positions.shape[0]):
        for k in depth:
            if visible[f, k - 1]:
                top, left = positions[f, k - 1]
                _paste(maps[f], locals_[k - 1], int(top), int(left), wrap)
    return maps


def make_movie(
    *,
    n_frames: int = 8,
    velocities=(0.0, 1.0),
    lifetimes=None,
    depth=None,
    edges: str = "bounce",
    frame_noise: str = "fresh",
    **scene,
) -> Movie:
    """Make a movie of a synthetic part-whole scene whose objects translate.

    Frame 0 is the scene that :func:`glomsim.scenes.make_scene` makes from ``scene``
    (same layout, codes, tokens and image). In frame f, object k's rectangle, with its
    parts and textures, sits at its frame-0 corner plus ``f * velocities[k]``, rounded to
    the nearest column (halves up); where objects overlap, the one later in ``depth``
    covers the other (its labels are on top); the background (label 0 at every level)
    fills the rest.

    Parameters
    ----------
    n_frames : int
        Frames (>= 1).
    velocities : (dy, dx) or (n_objects, 2)
        Rows and columns each object moves per frame (any finite numbers; one pair is
        every object's).
    lifetimes : sequence of (start, stop), optional
        Per object, the frames ``start <= f < stop`` on which it is shown (it appears at
        ``start`` and disappears at ``stop``; its position keeps moving meanwhile).
        Default: every object in every frame.
    depth : sequence of int, optional
        The objects 1..n_objects from back to front; default ``(1, 2, ..., n_objects)``
        (the last object in front).
    edges : {"bounce", "wrap", "clip"}
        At the grid's edge an object bounces back (it always lies wholly on the grid),
        wraps round to the other side (a torus; an object across an edge shows in two
        pieces), or moves off the grid (``clip``: partly or wholly out of view).
    frame_noise : {"fresh", "frozen"}
        ``fresh``: each frame's tokens and image get new noise (frame 0's is
        ``make_scene``'s); ``frozen``: every frame gets frame 0's noise, tied to the
        columns, so a still movie repeats ``make_scene``'s tokens exactly.
    **scene
        Arguments of :func:`glomsim.scenes.make_scene`, by keyword: ``grid``, ``dim``,
        ``levels``, ``n_objects``, ``parts_per_object``, ``textures_per_part``,
        ``noise``, ``seed``, ``channels``, ``patch_size``, ``code_shares`` (its defaults).

    Returns
    -------
    Movie
        ``tokens`` (frames, columns, dim), ``images`` (frames, channels, H, W), ``labels``
        (frames, levels, columns), ``positions`` (frames, objects, 2) and the parameters;
        pass it as ``simulate(cfg, w, frames=movie, steps_per_frame=k)``.

    Raises
    ------
    ValueError
        One line naming the argument, its value and what is allowed (as ``make_scene``'s);
        TypeError for an argument ``make_scene`` does not know.

    Examples
    --------
    >>> m = make_movie(grid=(6, 8), dim=4, levels=3, n_objects=1, n_frames=3,
    ...                velocities=(0, 1), edges="wrap", seed=0)
    >>> import numpy as np
    >>> bool(np.array_equal(np.roll(m.label_map(0, 2), 2, axis=1), m.label_map(2, 2)))
    True
    """
    unknown = sorted(set(scene) - set(SCENE_ARGUMENTS))
    if unknown:
        raise TypeError(
            f"make_movie: unknown argument(s) {', '.join(unknown)}; allowed: n_frames, "
            f"velocities, lifetimes, depth, edges, frame_noise, {', '.join(SCENE_ARGUMENTS)}"
        )
    defaults = dict(grid=(16, 16), dim=64, levels=5, n_objects=3, parts_per_object=3,
                    textures_per_part=2, noise=0.1, seed=0, channels=3, patch_size=None,
                    code_shares=sc.DEFAULT_CODE_SHARES)  # fmt: skip
    kw = {**defaults, **scene}
    a = sc._check_scene(
        kw["grid"], kw["dim"], kw["levels"], kw["n_objects"], kw["parts_per_object"],
        kw["textures_per_part"], kw["noise"], kw["channels"], kw["patch_size"],
        kw["code_shares"],
    )  # fmt: skip
    n_frames = check_int("n_frames", n_frames, lo=1)
    v = _check_velocities(velocities, a.n_objects)
    visible = _check_lifetimes(lifetimes, a.n_objects, n_frames)
    order = _check_depth(depth, a.n_objects)
    check_choice("edges", edges, EDGES)
    check_choice("frame_noise", frame_noise, FRAME_NOISE)
    rng, seed_value = sc._rng_of(kw["seed"])

    d = sc._draw(rng, a)
    rows, cols = a.grid
    positions = np.zeros((n_frames, a.n_objects, 2), dtype=np.int64)
    for k, (top, left, h, w) in enumerate(d.rects):
        positions[:, k, 0] = _path(top, h, rows, v[k, 0], n_frames, edges)
        positions[:, k, 1] = _path(left, w, cols, v[k, 1], n_frames, edges)
    maps = _texture_maps(d.texture_map, d.rects, positions, visible, order, edges == "wrap")

    tokens = np.empty((n_frames, rows * cols, a.dim))
    images = np.empty((n_frames,) + d.image_noise.shape)
    labels = np.empty((n_frames, a.levels, rows * cols), dtype=np.int64)
    token_noise, image_noise = d.token_noise, d.image_noise
    for f in range(n_frames):
        if f > 0 and frame_noise == "fresh":
            token_noise = rng.standard_normal(token_noise.shape)
            image_noise = rng.standard_normal(image_noise.shape)
        tex = maps[f].ravel()
        tokens[f] = d.codes[tex] + a.noise * token_noise
        images[f] = sc._image_of(d.patterns, maps[f]) + a.noise * image_noise
        labels[f] = sc._labels_of(tex, d.tex_part, d.tex_object, a.levels)

    for arr in (tokens, images, labels, positions, visible, v, d.codes):
        arr.setflags(write=False)
    params = dict(
        n_frames=n_frames,
        velocities=v.tolist(),
        lifetimes=None if lifetimes is None else [list(map(int, p)) for p in lifetimes],
        depth=list(order),
        edges=edges,
        frame_noise=frame_noise,
        grid=list(a.grid),
        dim=a.dim,
        levels=a.levels,
        n_objects=a.n_objects,
        parts_per_object=a.parts,
        textures_per_part=a.textures,
        noise=a.noise,
        seed=seed_value,
        channels=a.channels,
        patch_size=a.patch_size,
        code_shares=[float(x) for x in a.shares],
    )
    return Movie(
        tokens=tokens,
        images=images,
        labels=labels,
        positions=positions,
        visible=visible,
        grid=a.grid,
        patch_size=a.patch_size,
        objects=tuple(tuple(int(x) for x in r) for r in d.rects),
        velocities=v,
        depth=order,
        edges=edges,
        frame_noise=frame_noise,
        codes=d.codes,
        noise=a.noise,
        seed=seed_value,
        params=params,
    )
