"""Animations of islands forming: one frame per recorded step, per level, beside the truth.

:func:`animate` writes a GIF (Pillow, through matplotlib's ``PillowWriter``) or, where
ffmpeg is installed, an MP4. Each row is a level: its ground truth (when the Dataset has
``label``) and its islands, coloured as in :func:`analysis.plot.island_maps` (the same
colours at the same step); a movie run (``input(frame, column, feature)`` and the
coordinate ``frame(time)``) also shows the input frame each step reads, beside level 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._common import is_islands, time_positions
from ._maps import (
    MapColours,
    draw_map,
    island_params,
    level_positions,
    n_islands,
    named,
    update_map,
    wrap_title,
)
from .islands import islands_of

__all__ = ["animate", "frame_size", "FORMATS"]

#: Suffixes :func:`animate` writes, and the matplotlib writer of each.
FORMATS = {".gif": "pillow", ".mp4": "ffmpeg"}
#: Inches around the panels: the row labels and margins (width), the titles (height).
_MARGIN = (0.5, 0.8)


def frame_size(panels: int, levels: int, panel_size: float, dpi: int) -> tuple[int, int]:
    """(width, height) in pixels of :func:`animate`'s frames: ``panel_size`` inches per
    panel plus margins, rounded up to even numbers (MP4 encoders need them).

    Examples
    --------
    >>> frame_size(2, 3, 2.0, 50)
    (226, 340)
    """
    w = math.ceil((panel_size * panels + _MARGIN[0]) * dpi / 2) * 2
    h = math.ceil((panel_size * levels + _MARGIN[1]) * dpi / 2) * 2
    return int(w), int(h)


def _input_rgb(inputs) -> np.ndarray:
    """Input frames (F, N, D) as colours (F, N, 3): their first three principal components
    over all frames, each scaled to [0.05, 0.95] over all frames (so colours mean the same
    in every frame)."""
    x = np.asarray(inputs, dtype=np.float64)
    f, n, d = x.shape
    flat = x.reshape(f * n, d)
    centred = flat - flat.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = centred @ vt[:3].T
    pcs = np.concatenate([pcs, np.zeros((f * n, 3 - pcs.shape[1]))], axis=1)
    lo, hi = pcs.min(axis=0), pcs.max(axis=0)
    scaled = (pcs - lo) / np.where(hi > lo, hi - lo, 1.0)
    return (0.05 + 0.9 * scaled).reshape(f, n, 3)


def _check_path(path) -> Path:
    from matplotlib import animation

    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise ValueError(f"animate: path={str(p)!r} must end in one of {sorted(FORMATS)}")
    if p.suffix.lower() == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise ValueError(f"animate: path={str(p)!r}: MP4 needs ffmpeg, not found; write .gif")
    if p.parent.exists() and not p.parent.is_dir():
        raise ValueError(f"animate: path={str(p)!r}: {p.parent} is a file, not a folder")
    return p


class _Layout:
    """The figure, its panels and the artists each frame updates."""

    def __init__(self, maps, lpos, level_values, movie, panel_size, dpi):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.maps, self.lpos, self.movie = maps, lpos, movie
        self.with_truth = maps.truth is not None
        kinds = (["input"] if movie is not None else []) + (["truth"] if self.with_truth else [])
        self.kinds = kinds + ["islands"]
        w, h = frame_size(len(self.kinds), len(lpos), panel_size, dpi)
        self.fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(len(lpos), len(self.kinds), squeeze=False)
        self.axes, self.artists = axes, {}
        for r, level in enumerate(lpos):
            for c, kind in enumerate(self.kinds):
                ax = axes[r, c]
                if kind == "input" and r > 0:
                    ax.set_axis_off()  # the input feeds level 0 only
                    continue
                rgb = self._rgb(kind, 0, level)
                self.artists[r, c] = draw_map(ax, rgb, maps.grid, maps.y, maps.x)
            axes[r, 0].set_ylabel(f"level {int(level_values[level])}")
            if movie is not None and r > 0:
                axes[r, 0].set_axis_on()
                axes[r, 0].set_frame_on(False)
                axes[r, 0].set_xticks([])
                axes[r, 0].set_yticks([])

    def _rgb(self, kind, t, level):
        if kind == "input":
            return self.movie[int(self.maps.frames[t])]
        if kind == "truth":
            return self.maps.truth_rgb(t, level)
        return self.maps.islands_rgb(t, level)

    def show(self, t, level_title, suptitle):
        maps = self.maps
        for r, level in enumerate(self.lpos):
            for c, kind in enumerate(self.kinds):
                if (r, c) not in self.artists:
                    continue
                update_map(self.artists[r, c], self._rgb(kind, t, level), maps.grid)
                self.axes[r, c].set_title(level_title(kind, t, level), fontsize=8)
        self.fig.suptitle(suptitle, fontsize=9)


def animate(
    ds,
    path,
    *,
    levels=None,
    times=None,
    fps: float = 4.0,
    dpi: int = 72,
    panel_size: float = 2.0,
    name=None,
    **island_kwargs,
):
    """Write an animation of the island maps over time: one frame per recorded step.

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation (islands are computed with ``island_kwargs``) or a result of
        :func:`analysis.islands` (then no input frames are shown).
    path : str or Path
        ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg); the folder must exist.
    levels : sequence of int, optional
        Positions along ``level``; default all.
    times : sequence of int, optional
        Positions along ``time`` to show, one frame each; default every recorded step.
    fps : float
        Frames per second.
    dpi, panel_size : int, float
        Pixels per inch, inches per panel side: see :func:`frame_size`.
    name : str, optional
        The run's name, at the front of every frame's title.

    Returns
    -------
    pathlib.Path
        ``path``. Each frame shows, per level (rows), the input frame of a movie run
        (beside level 0), the ground truth (with ``label``) and the islands, titled with
        the island count and the agreement (ARI) with the truth; the frame's title gives
        the step (and the input frame).

    Examples
    --------
    >>> import glomsim as gs, analysis as an, tempfile, os
    >>> cfg = gs.GlomConfig(levels=1, dim=4, grid=(4, 4), steps=4)
    >>> path = os.path.join(tempfile.mkdtemp(), "islands.gif")
    >>> an.plot.animate(gs.simulate(cfg), path).suffix
    '.gif'
    """
    from matplotlib import animation

    p = _check_path(path)
    for key, value, ok in (("fps", fps, 0 < fps <= 100), ("dpi", dpi, 10 <= dpi <= 600),
                           ("panel_size", panel_size, 0.2 <= panel_size <= 20)):  # fmt: skip
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and ok):
            raise ValueError(f"animate: {key}={value!r} is out of range")
    source = None if is_islands(ds) else ds
    isl = islands_of(ds, island_kwargs, "animate")
    tpos = time_positions(isl.sizes["time"], times, "animate")
    lpos = level_positions(levels, isl.sizes["level"], "animate")
    maps = MapColours(isl, source)
    movie = None
    if source is not None and "input" in source and "frame" in source["input"].dims:
        if maps.frames is not None:
            frames = source["input"].transpose("frame", "column", "feature").values
            movie = _input_rgb(frames)
    layout = _Layout(maps, lpos, isl["level"].values, movie, panel_size, dpi)
    steps = isl["time"].values
    params = island_params(isl)

    def level_title(kind, t, level):
        if kind == "input":
            return f"input frame {int(maps.frames[t])}"
        if kind == "truth":
            return f"ground truth: {n_islands(maps.truth_count(t, level), 'label')}"
        title = n_islands(maps.count(t, level))
        return title + (f", ARI\u00a0{maps.ari(t, level):.2f}" if layout.with_truth else "")

    def suptitle(t):
        text = f"step {int(steps[t])}"
        if maps.frames is not None:
            text += f" (input frame {int(maps.frames[t])})"
        text = named(name, text) + (f"\nislands: {params}" if params else "")
        return wrap_title(text, layout.fig.get_figwidth(), 9)

    # lay out once, with the longest titles, then keep the panels still
    layout.show(int(tpos[-1]), level_title, suptitle(int(tpos[-1])))
    layout.fig.draw_without_rendering()
    layout.fig.set_layout_engine("none")
    writer = animation.writers[FORMATS[p.suffix.lower()]](fps=fps)
    with writer.saving(layout.fig, str(p), dpi):
        for t in tpos:
            layout.show(int(t), level_title, suptitle(int(t)))
            writer.grab_frame()
    return p
