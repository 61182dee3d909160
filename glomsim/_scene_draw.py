"""Drawing synthetic part-whole scenes: placement, texture layout, codes, labels, images.

Shared by :func:`glomsim.scenes.make_scene` and :func:`glomsim.scenes.make_movie`, so that a
movie's first frame is exactly the scene (the same random draws in the same order).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._validate import check_int, check_real, is_int, not_allowed

#: Default variance shares of a texture code: (its object's, its part's, its own).
DEFAULT_CODE_SHARES = (0.4, 0.3, 0.3)

# Placement: spots tried per object, whole-scene restarts per size range, the fraction of
# the grid all objects cover together, and the range of a side around its typical length.
_TRIES = 100
_RESTARTS = 10
_OBJECT_AREA = 0.5
_SIDE_RANGE = (0.7, 1.3)


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


class _SceneArgs(NamedTuple):
    grid: tuple[int, int]
    dim: int
    levels: int
    n_objects: int
    parts: int
    textures: int
    noise: float
    channels: int
    patch_size: int
    shares: np.ndarray


def _check_scene(
    grid, dim, levels, n_objects, parts, textures, noise, channels, patch_size, code_shares
) -> _SceneArgs:
    """make_scene's arguments checked (one line each) and normalised."""
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or not all(is_int(g) and g >= 1 for g in grid)
    ):
        raise not_allowed("grid", grid, "(rows, cols) with integers >= 1")
    try:
        shares = np.asarray(code_shares, dtype=np.float64)
    except (TypeError, ValueError):
        shares = None
    args = _SceneArgs(
        grid=(int(grid[0]), int(grid[1])),
        dim=check_int("dim", dim, lo=1),
        levels=check_int("levels", levels, lo=1),
        n_objects=check_int("n_objects", n_objects, lo=0),
        parts=check_int("parts_per_object", parts, lo=1),
        textures=check_int("textures_per_part", textures, lo=1),
        channels=check_int("channels", channels, lo=1),
        patch_size=4 if patch_size is None else check_int("patch_size", patch_size, lo=1),
        noise=check_real("noise", noise, lo=0),
        shares=shares,
    )
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
    return args


def _rng_of(seed):
    """(generator, seed recorded in the result: -1 for a Generator)."""
    if isinstance(seed, np.random.Generator):
        return seed, -1
    value = check_int("seed", seed, lo=0, note="or a numpy.random.Generator")
    return np.random.default_rng(value), value


class _Draw(NamedTuple):
    rects: list
    texture_map: np.ndarray
    tex_part: np.ndarray
    tex_object: np.ndarray
    codes: np.ndarray
    token_noise: np.ndarray
    patterns: np.ndarray
    image_noise: np.ndarray


def _draw(rng, a: _SceneArgs) -> _Draw:
    """Everything random in a scene, drawn from ``rng`` in one fixed order (placement,
    codes, token noise, patterns, image noise), so a movie's first frame is the scene."""
    rows, cols = a.grid
    rects = _place_objects(rng, a.grid, a.n_objects, a.parts, a.textures)

    # texture/part/object maps on the grid; the background is texture 0, part 0, object 0
    texture_map = np.zeros(a.grid, dtype=np.int64)
    tex_part = [0]
    tex_object = [0]
    n_parts = 1
    for k, rect in enumerate(rects, start=1):
        for part_rect in _split(rect, a.parts):
            for top, left, h, w in _split(part_rect, a.textures):
                texture_map[top : top + h, left : left + w] = len(tex_part)
                tex_part.append(n_parts)
                tex_object.append(k)
            n_parts += 1
    tex_part = np.asarray(tex_part)
    tex_object = np.asarray(tex_object)

    mix = (len(tex_part), tex_part, tex_object, n_parts, a.n_objects + 1)
    codes = _mixed_codes(rng, *mix, (a.dim,), a.shares)
    token_noise = rng.standard_normal((rows * cols, a.dim))
    # each texture is a (channels, p, p) pattern, correlated like the codes
    p = a.patch_size
    patterns = _mixed_codes(rng, *mix, (a.channels, p, p), a.shares)
    image_noise = rng.standard_normal((a.channels, rows * p, cols * p))
    return _Draw(rects, texture_map, tex_part, tex_object, codes, token_noise, patterns,
                 image_noise)  # fmt: skip


def _labels_of(tex, tex_part, tex_object, levels):
    """(levels, columns) labels of a flat texture map: texture, part, object, scene (0)."""
    labels = np.zeros((levels, tex.size), dtype=np.int64)
    labels[0] = tex
    if levels > 1:
        labels[1] = tex_part[tex]
    if levels > 2:
        labels[2] = tex_object[tex]
    return labels


def _image_of(patterns, texture_map):
    """(channels, rows * p, cols * p) image: each column's texture pattern as its patch."""
    rows, cols = texture_map.shape
    channels, p = patterns.shape[1], patterns.shape[2]
    blocks = patterns[texture_map]  # (rows, cols, channels, p, p)
    return blocks.transpose(2, 0, 3, 1, 4).reshape(channels, rows * p, cols * p)
