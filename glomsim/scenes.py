"""Synthetic part-whole scenes with ground-truth labels per level.

A scene is a grid of columns covered by a background and ``n_objects`` rectangular objects
that do not overlap. Each object is cut into ``parts_per_object`` bands along its longer
side, and each part into ``textures_per_part`` bands along the part's longer side. The
background is one object made of one part of one texture. Every texture has a code (a
vector of ``dim`` features) built from its object's, its part's and its own random
codes, so textures of one part are more alike than textures of different parts, and those
more alike than textures of different objects. A column's level-0 token is its texture's
code plus Gaussian noise; its image patch is its texture's pattern plus noise.

Labels per level (``Scene.labels``, shape (levels, columns)): level 0 the texture, level 1
the part, level 2 the object (0 = background, objects 1..n_objects), levels >= 3 the whole
scene (all 0). Columns are numbered row-major, as in ``GlomConfig(grid=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import check_int, check_real, is_int, not_allowed
from .neighbours import grid_positions

__all__ = ["Scene", "make_scene", "LEVEL_NAMES"]

#: What the ground-truth label of each level names; levels from 3 up are the whole scene.
LEVEL_NAMES = ("texture", "part", "object", "scene")

#: Default variance shares of a texture code: (its object's, its part's, its own).
DEFAULT_CODE_SHARES = (0.4, 0.3, 0.3)

# Placement: spots tried per object, whole-scene restarts per size range, the fraction of
# the grid all objects cover together, and the range of a side around its typical length.
_TRIES = 100
_RESTARTS = 10
_OBJECT_AREA = 0.5
_SIDE_RANGE = (0.7, 1.3)


@dataclass(frozen=True, eq=False)
class Scene:
    """A synthetic part-whole scene (arrays are read-only).

    Attributes
    ----------
    tokens : ndarray (columns, dim) float64
        Level-0 input tokens: each column's texture code plus noise.
    image : ndarray (channels, rows * patch_size, cols * patch_size) float64
        The same scene as an image, for weights with a patch embedding.
    labels : ndarray (levels, columns) int64
        Ground truth: level 0 texture, 1 part, 2 object (0 = background), >= 3 scene (0).
    grid : (rows, cols)
    patch_size : int
        Pixels per column side in ``image``.
    objects : tuple of (top, left, height, width)
        The rectangle of each object 1..n_objects on the grid.
    codes : ndarray (textures, dim) float64
        The noise-free code of each texture (row = texture label).
    noise : float
    seed : int

    Examples
    --------
    >>> s = make_scene(grid=(8, 8), dim=16, levels=4, n_objects=2, seed=1)
    >>> s.tokens.shape, s.labels.shape, s.image.shape
    ((64, 16), (4, 64), (3, 32, 32))
    >>> int(s.labels[3].max())
    0
    """

    tokens: np.ndarray
    image: np.ndarray
    labels: np.ndarray
    grid: tuple[int, int]
    patch_size: int
    objects: tuple[tuple[int, int, int, int], ...]
    codes: np.ndarray
    noise: float
    seed: int

    @property
    def n_columns(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def levels(self) -> int:
        return self.labels.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[1]

    @property
    def positions(self) -> np.ndarray:
        """(columns, 2) float64 array of (y, x), row-major: the config's positions."""
        return grid_positions(*self.grid)

    def label_map(self, level: int) -> np.ndarray:
        """Labels of one level as a (rows, cols) array."""
        return self.labels[level].reshape(self.grid)

    def __repr__(self):
        return (
            f"Scene(grid={self.grid}, dim={self.dim}, levels={self.levels}, "
            f"objects={len(self.objects)}, textures={self.codes.shape[0]}, "
            f"noise={self.noise}, seed={self.seed})"
        )


def _bands(start: int, length: int, k: int) -> list[tuple[int, int]]:
    """k contiguous non-empty (start, length) bands covering [start, start + length)."""
    edges = np.linspace(0, length, k + 1).round().astype(int)
    return [(start + int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _split(rect, k):
    """Cut a (top, left, height, width) rectangle into k bands along its longer side."""
    top, left, h, w = rect
    if h >= w:
        return [(a, left, n, w) for a, n in _bands(top, h, k)]
    return [(top, a, h, n) for a, n in _bands(left, w, k)]


def _fits(h, w, parts, textures):
    """Whether an h x w object can be cut into parts, each into textures, all non-empty."""
    if max(h, w) < parts:
        return False
    return all(max(p[2], p[3]) >= textures for p in _split((0, 0, h, w), parts))


def _try_place(rng, grid, n_objects, parts, textures, h_range, w_range, gap):
    """One attempt at placing all objects; None if some object found no free spot."""
    rows, cols = grid
    occupied = np.zeros(grid, dtype=bool)
    placed = []
    for _ in range(n_objects):
        for _ in range(_TRIES):
            h = int(rng.integers(h_range[0], h_range[1] + 1))
            w = int(rng.integers(w_range[0], w_range[1] + 1))
            if not _fits(h, w, parts, textures):
                continue
            top = int(rng.integers(0, rows - h + 1))
            left = int(rng.integers(0, cols - w + 1))
            area = occupied[max(top - gap, 0) : top + h + gap, max(left - gap, 0) : left + w + gap]
            if area.any():
                continue
            occupied[top : top + h, left : left + w] = True
            placed.append((top, left, h, w))
            break
        else:
            return None
    return placed


def _place_objects(rng, grid, n_objects, parts, textures):
    rows, cols = grid
    # objects together cover about half the grid, with a gap of background between them;
    # when they do not fit, retry, then shrink them, then drop the gap and size limits
    side = math.sqrt(_OBJECT_AREA / max(n_objects, 1))
    ranges = [
        (max(1, round(n * side * _SIDE_RANGE[0])), max(1, min(n, round(n * side * _SIDE_RANGE[1]))))
        for n in (rows, cols)
    ]
    plans = []
    for scale in (1.0, 0.8, 0.6, 0.4):
        (h_lo, h_hi), (w_lo, w_hi) = (
            (max(1, round(lo * scale)), max(1, round(hi * scale))) for lo, hi in ranges
        )
        plans += [((h_lo, h_hi), (w_lo, w_hi), 1)] * _RESTARTS
    plans += [((1, rows), (1, cols), 0)] * _RESTARTS
    for h_range, w_range, gap in plans:
        placed = _try_place(rng, grid, n_objects, parts, textures, h_range, w_range, gap)
        if placed is not None:
            return placed
    raise ValueError(
        f"n_objects={n_objects} objects of parts_per_object={parts} x textures_per_part="
        f"{textures} bands do not fit without overlap on grid={grid}; use a larger grid or "
        "fewer objects, parts or textures"
    )


def _mixed_codes(rng, n_textures, tex_part, tex_object, n_parts, n_objects, shape, shares):
    """Texture codes of unit variance per entry, correlated through object and part."""
    obj = rng.standard_normal((n_objects,) + shape)
    part = rng.standard_normal((n_parts,) + shape)
    own = rng.standard_normal((n_textures,) + shape)
    a, b, c = (math.sqrt(s) for s in shares)
    return a * obj[tex_object] + b * part[tex_part] + c * own


def make_scene(
    grid=(16, 16),
    dim: int = 64,
    levels: int = 5,
    *,
    n_objects: int = 3,
    parts_per_object: int = 3,
    textures_per_part: int = 2,
    noise: float = 0.1,
    seed: int | np.random.Generator = 0,
    channels: int = 3,
    patch_size: int | None = None,
    code_shares=DEFAULT_CODE_SHARES,
) -> Scene:
    """Make a synthetic part-whole scene with ground-truth labels per level.

    Parameters
    ----------
    grid : (rows, cols)
        The column grid, numbered row-major like ``GlomConfig(grid=...)``.
    dim : int
        Token size (the config's ``dim``).
    levels : int
        Rows of ``labels`` (the config's ``levels``).
    n_objects : int
        Objects besides the background (>= 0); rectangles that do not overlap.
    parts_per_object : int
        Bands each object is cut into, along its longer side.
    textures_per_part : int
        Bands each part is cut into, along the part's longer side.
    noise : float
        Standard deviation of the Gaussian noise added to every token entry and pixel;
        codes have unit variance per entry, so ``noise`` is relative to the signal.
    seed : int or numpy.random.Generator
        All randomness (placement, codes, noise) comes from this.
    channels : int
        Channels of ``image``.
    patch_size : int, optional
        Pixels per column side in ``image``; default 4.
    code_shares : (object, part, texture)
        Variance shares of a texture code taken from its object's, its part's and its own
        random code (non-negative, summing to 1). The default (0.4, 0.3, 0.3) gives a
        cosine similarity of about 0.7 between textures of one part, 0.4 between parts
        of one object and 0 between objects.

    Returns
    -------
    Scene
        ``tokens`` (columns, dim), ``image`` (channels, H, W), ``labels`` (levels,
        columns) and the layout; pass it as ``simulate(cfg, w, inputs=scene)`` to get
        ``label(level, column)`` in the Dataset.

    Raises
    ------
    ValueError
        Naming the parameter, its value and what is allowed; also when the objects do not
        fit on the grid.

    Examples
    --------
    >>> import glomsim as gs
    >>> scene = make_scene(grid=(8, 8), dim=8, levels=3, n_objects=2, seed=0)
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=2)
    >>> ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene)
    >>> ds.label.dims, int(ds.label.sel(level=2).max())
    (('level', 'column'), 2)
    """
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or not all(is_int(g) and g >= 1 for g in grid)
    ):
        raise not_allowed("grid", grid, "(rows, cols) with integers >= 1")
    grid = (int(grid[0]), int(grid[1]))
    dim = check_int("dim", dim, lo=1)
    levels = check_int("levels", levels, lo=1)
    n_objects = check_int("n_objects", n_objects, lo=0)
    parts = check_int("parts_per_object", parts_per_object, lo=1)
    textures = check_int("textures_per_part", textures_per_part, lo=1)
    channels = check_int("channels", channels, lo=1)
    patch_size = 4 if patch_size is None else check_int("patch_size", patch_size, lo=1)
    check_real("noise", noise, lo=0)
    try:
        shares = np.asarray(code_shares, dtype=np.float64)
    except (TypeError, ValueError):
        shares = None
    if (
        shares is None
        or shares.shape != (3,)
        or not np.all(np.isfinite(shares))
        or np.any(shares < 0)
        or abs(shares.sum() - 1.0) > 1e-9
    ):
        raise not_allowed(
            "code_shares", code_shares, "three numbers >= 0 (object, part, texture) summing to 1"
        )
    if isinstance(seed, np.random.Generator):
        rng, seed_value = seed, -1
    else:
        seed_value = check_int("seed", seed, lo=0, note="or a numpy.random.Generator")
        rng = np.random.default_rng(seed_value)

    rows, cols = grid
    rects = _place_objects(rng, grid, n_objects, parts, textures)

    # texture/part/object maps on the grid; the background is texture 0, part 0, object 0
    texture_map = np.zeros(grid, dtype=np.int64)
    tex_part = [0]
    tex_object = [0]
    n_parts = 1
    for k, rect in enumerate(rects, start=1):
        for part_rect in _split(rect, parts):
            for top, left, h, w in _split(part_rect, textures):
                texture_map[top : top + h, left : left + w] = len(tex_part)
                tex_part.append(n_parts)
                tex_object.append(k)
            n_parts += 1
    tex_part = np.asarray(tex_part)
    tex_object = np.asarray(tex_object)
    n_textures = len(tex_part)

    tex = texture_map.ravel()
    labels = np.zeros((levels, rows * cols), dtype=np.int64)
    labels[0] = tex
    if levels > 1:
        labels[1] = tex_part[tex]
    if levels > 2:
        labels[2] = tex_object[tex]

    mix = (n_textures, tex_part, tex_object, n_parts, n_objects + 1)
    codes = _mixed_codes(rng, *mix, (dim,), shares)
    tokens = codes[tex] + noise * rng.standard_normal((rows * cols, dim))

    # each texture is a (channels, p, p) pattern, correlated like the codes
    patterns = _mixed_codes(rng, *mix, (channels, patch_size, patch_size), shares)
    p = patch_size
    blocks = patterns[texture_map]  # (rows, cols, channels, p, p)
    image = blocks.transpose(2, 0, 3, 1, 4).reshape(channels, rows * p, cols * p)
    image = image + noise * rng.standard_normal(image.shape)

    for a in (tokens, image, labels, codes):
        a.setflags(write=False)
    return Scene(
        tokens=tokens,
        image=image,
        labels=labels,
        grid=grid,
        patch_size=patch_size,
        objects=tuple(tuple(int(v) for v in r) for r in rects),
        codes=codes,
        noise=float(noise),
        seed=seed_value,
    )
