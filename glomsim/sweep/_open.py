"""Reading a sweep store back: :func:`open_sweep` (with its damage check) and
:func:`summary_text`. The store's layout and writing are :mod:`glomsim.sweep.store`.
"""

from __future__ import annotations

import json

from . import _integrity as integrity
from ._integrity import PENDING

__all__ = ["open_sweep", "summary_text", "dataset_label"]


def open_sweep(store, *, check: bool = True):
    """Open a sweep store as a Dataset (lazy: arrays load on access).

    In zip and random modes the axis coordinates along ``point`` get a multi-index, so
    ``ds.sel(beta=2.0)`` works there too.

    With ``check`` (the default), recorded runs whose chunk files are missing or cut short
    are found (one ``stat`` per chunk file, no data read): a
    :class:`~glomsim.sweep.SweepDamaged` warning names them and their files, and their
    ``status`` reads 0 (pending), so ``ds.where(ds.status == 1)`` leaves them out; running
    the sweep again on the store redoes them. A ``status`` chunk that cannot be read also
    reads as pending.

    Examples
    --------
    >>> import tempfile, os
    >>> from glomsim.sweep import run
    >>> spec = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 2},
    ...         "sweep": {"mode": "zip"}, "scene": False,
    ...         "axes": {"attention.beta": [0.0, 1.0], "attention.radius": [1.0, 2.0]}}
    >>> path = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> _ = run(spec, path, client="sync", progress=False)
    >>> ds = open_sweep(path)
    >>> ds.sel({"attention.beta": 1.0, "attention.radius": 2.0}).rate.dims
    ('seed', 'level')
    >>> ds.sel({"attention.beta": 1.0}).rate.dims  # the other axis is left along point
    ('attention.radius', 'seed', 'level')
    """
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=False, chunks=None)
    if check:
        ds = _checked(ds, str(store))
    # Python strings, as pandas and xarray's where/fillna expect them (numpy's StringDType,
    # which the store holds, cannot be mixed with the NaN that where() fills in)
    ds["error"] = ds["error"].astype(object)
    if "point" in ds.dims:
        names = json.loads(ds.attrs.get("sweep_axes", "[]"))
        if names:
            import xarray.indexes

            ds = ds.set_xindex(names, xarray.indexes.PandasMultiIndex)
    return ds


def _checked(ds, store: str):
    import warnings

    from ._errors import FIRST_FEW, SweepDamaged

    status, unreadable = integrity.read_status(store)
    damaged = {i: "its status chunk cannot be read" for i in unreadable}
    damaged.update(integrity.find_damaged(store, status))
    runs = integrity.Runs(status.shape)
    for index in damaged:
        status[runs.position(index)] = PENDING
    ds["status"] = ds["status"].copy(data=status)
    if damaged:
        first = "; ".join(
            f"{dataset_label(ds, runs.position(i))}: {why}"
            for i, why in list(damaged.items())[:FIRST_FEW]
        )
        warnings.warn(
            SweepDamaged(
                f"sweep store {store!r}: {len(damaged)} recorded run(s) are damaged and "
                f"read as pending ({first}); run the sweep again on this store to redo them"
            ),
            stacklevel=3,
        )
    return ds


def dataset_label(ds, position) -> str:
    """``beta=2.0, radius=inf, seed=1`` for the run at ``position`` of a sweep's Dataset."""
    parts = []
    for dim, i in zip(json.loads(ds.attrs["sweep_dims"]), position, strict=True):
        if dim == "point":
            for name in json.loads(ds.attrs.get("sweep_axes", "[]")):
                parts.append(f"{name}={ds[name].values[i]}")
        else:
            parts.append(f"{dim}={ds[dim].values[i]}")
    return ", ".join(parts)


def summary_text(ds, path=None) -> str:
    """A few lines on a finished sweep: runs done and failed (with reasons) and time.

    ``ds`` is a sweep's result (:func:`open_sweep`), ``path`` where it is stored.
    """
    a = ds.attrs
    shape = " x ".join(f"{ds.sizes[d]} {d}" for d in json.loads(a["sweep_dims"]))
    lines = [
        f"sweep {a.get('sweep_name', '')!r}: {a['sweep_runs']} runs ({shape})"
        + (f" -> {path}" if path else ""),
        f"done {a['sweep_done']}, failed {a['sweep_failed']}, pending {a['sweep_pending']} "
        f"in {a['sweep_seconds']:.1f} s ({a['sweep_skipped']} recorded before)",
    ]
    for item in json.loads(a.get("sweep_failures", "[]"))[:5]:
        lines.append(f"  failed {item['count']} x {item['error']}")
    return "\n".join(lines)
