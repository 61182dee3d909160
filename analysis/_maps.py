"""What the island figures share: colours of a whole run, ground truth per step, drawing.

:class:`MapColours` colours every recorded step of an islands Dataset at once (so an
island map, an animation frame and the projection of the same step agree), finds the
ground truth each step is judged against (``label(level, column)``, or for a movie
``label(frame, level, column)`` with the coordinate ``frame(time)``) and the agreement
(ARI) of each step's islands with it.
"""

from __future__ import annotations

import textwrap

import numpy as np

from . import _colours as col
from .hierarchy import adjusted_rand_index

__all__ = [
    "MapColours",
    "grid_shape",
    "draw_map",
    "update_map",
    "n_islands",
    "wrap_title",
    "named",
    "axis_label",
    "level_positions",
    "island_params",
]


def axis_label(da, fallback: str) -> str:
    """Axis label "long_name [units]" from attrs; units "1" (dimensionless) left out."""
    name = da.attrs.get("long_name", fallback)
    units = da.attrs.get("units")
    return f"{name} [{units}]" if units not in (None, "", "1") else str(name)


def named(name, title: str) -> str:
    """``title`` with the run's or sweep's ``name`` in front, when there is one."""
    return f"{name}: {title}" if name else title


def level_positions(levels, n_levels: int, func: str) -> np.ndarray:
    """Positions along ``level`` picked by ``levels`` (None = all)."""
    lpos = np.arange(n_levels) if levels is None else np.atleast_1d(levels)
    if lpos.dtype.kind not in "iu" or np.any(lpos >= n_levels) or np.any(lpos < 0):
        raise ValueError(f"{func}: levels={levels!r} must be positions in [0, {n_levels - 1}]")
    return lpos


def island_params(isl) -> str:
    """ "threshold=0.99, metric=cosine, connectivity=spatial" from an islands Dataset."""
    return ", ".join(
        f"{k}={isl.attrs[f'island_{k}']}"
        for k in ("threshold", "metric", "connectivity")
        if f"island_{k}" in isl.attrs
    )


def n_islands(k: int, noun: str = "island") -> str:
    """ "1 island", "3 islands"."""
    return f"{int(k)} {noun}" + ("" if int(k) == 1 else "s")


def wrap_title(text: str, width_inches: float, fontsize: float = 12.0) -> str:
    """``text`` wrapped to lines that fit ``width_inches`` at ``fontsize`` points."""
    chars = max(20, int(width_inches * 72 / (0.62 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def grid_shape(y, x):
    """(rows, cols, row index, col index) if the positions fill an integer grid, else None."""
    y, x = np.asarray(y, float), np.asarray(x, float)
    if not (np.all(y == np.round(y)) and np.all(x == np.round(x))):
        return None
    ys, yi = np.unique(y, return_inverse=True)
    xs, xi = np.unique(x, return_inverse=True)
    if len(ys) * len(xs) != len(y) or len(np.unique(yi * len(xs) + xi)) != len(y):
        return None
    return len(ys), len(xs), yi.reshape(-1), xi.reshape(-1)


def draw_map(ax, rgb, grid, y, x):
    """Draw columns' colours ``rgb`` (N, 3): an image on a full grid, else points."""
    ax.set_xticks([])
    ax.set_yticks([])
    if grid is not None:
        rows, cols, yi, xi = grid
        img = np.ones((rows, cols, 3))
        img[yi, xi] = rgb
        return ax.imshow(img, interpolation="nearest", origin="upper")
    artist = ax.scatter(x, y, c=rgb, s=12)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    return artist


def update_map(artist, rgb, grid):
    """Give a :func:`draw_map` artist new colours."""
    if grid is not None:
        rows, cols, yi, xi = grid
        img = np.ones((rows, cols, 3))
        img[yi, xi] = rgb
        artist.set_data(img)
    else:
        artist.set_facecolors(rgb)


def _frame_of_time(isl, ds, n_times):
    """Frame index (into ``label``'s frame axis) of each recorded step, or None."""
    for source in (isl, ds):
        if source is not None and "frame" in source.coords and "time" in source["frame"].dims:
            frame = source["frame"]
            if source is ds and ds is not isl:
                frame = frame.sel(time=isl["time"].values)
            return np.asarray(frame.values).reshape(n_times)
    return None


def truth_of(isl, ds=None):
    """Ground truth (T, L, N) int that each recorded step of ``isl`` is judged against, or
    None without ``label``."""
    source = isl if "label" in isl.variables else ds
    if source is None or "label" not in source.variables:
        return None
    label = source["label"]
    n_times, n_levels, n = isl["labels"].shape
    if "frame" in label.dims:
        frames = _frame_of_time(isl, ds, n_times)
        label = label.transpose("frame", "level", "column")
        if frames is None:
            frames = np.zeros(n_times, dtype=np.int64)
        if "frame" in label.coords:
            per_time = label.sel(frame=frames)
        else:
            per_time = label.isel(frame=frames)
        truth = np.asarray(per_time.sel(level=isl["level"].values).values)
    else:
        truth = label.transpose("level", "column").sel(level=isl["level"].values).values
        truth = np.broadcast_to(np.asarray(truth), (n_times, n_levels, n))
    return np.asarray(truth, dtype=np.int64)


class MapColours:
    """Colours of every recorded step and level of an islands Dataset, and its truth.

    Parameters
    ----------
    isl : xarray.Dataset
        From :func:`analysis.islands`.
    ds : xarray.Dataset, optional
        The simulation, where the ground truth (``label``) or ``frame(time)`` is read
        when ``isl`` lacks them.
    """

    def __init__(self, isl, ds=None):
        self.labels = np.asarray(isl["labels"].transpose("time", "level", "column").values)
        self.y = np.asarray(isl["y"].values, float)
        self.x = np.asarray(isl["x"].values, float)
        self.grid = grid_shape(self.y, self.x)
        self.pairs = col.grid_pairs(self.y, self.x)
        self.truth = truth_of(isl, ds)
        self.frames = _frame_of_time(isl, ds, self.labels.shape[0])
        n_levels = self.labels.shape[1]
        self.truth_colours = [None] * n_levels
        self._colours = [None] * n_levels

    def _level(self, level):
        if self._colours[level] is None:
            truth = None if self.truth is None else self.truth[:, level]
            if truth is not None:
                self.truth_colours[level] = col.colour_truth(np.unique(truth, axis=0), self.pairs)
            self._colours[level] = col.colour_series(
                self.labels[:, level], self.pairs, truth, self.truth_colours[level]
            )
        return self._colours[level]

    def islands_rgb(self, t: int, level: int) -> np.ndarray:
        """RGB (N, 3) of the columns at time position ``t`` and level position ``level``."""
        return col.to_rgb(self.labels[t, level], self._level(level)[t])

    def truth_rgb(self, t: int, level: int) -> np.ndarray:
        """RGB (N, 3) of the true labels step ``t`` is judged against."""
        self._level(level)
        return col.truth_rgb(self.truth[t, level], self.truth_colours[level])

    def count(self, t: int, level: int) -> int:
        return int(self.labels[t, level].max()) + 1

    def truth_count(self, t: int, level: int) -> int:
        tr = self.truth[t, level]
        return len(np.unique(tr[tr >= 0]))

    def ari(self, t: int, level: int) -> float:
        """ARI of the islands with the truth (known columns only); NaN without truth."""
        if self.truth is None:
            return float("nan")
        tr = self.truth[t, level]
        known = tr >= 0
        if not known.any():
            return float("nan")
        return float(adjusted_rand_index(self.labels[t, level][known], tr[known]))
