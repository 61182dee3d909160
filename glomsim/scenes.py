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

:func:`make_movie` makes frames of such a scene whose objects translate (and may appear,
disappear and occlude one another), with labels per frame (``Movie.labels``, shape
(frames, levels, columns)); its first frame is the scene ``make_scene`` makes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._movie import Movie, make_movie
from ._scene_draw import DEFAULT_CODE_SHARES, _check_scene, _draw, _image_of, _labels_of, _rng_of
from .neighbours import grid_positions

__all__ = ["Scene", "make_scene", "Movie", "make_movie", "LEVEL_NAMES"]

# documented here, where users import them from (the code is in glomsim/_movie.py)
Movie.__module__ = make_movie.__module__ = __name__

#: What the ground-truth label of each level names; levels from 3 up are the whole scene.
LEVEL_NAMES = ("texture", "part", "object", "scene")


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
    a = _check_scene(
        grid, dim, levels, n_objects, parts_per_object, textures_per_part, noise, channels,
        patch_size, code_shares,
    )  # fmt: skip
    rng, seed_value = _rng_of(seed)
    d = _draw(rng, a)
    tokens = d.codes[d.texture_map.ravel()] + a.noise * d.token_noise
    image = _image_of(d.patterns, d.texture_map) + a.noise * d.image_noise
    labels = _labels_of(d.texture_map.ravel(), d.tex_part, d.tex_object, a.levels)
    codes = d.codes
    grid, patch_size, rects = a.grid, a.patch_size, d.rects
    for arr in (tokens, image, labels, codes):
        arr.setflags(write=False)
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
