"""The variable registry, Dataset creation, and Zarr/netCDF I/O.

Every variable glomsim writes is registered here with its dims, long_name, units and a
one-line description, so datasets label themselves and plots read their labels.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VARIABLES", "SUMMARIES", "create_dataset", "save", "open_dataset", "load_run"]


@dataclass(frozen=True)
class Variable:
    name: str
    dims: tuple[str, ...]
    long_name: str
    units: str
    description: str


VARIABLES = {
    v.name: v
    for v in (
        Variable(
            "embedding",
            ("time", "level", "column", "feature"),
            "embedding",
            "1",
            "state E[t, l, i, :] of every level of every column at each recorded step",
        ),
        Variable("input", ("column", "feature"), "input token", "1", "level-0 input u[i]"),
        Variable(
            "label",
            ("level", "column"),
            "ground-truth label",
            "1",
            "true part-whole label of each column per level (scenes only)",
        ),
        Variable(
            "rms",
            ("step", "level"),
            "RMS embedding size",
            "1",
            "RMS over (column, feature) of E[t, l] at every step (summaries_only runs)",
        ),
        Variable(
            "change",
            ("step", "level"),
            "RMS change per step",
            "1",
            "RMS over (column, feature) of E[t, l] - E[t-1, l] at every step, NaN at step 0 "
            "(summaries_only runs; the quantity stop_when_settled tests)",
        ),
    )
}

#: The per-step summaries a ``summaries_only`` run keeps instead of the trajectory.
SUMMARIES = ("rms", "change")

COORDS = {
    "time": ("step", "step index; 0 is the initial state"),
    "step": ("step", "step index of the per-step summaries; 0 is the initial state"),
    "level": ("level", "level of the part-whole hierarchy, 0 = lowest"),
    "column": ("column", "column index, row-major on grids"),
    "feature": ("feature", "embedding feature index"),
    "y": ("y position", "grid units"),
    "x": ("x position", "grid units"),
}


def _attrs(name):
    v = VARIABLES[name]
    return {"long_name": v.long_name, "units": v.units, "description": v.description}


_SKELETONS: dict = {}
_SKELETONS_LOCK = threading.Lock()


def _skeleton(cfg, coord_key: tuple, make_coords, data_vars: dict):
    """A Dataset with these coordinates and these variables' dims, attrs and values, filled
    in (:func:`_filled`) from an empty one (its variables broadcast zeros, which take no
    memory) built once per config and layout: merging the variables and coordinates into a
    new Dataset was ~0.25 ms of a 10-step run of a small grid (~3 ms). Results share the
    read-only coordinate values and indexes; each has its own attrs.

    Every variable goes in as an ``xarray.Variable`` made with ``fastpath`` (the values
    are numpy arrays already), and dimension coordinates as pandas indexes: given plain
    arrays, xarray asks whether each is a dask array, which imports dask and dask.array,
    ~0.25 s of a new process's first run.

    ``coord_key`` holds everything the coordinates depend on besides the config (the
    recorded steps, member and summary-step counts), so ``make_coords()`` builds them only
    when the skeleton is new (building them was ~50 us a call right after a run)."""
    import xarray as xr

    layout = tuple((k, v[0], v[1].shape, v[1].dtype.str) for k, v in data_vars.items())
    key = (cfg, coord_key, layout)
    with _SKELETONS_LOCK:
        hit = _SKELETONS.get(key)
    if hit is None:
        import pandas as pd

        coord_vars = {}
        for name, (dims, values, attrs) in make_coords().items():
            values.flags.writeable = False
            # a dimension's coordinate as a pandas index already: casting an array to one
            # asks dask (imported for it) whether the array is a dask collection
            data = pd.Index(values, copy=False) if dims in (name, (name,)) else values
            coord_vars[name] = xr.Variable(dims, data, attrs, fastpath=True)
        empty = {
            k: xr.Variable(
                dims, np.broadcast_to(np.zeros((), v.dtype), v.shape), attrs, fastpath=True
            )  # fmt: skip
            for k, (dims, v, attrs) in data_vars.items()
        }
        hit = xr.Dataset(empty, coords=coord_vars)
        with _SKELETONS_LOCK:
            while len(_SKELETONS) >= 16:
                _SKELETONS.pop(next(iter(_SKELETONS)))
            _SKELETONS[key] = hit
    try:
        return _filled(hit, data_vars)
    except (AttributeError, TypeError):  # xarray changed its private constructor
        data = {k: xr.Variable(dims, v, fastpath=True) for k, (dims, v, _) in data_vars.items()}
        return hit.copy(deep=False, data=data)


def _filled(skeleton, data_vars):
    """``skeleton.copy(deep=False, data=...)`` without the copy's index rebuilding: the
    Dataset is assembled from new variables (own attrs; shared read-only coordinate
    values and indexes) by xarray's own internal constructor, ``Dataset._construct_direct``
    (a private API; :func:`_skeleton` falls back to the public copy if it changes, and
    tests compare the two). Right after a run's kernel, when Python's data had left the
    caches, the copy cost ~0.3 ms of a ~3.5 ms small run; this costs a fraction."""
    import xarray as xr

    variables = {}
    for name, var in skeleton._variables.items():
        if name in data_vars:
            variables[name] = xr.Variable(var.dims, data_vars[name][1], dict(var.attrs),
                                          fastpath=True)  # fmt: skip
        else:
            variables[name] = var._replace(attrs=dict(var.attrs))
    return xr.Dataset._construct_direct(
        variables,
        set(skeleton._coord_names),
        dict(skeleton._dims),
        {},
        dict(skeleton._indexes),
    )


def create_dataset(
    cfg, weights, embedding, times, inputs, *, labels=None, extra_attrs=None, summaries=None
):
    """Build the Dataset of ARCHITECTURE's data model from plain arrays.

    ``summaries`` maps names in ``SUMMARIES`` to float64 arrays (step, level), or
    (member, step, level) for an ensemble, with one row per step from 0; they become data
    variables on the ``step`` dimension.
    """
    from . import __version__

    L, N, D = cfg.levels, cfg.n_columns, cfg.dim
    member = embedding.ndim == 5  # (member, time, level, column, feature): an ensemble
    lead = ("member",) if member else ()
    times = tuple(int(t) for t in times)
    n_members = embedding.shape[0] if member else None
    n_steps = next(iter(summaries.values())).shape[len(lead)] if summaries else None

    def cattrs(c):
        long_name, units = COORDS[c]
        return dict(long_name=long_name, units=units if c in ("y", "x") else "1")

    def make_coords():
        # attrs go in with the values: setting them afterwards through ds[c] cost ~0.2 ms
        # a call, a tenth of a 10-step run of a small grid
        pos = cfg.position_array()
        coords = {
            "time": ("time", np.asarray(times, dtype=np.int64), cattrs("time")),
            "level": ("level", np.arange(L, dtype=np.int64), cattrs("level")),
            "column": ("column", np.arange(N, dtype=np.int64), cattrs("column")),
            "feature": ("feature", np.arange(D, dtype=np.int64), cattrs("feature")),
            "y": ("column", pos[:, 0].copy(), cattrs("y")),
            "x": ("column", pos[:, 1].copy(), cattrs("x")),
        }
        if member:
            coords["member"] = (
                "member",
                np.arange(n_members, dtype=np.int64),
                dict(long_name="ensemble member", units="1"),
            )
        if summaries:
            coords["step"] = ("step", np.arange(n_steps, dtype=np.int64), cattrs("step"))
        return coords

    data_vars = {
        "embedding": (lead + VARIABLES["embedding"].dims, embedding, _attrs("embedding")),
        "input": (lead + VARIABLES["input"].dims, np.asarray(inputs), _attrs("input")),
    }
    if labels is not None:
        labels = np.asarray(labels)
        dims = VARIABLES["label"].dims if labels.ndim == 2 else lead + VARIABLES["label"].dims
        data_vars["label"] = (dims, labels, _attrs("label"))
    if summaries:
        for name, values in summaries.items():
            data_vars[name] = (lead + VARIABLES[name].dims, values, _attrs(name))
    ds = _skeleton(cfg, (times, n_members, n_steps), make_coords, data_vars)
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
    mode = ", summaries_only=True" if summaries else ""
    ds.attrs = dict(
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
        ds.attrs["member_weights_hashes"] = json.dumps(hashes)
    if summaries:
        # an int, not a bool: netCDF attributes cannot hold booleans
        ds.attrs["summaries_only"] = 1
    if extra_attrs:
        ds.attrs.update(extra_attrs)
    return ds


def _weights_path(path: Path) -> Path:
    return path.with_name(path.name + ".weights.npz")


def save(ds, path, *, weights=None, mode="w"):
    """Save a dataset as Zarr (a ``.zarr`` folder) or netCDF (``.nc``) without loss.

    With ``weights``, they are stored beside the data (``PATH.weights.npz``) and their hash
    is checked against the dataset's, so :func:`load_run` can re-run the result bit for bit.

    Examples
    --------
    >>> import glomsim as gs, tempfile, os
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=2)
    >>> w = gs.random_weights(cfg, seed=0)
    >>> ds = gs.simulate(cfg, w)
    >>> p = gs.save(ds, os.path.join(tempfile.mkdtemp(), "run.zarr"), weights=w)
    >>> bool((gs.open_dataset(p).embedding == ds.embedding).all())
    True
    """
    path = Path(path)
    if weights is not None and "weights_hash" in ds.attrs:
        if weights.content_hash() != ds.attrs["weights_hash"]:
            raise ValueError(
                "weights: their content hash differs from the dataset's weights_hash; "
                "pass the weights this dataset was simulated with"
            )
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode=mode, consolidated=False)
    elif path.suffix in (".nc", ".nc4", ".netcdf"):
        tmp = path.with_name(path.name + ".tmp")
        ds.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(path)
    else:
        raise ValueError(f"path={str(path)!r}: the suffix must be .zarr or .nc")
    if weights is not None:
        weights.save(_weights_path(path))
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
    """(config, weights, dataset) of a saved run; weights are None if not saved beside."""
    from .config import GlomConfig
    from .weights import load_weights

    path = Path(path)
    ds = open_dataset(path)
    cfg = GlomConfig.from_dataset(ds)
    wp = _weights_path(path)
    weights = load_weights(wp) if wp.exists() else None
    return cfg, weights, ds


def config_json(ds) -> dict:
    return json.loads(ds.attrs["glomsim_config"])
