"""Heatmaps of a sweep's measures: one shared, labelled colour bar per measure."""

from __future__ import annotations

import numpy as np

from ._maps import axis_label as _label
from ._maps import named, wrap_title

__all__ = ["heatmaps"]

#: Inches per panel side, and the points of the values written in the cells.
PANEL_SIZE = 3.0
FONT_SIZE = 9


def _axis_label(ds, dim: str) -> str:
    if dim in ds.coords and "long_name" in ds[dim].attrs:
        return _label(ds[dim], dim)
    return dim.replace("_", " ")


def _tick(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating, int, np.integer)) else str(v)


def _annotate_cells(ax, im, grid, fmt):
    """Each cell's value, in black on light cells and white on dark ones."""
    from ._colours import lightness

    for (i, j), v in np.ndenumerate(grid):
        if not np.isfinite(v):
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=FONT_SIZE, color="k")
            continue
        light = lightness(np.asarray(im.cmap(im.norm(v)))[:3]) > 55.0
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=FONT_SIZE,
                color="k" if light else "w")  # fmt: skip


def heatmaps(ds, var, x, y, *, panels="level", titles=None, name=None, fmt=None, vmin=None,
             vmax=None, log=False, cmap="viridis"):  # fmt: skip
    """A measure over two sweep axes: one panel per ``panels`` value, one shared colour bar.

    Dimensions other than ``x``, ``y`` and ``panels`` (seeds, say) are averaged over, and
    the title says so. Every panel uses the same colour scale, so a colour means the same
    value everywhere; the colour bar is labelled with the measure's ``long_name [units]``
    and each cell carries its value, in black or white by the cell's lightness.

    Parameters
    ----------
    ds : xarray.Dataset
        A sweep (``glomsim.sweep.open_sweep``) holding ``var`` with dims ``x`` and ``y``.
    var, x, y : str
        The measure and the sweep axes along the panels' x and y.
    panels : str or None
        The dimension with one panel per value (default ``level``; None for one panel).
    titles : sequence of str, optional
        One title per panel (default "level 0", "level 1", ...).
    name : str, optional
        The sweep's name, at the front of the title (default the ``sweep_name`` attr).
    fmt : str, optional
        Format of the cell values (default ``.2f``, or ``.0f`` for integer measures).
    vmin, vmax : float, optional
        The colour scale's ends (default the data's range over all panels).
    log : bool
        A logarithmic colour scale (for counts spanning orders of magnitude).
    cmap : str
        A matplotlib colour map.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel and one colour bar axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"ari": (("level", "a", "b"), np.random.default_rng(0).random((2, 3, 2)),
    ...                          {"long_name": "ARI", "units": "1"})},
    ...                 coords={"a": [0.0, 1.0, 2.0], "b": [1.0, 4.0]})
    >>> fig = heatmaps(ds, "ari", x="a", y="b")
    >>> len(fig.axes)  # two panels and one colour bar
    3
    """
    import xarray as xr
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    if not isinstance(ds, xr.Dataset) or var not in ds.data_vars:
        raise ValueError(f"heatmaps: var={var!r} is not a variable of the Dataset")
    da = ds[var]
    keep = [d for d in (panels, y, x) if d is not None]
    for d in keep:
        if d not in da.dims:
            raise ValueError(f"heatmaps: {var} has no dimension {d!r}; it has {list(da.dims)}")
    averaged = [d for d in da.dims if d not in keep]
    mean = da.mean(averaged) if averaged else da
    values = np.asarray(mean.transpose(*keep).values, dtype=np.float64)
    if panels is None:
        values = values[None]
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if log:
        positive = finite[finite > 0]
        lo = vmin if vmin is not None else (float(positive.min()) if positive.size else 1.0)
        norm = LogNorm(lo, hi if hi > lo else lo * 10.0)
    else:
        norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    if fmt is None:
        fmt = ".0f" if np.issubdtype(da.dtype, np.integer) or var.endswith("count") else ".2f"

    n_panels = values.shape[0]
    if titles is not None and len(titles) != n_panels:
        raise ValueError(f"heatmaps: titles={titles!r} must give {n_panels} titles, one a panel")
    width = PANEL_SIZE * n_panels + 1.2
    fig = Figure(figsize=(width, PANEL_SIZE + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_panels, sharey=True, squeeze=False)[0])
    for k, ax in enumerate(axes):
        im = ax.imshow(values[k], origin="lower", aspect="auto", cmap=cmap, norm=norm)
        ax.set_xticks(range(ds.sizes[x]), [_tick(v) for v in ds[x].values])
        ax.set_yticks(range(ds.sizes[y]), [_tick(v) for v in ds[y].values])
        ax.set_xlabel(_axis_label(ds, x))
        if k == 0:
            ax.set_ylabel(_axis_label(ds, y))
        if titles is not None:
            ax.set_title(titles[k], fontsize=10)
        elif panels is not None:
            ax.set_title(f"{panels} {_tick(ds[panels].values[k])}", fontsize=10)
        _annotate_cells(ax, im, values[k], fmt)
    bar = fig.colorbar(im, ax=list(axes), shrink=0.9)
    bar.set_label(_label(da, var))
    title = da.attrs.get("long_name", var)
    if averaged:
        title += ", mean over " + ", ".join(f"{ds.sizes[d]} {d}s" for d in averaged)
    name = name if name is not None else ds.attrs.get("sweep_name")
    fig.suptitle(wrap_title(named(name, title), width, 11), fontsize=11)
    return fig
