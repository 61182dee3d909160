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
from .islands import islands as find_islands
from .islands import islands_of

__all__ = ["island_maps", "convergence_curves", "spectrum", "projection", "island_colours"]

#: Most panels in one row of :func:`island_maps` when ``times`` is not given.
DEFAULT_MAX_TIMES = 6


def _label(da, fallback: str) -> str:
    """Axis label "long_name [units]" from attrs; units "1" (dimensionless) left out."""
    name = da.attrs.get("long_name", fallback)
    units = da.attrs.get("units")
    return f"{name} [{units}]" if units not in (None, "", "1") else str(name)


def island_colours(labels) -> np.ndarray:
    """RGB colours (..., 3) of island labels: tab20, cycled, so neighbours rarely clash.

    Examples
    --------
    >>> island_colours(np.array([0, 1, 20])).shape
    (3, 3)
    """
    from matplotlib import colormaps

    palette = np.asarray(colormaps["tab20"].colors)
    # even entries first: tab20 pairs a dark and a light shade of each hue
    palette = np.concatenate([palette[0::2], palette[1::2]])
    return palette[np.asarray(labels) % len(palette)]


def _grid_shape(y, x):
    """(rows, cols, row index, col index) if the positions fill an integer grid, else None."""
    if not (np.all(y == np.round(y)) and np.all(x == np.round(x))):
        return None
    ys, yi = np.unique(y, return_inverse=True)
    xs, xi = np.unique(x, return_inverse=True)
    if len(ys) * len(xs) != len(y) or len(np.unique(yi * len(xs) + xi)) != len(y):
        return None
    return len(ys), len(xs), yi.reshape(-1), xi.reshape(-1)


def island_maps(ds_or_islands, times=None, *, levels=None, panel_size=2.0, **island_kwargs):
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

    Returns
    -------
    matplotlib.figure.Figure
        ``len(levels) * len(times)`` axes; panel titles give the step and island count,
        the left column's y labels the level. Columns on a full grid are drawn as an
        image, other layouts as points at (x, y).

    Examples
    --------
    >>> import glomsim as gs, analysis as an
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(4, 4), steps=3)
    >>> fig = an.plot.island_maps(gs.simulate(cfg), times=[0, -1])
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure

    isl = islands_of(ds_or_islands, island_kwargs, "island_maps")
    n_times = isl.sizes["time"]
    if times is None:
        k = min(n_times, DEFAULT_MAX_TIMES)
        tpos = np.unique(np.linspace(0, n_times - 1, k).round().astype(np.int64))
    else:
        tpos = time_positions(n_times, times, "island_maps")
    lpos = np.arange(isl.sizes["level"]) if levels is None else np.atleast_1d(levels)
    if lpos.dtype.kind not in "iu" or np.any(lpos >= isl.sizes["level"]):
        raise ValueError(
            f"island_maps: levels={levels!r} must be positions in [0, {isl.sizes['level'] - 1}]"
        )
    labels = isl["labels"].transpose("time", "level", "column").values
    counts = isl["count"].transpose("time", "level").values
    y, x = np.asarray(isl["y"].values, float), np.asarray(isl["x"].values, float)
    grid = _grid_shape(y, x)

    fig = Figure(
        figsize=(panel_size * len(tpos) + 0.6, panel_size * len(lpos) + 0.6), layout="constrained"
    )
    axes = fig.subplots(len(lpos), len(tpos), squeeze=False)
    time_name = isl["time"].attrs.get("long_name", "step")
    for r, level in enumerate(lpos):
        for c, t in enumerate(tpos):
            ax = axes[r, c]
            colours = island_colours(labels[t, level])
            if grid is not None:
                rows, cols, yi, xi = grid
                img = np.zeros((rows, cols, 3))
                img[yi, xi] = colours
                ax.imshow(img, interpolation="nearest", origin="upper")
            else:
                ax.scatter(x, y, c=colours, s=12)
                ax.invert_yaxis()
                ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            step = int(isl["time"].values[t])
            ax.set_title(f"{time_name} {step}: {int(counts[t, level])} islands", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"level {int(isl['level'].values[level])}")
    params = ", ".join(
        f"{k}={isl.attrs[f'island_{k}']}"
        for k in ("threshold", "metric", "connectivity")
        if f"island_{k}" in isl.attrs
    )
    title = isl["labels"].attrs.get("long_name", "island") + "s"
    fig.suptitle(f"{title} ({params})" if params else title)
    return fig


def convergence_curves(conv_ds):
    """Residual against step, one line per level, on a log scale.

    Parameters
    ----------
    conv_ds : xarray.Dataset
        From :func:`analysis.convergence`: ``residual(time, level)``, and optionally
        ``settled_step(level)`` (drawn as a dotted vertical line where >= 0) and
        ``rate(level)`` (in the legend).

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its y label is the residual's ``long_name``, x label the step's.

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
    for k, level in enumerate(conv_ds["level"].values):
        label = f"level {int(level)}"
        if "rate" in conv_ds and np.isfinite(conv_ds["rate"].values[k]):
            label += f" (rate {float(conv_ds['rate'].values[k]):.3g})"
        (line,) = ax.plot(steps, positive[:, k], label=label)
        if "settled_step" in conv_ds:
            settled = int(conv_ds["settled_step"].values[k])
            if settled >= 0:
                ax.axvline(settled, color=line.get_color(), linestyle=":", linewidth=1)
    if np.isfinite(positive).any():
        ax.set_yscale("log")
    ax.set_xlabel(_label(conv_ds["time"], "step"))
    ax.set_ylabel(_label(res, "residual"))
    ax.set_title(f"{res.attrs.get('long_name', 'residual')} per level")
    ax.legend(fontsize=8)
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


def projection(ds, time=-1, level=0, islands=None, **island_kwargs):
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
        with ``island_kwargs`` for that step only.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; points coloured by island, axes labelled with the share of variance
        each principal component explains.

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
    labels = isl["labels"].sel(time=step, level=level_value).values

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
    ax.scatter(coords[:, 0], coords[:, 1], c=island_colours(labels), s=18)
    ax.set_xlabel(f"PC1 ({100 * share[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC2 ({100 * share[1]:.1f} % of variance)")
    name = emb.attrs.get("long_name", "embedding")
    n_islands = len(np.unique(labels))
    ax.set_title(f"{name}, level {level_value}, step {step}: {n_islands} islands")
    return fig
