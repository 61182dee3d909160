"""Dataset construction from a run's arrays, and Zarr/netCDF I/O.

Dims and attrs come from the one variable registry, :mod:`glomsim.variables`, so datasets
label themselves and plots read their labels.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ._validate import check_bool, not_allowed
from .variables import VARIABLES, attrs

__all__ = ["create_dataset", "save", "open_dataset", "load_run"]

_SKELETONS: dict = {}
_SKELETONS_LOCK = threading.Lock()


def _skeleton(cfg, coord_key: tuple, make_coords, data_vars: dict):
    """A Dataset with these coordinates and these variables' dims, attrs and values, filled
    in (:func:`_filled`) from an empty one (its variables broadcast zeros, which take no
    memory) built once per config and layout: building the coordinates and their indexes
    is most of the cost of a new Dataset. Results share the read-only coordinate values and
    indexes; each has its own attrs.

    Every variable goes in as an ``xarray.Variable`` made with ``fastpath`` (the values
    are numpy arrays already), and dimension coordinates as pandas indexes: given plain
    arrays, xarray asks whether each is a dask array, which imports dask and dask.array,
    ~0.25 s of a new process's first run.

    ``coord_key`` holds everything the coordinates depend on besides the config (the
    recorded steps, member and summary-step counts), so ``make_coords()`` builds them only
    when the skeleton is new."""
    import xarray as xr

    layout = tuple((k, v[0], v[1].shape, v[1].dtype.str) for k, v in data_vars.items())
    key = (cfg, coord_key, layout)
    with _SKELETONS_LOCK:
        hit = _SKELETONS.get(key)
    if hit is None:
        import pandas as pd

        coord_vars = {}
        for name, (dims, values, coord_attrs) in make_coords().items():
            values.flags.writeable = False
            # a dimension's coordinate as a pandas index already: casting an array to one
            # asks dask (imported for it) whether the array is a dask collection
            data = pd.Index(values, copy=False) if dims in (name, (name,)) else values
            coord_vars[name] = xr.Variable(dims, data, coord_attrs, fastpath=True)
        empty = {
            k: xr.Variable(
                dims, np.broadcast_to(np.zeros((), v.dtype), v.shape), var_attrs, fastpath=True
            )
            for k, (dims, v, var_attrs) in data_vars.items()
        }
        hit = xr.Dataset(empty, coords=coord_vars)
        with _SKELETONS_LOCK:
            while len(_SKELETONS) >= 16:
                _SKELETONS.pop(next(iter(_SKELETONS)))
            _SKELETONS[key] = hit
    return _filled(hit, data_vars)


def _filled(skeleton, data_vars):
    """``skeleton`` with the values of ``data_vars``, through the public
    ``Dataset.copy(deep=False, data=...)``: the copy shares the coordinates and their
    indexes, and has its own attrs (a shallow copy of each variable's)."""
    import xarray as xr

    data = {k: xr.Variable(dims, v, fastpath=True) for k, (dims, v, _) in data_vars.items()}
    return skeleton.copy(deep=False, data=data)


#: For the coordinator: entries for glomsim.variables (frames and continued runs); the
#: registry's own entries win once they exist.
def create_dataset(
    cfg, weights, embedding, times, inputs, *, labels=None, extra_attrs=None, summaries=None,
    frame=None, delay_history=None, summaries_only=None,
):  # fmt: skip
    """The Dataset of a run (glomsim's data model) from plain arrays.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights or sequence of GlomWeights
        The run's weights (one per member for an ensemble); their hashes go in the attrs.
    embedding : array (time, level, column, feature), or (member, time, ...)
    times : sequence of int
        The recorded steps.
    inputs : array (column, feature), or (member, column, feature)
        With ``frame``: (frame, column, feature), or (member, frame, column, feature).
    labels : array (level, column) or (member, level, column), optional
        Ground-truth labels of a scene; with ``frame``, a movie's (frame, level,
        column), or (member, frame, level, column).
    extra_attrs : dict, optional
        More dataset attrs.
    summaries : dict, optional
        Per-step summaries (``change``, and ``rms`` for a summaries-only run: registered
        variables on the ``step`` dimension) as float64 arrays (step, level), or
        (member, step, level) for an ensemble, with one row per step of the run.
    frame : array (time,) of int, optional
        A run with frames: the frame each recorded step read (the coordinate
        ``frame(time)``).
    delay_history : array (lag, level, column, feature), or (member, lag, ...), optional
        The states 1 .. d-1 steps before the last (``delay_history``).
    summaries_only : bool, optional
        Whether only the first and last states were kept (``attrs["summaries_only"]``);
        default: whether ``summaries`` holds ``rms``.

    Returns
    -------
    xarray.Dataset
    """
    L, N, D = cfg.levels, cfg.n_columns, cfg.dim
    member = embedding.ndim == 5  # (member, time, level, column, feature): an ensemble
    lead = ("member",) if member else ()
    times = tuple(int(t) for t in times)
    n_members = embedding.shape[0] if member else None
    n_steps = next(iter(summaries.values())).shape[len(lead)] if summaries else None
    frames = None if frame is None else tuple(int(f) for f in frame)
    lags = 0 if delay_history is None else delay_history.shape[len(lead)]
    first_step = times[0] if times else 0

    def coord(name, values):
        # attrs go in with the values: setting them afterwards through ds[c] cost ~0.2 ms
        # a call, a tenth of a 10-step run of a small grid
        return (VARIABLES[name].dims, values, attrs(name, description=False))

    def make_coords():
        pos = cfg.position_array()
        coords = {
            "time": coord("time", np.asarray(times, dtype=np.int64)),
            "level": coord("level", np.arange(L, dtype=np.int64)),
            "column": coord("column", np.arange(N, dtype=np.int64)),
            "feature": coord("feature", np.arange(D, dtype=np.int64)),
            "y": coord("y", pos[:, 0].copy()),
            "x": coord("x", pos[:, 1].copy()),
        }
        if member:
            coords["member"] = coord("member", np.arange(n_members, dtype=np.int64))
        if summaries:
            steps = np.arange(first_step, first_step + n_steps, dtype=np.int64)
            coords["step"] = coord("step", steps)
        if frames is not None:
            coords["frame"] = coord("frame", np.asarray(frames, dtype=np.int64))
        if lags:
            coords["lag"] = coord("lag", np.arange(1, lags + 1, dtype=np.int64))
        return coords

    def var(name, values, dims=None):
        dims = lead + VARIABLES[name].dims if dims is None else lead + dims
        return (dims, values, attrs(name))

    framed = ("frame",) if frames is not None else ()
    data_vars = {
        "embedding": var("embedding", embedding),
        "input": var("input", np.asarray(inputs), framed + VARIABLES["input"].dims),
    }
    if labels is not None:
        data_vars["label"] = var("label", np.asarray(labels), framed + VARIABLES["label"].dims)
    for name, values in (summaries or {}).items():
        data_vars[name] = var(name, values)
    if lags:
        data_vars["delay_history"] = var("delay_history", delay_history)
    key = (times, n_members, n_steps, frames, lags)
    ds = _skeleton(cfg, key, make_coords, data_vars)
    if summaries_only is None:
        summaries_only = "rms" in (summaries or {})
    ds.attrs = _run_attrs(cfg, weights, times, summaries_only)
    if extra_attrs:
        ds.attrs.update(extra_attrs)
    return ds


def _run_attrs(cfg, weights, times, summaries_only: bool) -> dict:
    """A run's dataset attrs: its config, weights hash(es), version and history line."""
    from ._version import __version__
    from .neighbours import sampling_attrs

    if isinstance(weights, (list, tuple)):
        import hashlib

        hashes = [w.content_hash() for w in weights]
        weights_hash = hashlib.sha256("".join(hashes).encode()).hexdigest()
        kind = str(weights[0].meta.get("kind", "custom"))
    else:
        hashes = None
        weights_hash = weights.content_hash()
        kind = str(weights.meta.get("kind", "custom"))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # datetime's took 2x longer
    last_step = int(times[-1]) if len(times) else 0
    mode = ", summaries_only=True" if summaries_only else ""
    out = dict(
        title="GLOM consensus simulation",
        glomsim_config=cfg.to_json(),
        weights_hash=weights_hash,
        weights_kind=kind,
        seed=cfg.seed,
        glomsim_version=__version__,
        history=f"{now} glomsim {__version__}: simulate(steps={last_step}{mode})",
        Conventions="CF-1.10",
    )
    if hashes is not None:
        out["member_weights_hashes"] = json.dumps(hashes)
    if summaries_only:
        # an int, not a bool: netCDF attributes cannot hold booleans
        out["summaries_only"] = 1
    # how sampled neighbourhoods were drawn (nothing for runs that do not sample)
    out.update(sampling_attrs(cfg))
    return out


def _weights_path(path: Path) -> Path:
    return path.with_name(path.name + ".weights.npz")


#: The suffixes :func:`save` writes, by format.
ZARR_SUFFIXES = (".zarr",)
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
#: ``mode`` values of :func:`save`: None and "w-" refuse an existing path, "w" replaces
#: it, "a" and "r+" (Zarr only) write into it as ``xarray.Dataset.to_zarr`` does.
SAVE_MODES = (None, "w-", "w", "a", "r+")


def output_format(path, field: str = "path") -> str:
    """``"zarr"`` or ``"netcdf"`` by the suffix of ``path``; a ValueError naming ``field``
    for any other suffix.

    Examples
    --------
    >>> output_format("out/run.nc"), output_format("run.zarr")
    ('netcdf', 'zarr')
    >>> output_format("res.txt", "--output")
    Traceback (most recent call last):
    ...
    ValueError: --output='res.txt' is not allowed; allowed: a path with the suffix .zarr or .nc
    """
    suffix = Path(path).suffix
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    raise ValueError(
        f"{field}={str(path)!r} is not allowed; allowed: a path with the suffix .zarr or .nc"
    )


def check_output(path, *, overwrite: bool = False, field: str = "path") -> Path:
    """Check, before any work, that a result can be written to ``path``: a known suffix,
    not there already unless ``overwrite``, and a folder that exists or can be made (it
    is made). The one overwrite rule of :func:`save` and of every command that writes.

    Raises
    ------
    ValueError
        Unknown suffix.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    OSError
        Its folder cannot be made or written to.
    """
    path = Path(path)
    output_format(path, field)
    if (path.exists() or path.is_symlink()) and not overwrite:
        how = "--overwrite" if field.startswith("--") else "overwrite=True"
        raise FileExistsError(f"{field}={str(path)!r} exists; pass {how} to replace it")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            f"{field}={str(path)!r}: cannot make its folder {str(parent)!r} ({exc})"
        ) from exc
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OSError(f"{field}={str(path)!r}: its folder {str(parent)!r} is not writable")
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_new(ds, path: Path, kind: str) -> None:
    """Write ``ds`` beside ``path`` and move it there once complete: a failed write never
    leaves half a result at ``path``, nor removes what was there."""
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        if kind == "zarr":
            ds.to_zarr(tmp, mode="w", consolidated=False)
            target = tmp
        else:
            target = tmp / path.name
            ds.to_netcdf(target, engine="h5netcdf")
        if path.exists() or path.is_symlink():
            _remove(path)
        os.replace(target, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save(ds, path, *, weights=None, mode=None, overwrite: bool = False):
    """Save a dataset as Zarr (a ``.zarr`` folder) or netCDF (``.nc``) without loss.

    With ``weights``, they are stored beside the data (``PATH.weights.npz``) and their hash
    is checked against the dataset's, so :func:`load_run` can re-run the result bit for bit.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or Path
        Ending in ``.zarr`` or ``.nc`` (``.nc4``, ``.netcdf``); its folder is made.
    weights : GlomWeights, optional
    mode : {None, "w-", "w", "a", "r+"}
        None (default) and ``"w-"``: refuse an existing ``path``; ``"w"``: replace it
        (as ``overwrite=True``); ``"a"``, ``"r+"``: write into an existing Zarr store
        (``xarray.Dataset.to_zarr``'s modes).
    overwrite : bool
        Replace an existing ``path`` (and the weights saved beside it).

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError
        ``path`` exists, and neither ``overwrite=True`` nor ``mode="w"`` was given.
    ValueError
        A suffix other than ``.zarr``/``.nc``, an unknown ``mode``, or weights whose hash
        is not the dataset's.

    Examples
    --------
    >>> import glomsim as gs, tempfile, os
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=2)
    >>> w = gs.random_weights(cfg, seed=0)
    >>> ds = gs.simulate(cfg, w)
    >>> p = gs.save(ds, os.path.join(tempfile.mkdtemp(), "new", "run.zarr"), weights=w)
    >>> bool((gs.open_dataset(p).embedding == ds.embedding).all())
    True
    >>> p = gs.save(ds, p, weights=w, overwrite=True)  # without it: FileExistsError
    """
    path = Path(path)
    if mode not in SAVE_MODES:
        raise not_allowed("mode", mode, ", ".join(map(repr, SAVE_MODES)))
    check_bool("overwrite", overwrite)
    if mode == "w-" and overwrite:
        raise ValueError("mode='w-' with overwrite=True: 'w-' refuses an existing path")
    kind = output_format(path)
    if mode in ("a", "r+") and kind != "zarr":
        raise ValueError(f"mode={mode!r} writes into a Zarr store; path={str(path)!r} is netCDF")
    if weights is not None:
        weights.check_hash(ds.attrs.get("weights_hash"))
    if mode in ("a", "r+"):
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_zarr(path, mode=mode, consolidated=False)
    else:
        check_output(path, overwrite=overwrite or mode == "w")
        _write_new(ds, path, kind)
    wp = _weights_path(path)
    if weights is not None:
        weights.save(wp)
    elif mode not in ("a", "r+") and wp.exists():
        wp.unlink()  # the weights of the result just replaced: they would not match it
    return path


def open_dataset(path, **kwargs):
    """Open a dataset written by :func:`save` (Zarr folder or netCDF file)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset")
    if path.suffix == ".zarr" or path.is_dir():
        kwargs.setdefault("consolidated", False)
        return xr.open_zarr(path, **kwargs)
    return xr.open_dataset(path, engine="h5netcdf", **kwargs)


def load_run(path):
    """(config, weights, dataset) of a saved run; weights are None if not saved beside.

    Weights beside the data whose hash is not the dataset's are a ValueError naming the
    file."""
    from .config import GlomConfig
    from .weights import load_weights

    path = Path(path)
    ds = open_dataset(path)
    cfg = GlomConfig.from_dataset(ds)
    wp = _weights_path(path)
    weights = load_weights(wp) if wp.exists() else None
    if weights is not None:
        weights.check_hash(ds.attrs.get("weights_hash"), where=str(wp))
    return cfg, weights, ds
