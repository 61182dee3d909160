"""Figures of analysis results: island maps, convergence curves, spectra, projections.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it
works under any backend (Agg included), leaves no global state behind and never opens a
window; save it with ``fig.savefig(path)``. Axis labels and titles come from the
variables' ``long_name`` and ``units`` attrs.
"""

from __future__ import annotations

import numpy as np

from glomsim.variables import check_dataset

from ._common import is_islands, time_positions
from ._heatmap import heatmaps
from ._maps import (
    MapColours,
    draw_map,
    island_params,
    level_positions,
    n_islands,
    named,
    wrap_title,
)
from ._maps import (
    axis_label as _label,
)
from .animate import animate
from .islands import islands as find_islands
from .islands import islands_of

__all__ = [
    "island_maps",
    "convergence_curves",
    "spectrum",
    "projection",
    "island_colours",
    "heatmaps",
    "animate",
]

#: Most panels in one row of :func:`island_maps` when ``times`` is not given.
DEFAULT_MAX_TIMES = 6


def island_colours(labels, grid=None, *, truth=None) -> np.ndarray:
    """RGB colours (..., 3) of island labels: islands that touch never share a colour.

    The scheme of every island figure (see :mod:`analysis._colours`): a palette of
    distinguishable colours without greys, the islands' adjacency graph coloured greedily
    (islands of most neighbours first, each taking the least used colour that none of its
    neighbours has) and, with ground truth, the background island in neutral grey and each
    island that matches a true label in that label's colour.

    Parameters
    ----------
    labels : array of int
        Island labels (N,) of columns on a grid of shape ``grid``, or a 2-D label map
        (then ``grid`` is its shape).
    grid : (rows, cols), optional
        The grid the columns fill, row by row; without it (and for 1-D labels) no
        adjacency is known and every island gets its own colour while the palette lasts.
    truth : array of int, optional
        True labels of the same columns (0 = background, negative = unknown).

    Examples
    --------
    >>> island_colours(np.array([0, 1, 20])).shape
    (3, 3)
    >>> rgb = island_colours(np.array([[0, 0, 1], [2, 2, 1]]))
    >>> bool((rgb[0, 0] != rgb[0, 2]).any() and (rgb[0, 0] != rgb[1, 0]).any())
    True
    """
    from . import _colours as col
    from ._common import canonical_labels

    labels = np.asarray(labels)
    shape = labels.shape
    if grid is None and labels.ndim == 2:
        grid = shape
    flat = canonical_labels(labels.reshape(-1))
    if grid is not None:
        rows, cols = (int(v) for v in grid)
        if rows * cols != flat.size:
            raise ValueError(
                f"island_colours: grid={tuple(grid)!r} has {rows * cols} columns, labels "
                f"{flat.size}"
            )
        yy, xx = np.divmod(np.arange(flat.size), cols)
        pairs = col.grid_pairs(yy, xx)
    else:
        pairs = np.zeros((0, 2), dtype=np.int64)
    tr = None if truth is None else np.asarray(truth).reshape(1, -1)
    colours = col.colour_series(flat[None], pairs, tr)[0]
    return col.to_rgb(flat, colours).reshape(shape + (3,))


def island_maps(
    ds_or_islands, times=None, *, levels=None, panel_size=2.0, name=None, **island_kwargs
):
    """Maps of the columns coloured by island: one row per level, one panel per step.

    Parameters
    ----------
    ds_or_islands : xarray.Dataset
        A result of :func:`analysis.islands`, or a simulation (islands are then computed
        with ``island_kwargs``).
    times : int or sequence of int, optional
        Positions along ``time`` (like ``isel``; -1 is the last step); default up to
        6 steps evenly spread from the first to the last.
    levels : sequence of int, optional
        Positions along ``level``; default all.
    panel_size : float
        Inches per panel side.
    name : str, optional
        The run's name (e.g. its file), put at the front of the title.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(levels) * (len(times) + 1)`` axes with ground truth (``label``), else
        ``len(levels) * len(times)``. A first column shows the ground truth (at the
        last panel's frame for a movie). Panel titles give the step, the island count
        and, with ground truth, the agreement (ARI) of the islands with it; the left
        column's y labels the level. Colours follow :func:`island_colours` and stay with
        an island across steps. Columns on a full grid are drawn as an image, other
        layouts as points at (x, y).

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(4, 4), steps=3)
    >>> fig = an.plot.island_maps(gs.simulate(cfg), times=[0, -1])
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure

    source = None if is_islands(ds_or_islands) else ds_or_islands
    isl = islands_of(ds_or_islands, island_kwargs, "island_maps")
    n_times = isl.sizes["time"]
    if times is None:
        k = min(n_times, DEFAULT_MAX_TIMES)
        tpos = np.unique(np.linspace(0, n_times - 1, k).round().astype(np.int64))
    else:
        tpos = time_positions(n_times, times, "island_maps")
    lpos = level_positions(levels, isl.sizes["level"], "island_maps")
    maps = MapColours(isl, source)
    with_truth = maps.truth is not None
    n_cols = len(tpos) + with_truth
    width = max(panel_size * n_cols + 0.6, 3.5)
    fig = Figure(figsize=(width, panel_size * len(lpos) + 0.9), layout="constrained")
    axes = fig.subplots(len(lpos), n_cols, squeeze=False)
    time_name = isl["time"].attrs.get("long_name", "step")
    for r, level in enumerate(lpos):
        if with_truth:
            ax = axes[r, 0]
            draw_map(ax, maps.truth_rgb(tpos[-1], level), maps.grid, maps.y, maps.x)
            ax.set_title(
                f"ground truth: {n_islands(maps.truth_count(tpos[-1], level), 'label')}",
                fontsize=8,
            )
        for c, t in enumerate(tpos):
            ax = axes[r, c + with_truth]
            draw_map(ax, maps.islands_rgb(t, level), maps.grid, maps.y, maps.x)
            step = int(isl["time"].values[t])
            title = f"{time_name} {step}: {n_islands(maps.count(t, level))}"
            if with_truth:
                title += f"\nARI {maps.ari(t, level):.2f}"
            ax.set_title(title, fontsize=8)
        axes[r, 0].set_ylabel(f"level {int(isl['level'].values[level])}")
    params = island_params(isl)
    title = isl["labels"].attrs.get("long_name", "island") + "s"
    title = f"{title} ({params})" if params else title
    if with_truth:
        title += "; ARI = agreement with the ground truth"
    fig.suptitle(wrap_title(named(name, title), width, 11), fontsize=11)
    return fig


def convergence_curves(conv_ds, *, name=None):
    """Residual against step, one line per level, on a log scale.

    Parameters
    ----------
    conv_ds : xarray.Dataset
        From :func:`analysis.convergence`: ``residual(time, level)``, and optionally
        ``settled_step(level)`` (drawn as a dotted vertical line where >= 0) and
        ``rate(level)`` (in the legend).
    name : str, optional
        The run's name (e.g. its file), put at the front of the title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its y label is the residual's ``long_name``, x label the step's; the
        legend names each level's line and explains the dotted settling-step markers.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(4, 4), steps=10)
    >>> fig = an.plot.convergence_curves(an.convergence(gs.simulate(cfg)))
    >>> fig.axes[0].get_yscale()
    'log'
    """
    import xarray as xr
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not isinstance(conv_ds, xr.Dataset) or "residual" not in conv_ds.data_vars:
        raise ValueError(
            "convergence_curves: conv_ds must be a Dataset with residual(time, level), "
            "from analysis.convergence"
        )
    res = conv_ds["residual"]
    extra = set(res.dims) - {"time", "level"}
    if extra:
        raise ValueError(
            f"convergence_curves: residual has extra dims {sorted(extra)}; select one "
            "value of each (e.g. conv_ds.isel(member=0)) first"
        )
    res = res.transpose("time", "level")
    steps = np.asarray(conv_ds["time"].values)
    values = np.asarray(res.values, dtype=np.float64)
    # a log axis cannot show zeros (exact consensus) or the NaN of the first step
    positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    any_settled = False
    for k, level in enumerate(conv_ds["level"].values):
        label = f"level {int(level)}"
        if "rate" in conv_ds and np.isfinite(conv_ds["rate"].values[k]):
            label += f" (rate {float(conv_ds['rate'].values[k]):.3g})"
        (line,) = ax.plot(steps, positive[:, k], label=label)
        if "settled_step" in conv_ds:
            settled = int(conv_ds["settled_step"].values[k])
            if settled >= 0:
                any_settled = True
                ax.axvline(settled, color=line.get_color(), linestyle=":", linewidth=1)
    if np.isfinite(positive).any():
        ax.set_yscale("log")
    ax.set_xlabel(_label(conv_ds["time"], "step"))
    ax.set_ylabel(_label(res, "residual"))
    ax.set_title(named(name, f"{res.attrs.get('long_name', 'residual')} per level"))
    handles, _ = ax.get_legend_handles_labels()
    if any_settled:
        # a legend entry only: not drawn on the axes
        handles.append(
            Line2D([], [], color="0.4", linestyle=":", linewidth=1,
                   label="settling step (level's colour):\nchange stays below tolerance")
        )  # fmt: skip
    ax.legend(handles=handles, fontsize=8)
    return fig


def _eigenvalues(stab_ds, prefix):
    if prefix in stab_ds.data_vars:
        values = np.asarray(stab_ds[prefix].values).astype(np.complex128)
        return values.ravel(), stab_ds[prefix]
    if f"{prefix}_real" in stab_ds.data_vars:
        re = np.asarray(stab_ds[f"{prefix}_real"].values, dtype=np.float64)
        im = (
            np.asarray(stab_ds[f"{prefix}_imag"].values, dtype=np.float64)
            if f"{prefix}_imag" in stab_ds.data_vars
            else np.zeros_like(re)
        )
        return (re + 1j * im).ravel(), stab_ds[f"{prefix}_real"]
    return None, None


def spectrum(stab_ds):
    """Eigenvalues of the step map's Jacobian in the complex plane, with the unit circle.

    Parameters
    ----------
    stab_ds : xarray.Dataset
        From :func:`analysis.stability`: ``eigenvalues(mode)`` (complex) or
        ``eigenvalues_real(mode)`` and ``eigenvalues_imag(mode)``; the transverse
        eigenvalues (neutral subspace factored out) are drawn too when present, and the
        spectral radius goes in the title. NaN padding is skipped.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with equal aspect; x "Re", y "Im".

    Examples
    --------
    >>> import xarray as xr
    >>> stab = xr.Dataset({"eigenvalues": ("mode", np.array([0.5 + 0.5j, -0.9, np.nan]))})
    >>> fig = spectrum(stab)
    >>> fig.axes[0].get_xlabel()
    'Re'
    """
    import xarray as xr
    from matplotlib.figure import Figure

    if not isinstance(stab_ds, xr.Dataset):
        raise TypeError(f"spectrum: stab_ds must be an xarray.Dataset, got {type(stab_ds)}")
    values, var = _eigenvalues(stab_ds, "eigenvalues")
    if values is None:
        raise ValueError(
            "spectrum: stab_ds has no eigenvalues(mode) (complex) nor eigenvalues_real/"
            "eigenvalues_imag; pass a Dataset from analysis.stability"
        )
    transverse, _ = _eigenvalues(stab_ds, "transverse_eigenvalues")

    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.subplots()
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.6", linewidth=1, label="unit circle")
    values = values[np.isfinite(values)]
    ax.scatter(values.real, values.imag, s=25, label="eigenvalues", zorder=3)
    if transverse is not None:
        transverse = transverse[np.isfinite(transverse)]
        ax.scatter(
            transverse.real,
            transverse.imag,
            s=60,
            facecolors="none",
            edgecolors="C3",
            label="transverse",
            zorder=2,
        )
    ax.axhline(0.0, color="0.85", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.85", linewidth=0.8, zorder=0)
    ax.set_aspect("equal")
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    name = var.attrs.get("long_name", "eigenvalue").split(" (")[0]
    title = f"{name}s of the step map's Jacobian"
    if "spectral_radius" in stab_ds.data_vars and stab_ds["spectral_radius"].size == 1:
        title += f"\nspectral radius {float(stab_ds['spectral_radius']):.4g}"
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def projection(ds, time=-1, level=0, islands=None, *, name=None, **island_kwargs):
    """The columns' embeddings at one step and level projected on their first two PCs.

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation with ``embedding(time, level, column, feature)``.
    time : int
        Position along ``time`` (like ``isel``); -1 the last recorded step.
    level : int
        Position along ``level``.
    islands : xarray.Dataset, optional
        From :func:`analysis.islands` (it must hold the same step); default computed
        with ``island_kwargs`` for that step only. Given the islands of every step, the
        colours are those of :func:`island_maps` and :func:`animate` at this step.
    name : str, optional
        The run's name (e.g. its file), put at the front of the title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; points coloured by island (:func:`island_colours`), axes labelled with
        the share of variance each principal component explains; with ground truth the
        title gives the islands' agreement (ARI) with it.

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(4, 4), steps=3)
    >>> fig = an.plot.projection(gs.simulate(cfg), level=1)
    >>> fig.axes[0].get_xlabel().startswith("PC1")
    True
    """
    from matplotlib.figure import Figure

    check_dataset(ds, ("embedding",), "projection")
    emb = ds["embedding"]
    t = int(time_positions(emb.sizes["time"], time, "projection")[0])
    n_levels = emb.sizes["level"]
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, np.integer))
        or not (-n_levels <= level < n_levels)
    ):
        raise ValueError(
            f"projection: level={level!r} must be a position in [{-n_levels}, {n_levels - 1}]"
        )
    one = emb.isel(time=t, level=level).transpose("column", "feature")
    x = np.asarray(one.values, dtype=np.float64)
    step = int(ds["time"].values[t])
    level_value = int(ds["level"].values[level])
    if islands is None:
        isl = find_islands(ds, time=[t], **island_kwargs)
    else:
        if island_kwargs:
            raise ValueError("projection: give islands= or island options, not both")
        if not is_islands(islands) or step not in islands["time"].values:
            raise ValueError(
                f"projection: islands must be a Dataset from analysis.islands holding step "
                f"{step} (time position {time})"
            )
        isl = islands
    maps = MapColours(isl, ds)
    t_isl = int(np.nonzero(isl["time"].values == step)[0][0])
    l_isl = int(np.nonzero(isl["level"].values == level_value)[0][0])

    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.concatenate([coords, np.zeros((coords.shape[0], 1))], axis=1)
    energy = s**2
    total = energy.sum()
    share = energy / total if total > 0 else np.zeros_like(energy)
    share = np.concatenate([share, np.zeros(2)])[:2]

    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(coords[:, 0], coords[:, 1], c=maps.islands_rgb(t_isl, l_isl), s=18)
    ax.set_xlabel(f"PC1 ({100 * share[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC2 ({100 * share[1]:.1f} % of variance)")
    what = emb.attrs.get("long_name", "embedding")
    title = f"{what}, level {level_value}, step {step}: {n_islands(maps.count(t_isl, l_isl))}"
    if maps.truth is not None:
        title += f", ARI\u00a0{maps.ari(t_isl, l_isl):.2f}"
    ax.set_title(wrap_title(named(name, title), 4.2, 12))
    return fig
