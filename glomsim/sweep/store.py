"""The Zarr layout of a sweep: template, one region per run, status flags, final attrs.

The store is written in three phases, by one sweep at a time (the caller holds the
store's lock, :mod:`glomsim.sweep._lock`):

1. ``prepare``: the template (every variable's metadata and the coordinates, the empty
   size record of :mod:`glomsim.sweep._integrity`, consolidated metadata) is written
   with ``to_zarr(compute=False)`` into a temporary folder beside the store and renamed
   into place, so a store is never seen half made. Chunks are 1 along the sweep
   dimensions, so every run owns its chunks. On resume, runs whose chunks were damaged
   since are set back to pending.
2. ``write_run``: a run writes its data and its ``error`` text into its region, then the
   sizes of its chunk files, and only after that its ``status`` (1 done, 2 failed). Zarr
   writes each chunk file atomically (a temporary file renamed into place), so a run
   killed at any moment is either complete with its status set, or still pending and
   redone identically on resume.
3. ``finish``: counts and failure reasons go into the root attrs.

:func:`open_sweep` (in :mod:`glomsim.sweep._open`) reads a store back as a Dataset,
:func:`summary_text` describes it. The variables' dims, dtypes and attrs come from
:mod:`glomsim.variables`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from ..variables import COORDS, VARIABLES, attrs
from . import _integrity as integrity
from ._integrity import DONE, FAILED, PENDING
from ._open import dataset_label, open_sweep, summary_text

__all__ = ["Layout", "prepare", "write_run", "finish", "open_sweep", "summary_text"]
__all__ += ["PENDING", "DONE", "FAILED", "RESULTS", "read_status", "dataset_label"]

_STRING = np.dtypes.StringDType()
#: Distinct failure reasons listed in the attrs (the error variable has them all).
_MAX_REASONS = 20


#: The per-run variables a sweep writes, in the store's order. Their dims (after the run
#: dims), dtypes and attrs come from the one registry, :mod:`glomsim.variables`.
RESULTS = (
    "status",
    "error",
    "island_count",
    "residual",
    "settled_step",
    "rate",
    "ari",
    "ari_objects",
    "boundary_leak",
    "spectral_radius",
    "spectral_radius_transverse",
    "embedding",
    "label",
)
#: Dims of the runs themselves, beside the sweep axes.
RUN_DIMS = ("point", "seed", "member")


def _reserved() -> frozenset:
    own_dims = {d for name in RESULTS for d in VARIABLES[name].dims}
    coords = {c for c in COORDS if set(VARIABLES[c].dims) <= own_dims}
    return frozenset(RUN_DIMS) | frozenset(RESULTS) | own_dims | coords


#: Names the result already uses, so an axis may not take them.
RESERVED = _reserved()


def _dtype(name: str, run_dtype: str) -> np.dtype:
    dtype = VARIABLES[name].dtype
    if dtype == "str":
        return _STRING
    return np.dtype(run_dtype if dtype == "float" else dtype)


def _fill(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return -1
    return ""


class Layout:
    """Dims, coords and variables of a sweep's store, derived from its spec alone."""

    def __init__(self, spec):
        self.spec = spec
        self.dims = spec.dims
        self.shape = spec.shape
        self.n_runs = spec.n_runs
        configs = [spec.settings(p)["config"] for p in spec.valid_points()]
        base = configs[0]
        self.levels = max(c.levels for c in configs)
        keep, scene = spec.keep, spec.has_labels
        names = ["status", "error", "island_count", "residual", "settled_step", "rate"]
        names += ["ari", "ari_objects", "boundary_leak"] * scene
        names += ["spectral_radius", "spectral_radius_transverse"] * keep["spectral_radius"]
        self.extra_sizes = {"level": self.levels}
        if keep["trajectories"]:
            names += ["embedding"] + ["label"] * scene
            k = keep["record_every"]
            times = [t for t in range(base.steps + 1) if t % k == 0]
            if times[-1] != base.steps:
                times.append(base.steps)
            self.times = np.asarray(times, dtype=np.int64)
            self.positions = base.position_array()
            self.extra_sizes.update(time=len(times), column=base.n_columns, feature=base.dim)
        # runs of several dtypes share one embedding array: the wider one holds both
        run_dtype = "float64" if any(a.path == "dtype" for a in spec.axes) else base.dtype
        self.dtypes = {name: _dtype(name, run_dtype) for name in names}

    # ----- indices -----------------------------------------------------------------------
    def position(self, index: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(int(index), self.shape))

    def region(self, index: int) -> dict:
        return {d: slice(i, i + 1) for d, i in zip(self.dims, self.position(index), strict=True)}

    def var_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.extra_sizes[d] for d in VARIABLES[name].dims)

    # ----- the template ------------------------------------------------------------------
    def coords(self) -> dict:
        spec = self.spec
        coords = {}
        if spec.mode == "grid":
            for a in spec.axes:
                coords[a.name] = ((a.name,), _coord_array(a.coord_values), _axis_attrs(a))
        elif spec.axes:
            n = len(spec.points)
            coords["point"] = (("point",), np.arange(n, dtype=np.int64), attrs("point"))
            for a in spec.axes:
                vals = [a.label_of(p[a.name]) for p in spec.points]
                coords[a.name] = (("point",), _coord_array(vals), _axis_attrs(a))
        coords["seed"] = (("seed",), np.asarray(spec.seeds, dtype=np.int64), attrs("seed"))
        if spec.members:
            coords["member"] = (
                ("member",),
                np.arange(spec.members, dtype=np.int64),
                attrs("member"),
            )
        coords["level"] = (("level",), np.arange(self.levels, dtype=np.int64), attrs("level"))
        if "time" in self.extra_sizes:
            n, d = self.extra_sizes["column"], self.extra_sizes["feature"]
            coords["time"] = (("time",), self.times, attrs("time"))
            coords["column"] = (("column",), np.arange(n, dtype=np.int64), attrs("column"))
            coords["feature"] = (("feature",), np.arange(d, dtype=np.int64), attrs("feature"))
            coords["y"] = (("column",), self.positions[:, 0], attrs("y"))
            coords["x"] = (("column",), self.positions[:, 1], attrs("x"))
        return coords

    def template(self):
        import dask.array as da
        import xarray as xr

        from .._version import __version__

        spec = self.spec
        data_vars, encoding = {}, {}
        ones = (1,) * len(self.dims)
        for name, dtype in self.dtypes.items():
            extra = self.var_shape(name)
            fill = 0 if name == "status" else _fill(dtype)
            # one dask chunk: the template is never computed, and a graph of one task per
            # run would cost more than the sweep's own bookkeeping on large sweeps
            arr = da.full(self.shape + extra, fill, dtype=dtype, chunks=-1)
            var_attrs = attrs(name)
            if name == "status":
                var_attrs.update(
                    flag_values=[PENDING, DONE, FAILED], flag_meanings="pending done failed"
                )
            data_vars[name] = (self.dims + VARIABLES[name].dims, arr, var_attrs)
            encoding[name] = {"chunks": ones + extra}
            if dtype.kind != "T":
                encoding[name]["fill_value"] = fill
        ds = xr.Dataset(data_vars, coords=self.coords())
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ds.attrs.update(
            title=f"glomsim sweep {spec.name}",
            sweep_name=spec.name,
            sweep_mode=spec.mode,
            sweep_dims=json.dumps(list(self.dims)),
            sweep_axes=json.dumps([a.name for a in spec.axes]),
            sweep_paths=json.dumps({a.name: a.path for a in spec.axes}),
            sweep_runs=self.n_runs,
            sweep_spec=spec.to_toml(),
            sweep_hash=spec.content_hash(),
            sweep_ready=0,
            glomsim_config=spec.base.to_json(),
            glomsim_version=__version__,
            history=f"{now} glomsim {__version__}: sweep.run({spec.name!r})",
            Conventions="CF-1.10",
        )
        return ds, encoding


def _coord_array(values):
    vals = list(values)
    if all(isinstance(v, str) for v in vals):
        return np.array(vals, dtype=_STRING)
    if all(isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.int64)
    return np.array(vals, dtype=np.float64)


def _axis_attrs(axis) -> dict:
    attrs = {"long_name": axis.path, "sweep_path": axis.path}
    if axis.labels is not None:
        attrs["sweep_values"] = json.dumps(list(axis.values))
    return attrs


# ----------------------------------------------------------------------------------------
# phases
# ----------------------------------------------------------------------------------------
def _root_attrs(path: Path) -> dict | None:
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        with meta.open() as f:
            return json.load(f).get("attributes", {})
    except (OSError, ValueError):
        return None


def _differences(stored_toml: str, spec) -> str:
    import tomllib

    try:
        old = tomllib.loads(stored_toml)
    except ValueError:
        return "unreadable"
    new = spec.to_dict()
    for d in (old, new):
        d.get("sweep", {}).pop("batch_size", None)
        d.get("sweep", {}).pop("name", None)
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(diff) or "details"


def prepare(store: str, spec, layout: Layout, *, resume: bool) -> tuple[np.ndarray, dict]:
    """Make ``store`` ready; the status of every run (shape ``layout.shape``) and the
    damaged runs found on resume ({index: what is wrong}, now pending again).

    Resuming needs the same spec (its content hash); a folder that is not a glomsim
    sweep is never deleted. The caller holds the store's lock.
    """
    path = Path(store)
    _remove_leftovers(path)
    if path.exists():
        attrs = _root_attrs(path)
        empty = path.is_dir() and not any(path.iterdir())
        if not empty and (attrs is None or "sweep_hash" not in attrs):
            raise ValueError(
                f"store {store!r} exists and is not a glomsim sweep; choose another path"
            )
        if attrs and attrs.get("sweep_ready") and resume:
            if attrs["sweep_hash"] != spec.content_hash():
                raise ValueError(
                    f"store {store!r} holds a different sweep (it differs in "
                    f"{_differences(attrs.get('sweep_spec', ''), spec)}); resume=False "
                    "(--no-resume) replaces it, or choose another path"
                )
            _remove_partials(path)
            return _recorded(store)
    # not resuming, a template cut short (so no run was recorded), or a new store
    _write_template(path, layout)
    return np.zeros(layout.shape, dtype=np.int8), {}


def _recorded(store: str) -> tuple[np.ndarray, dict]:
    """The status on resume, with damaged runs set back to pending (in the store too)."""
    import zarr

    status, unreadable = integrity.read_status(store)
    damaged = {i: "its status chunk cannot be read" for i in unreadable}
    damaged.update(integrity.find_damaged(store, status))
    if damaged:
        flat = status.reshape(-1)
        arr = zarr.open_array(store, path="status", mode="r+")
        runs = integrity.Runs(status.shape)
        for index in damaged:
            flat[index] = PENDING
            arr[runs.position(index)] = PENDING
    return status, damaged


def _temporary(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.glomsim-{what}-{os.getpid()}")


def _remove_leftovers(path: Path) -> None:
    # templates being written, or old stores being replaced, by a writer that was killed
    # (the caller holds the lock, so no live writer owns them)
    for p in path.parent.glob(f".{path.name}.glomsim-*-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _write_template(path: Path, layout: Layout) -> None:
    """Write the template beside ``path`` and rename it into place: a store is never seen
    half made, whenever its writer is killed."""
    tmp = _temporary(path, "new")
    shutil.rmtree(tmp, ignore_errors=True)
    ds, encoding = layout.template()
    ds.to_zarr(tmp, mode="w", compute=False, consolidated=False, encoding=encoding)
    integrity.create_record(str(tmp), layout)
    _update_attrs(str(tmp), {"sweep_ready": 1})
    _consolidate(str(tmp))
    if path.exists():
        # a previous sweep (or an empty folder): out of the way first, then deleted
        old = _temporary(path, "old")
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, path)


def _consolidate(store: str) -> None:
    # the arrays' metadata never changes after the template (runs write chunks, the end
    # writes root attrs, which keep the consolidated copy), so plain xr.open_zarr finds
    # it and does not warn; zarr's own note that v3 does not standardise it is for us
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(store)


def _remove_partials(path: Path) -> None:
    # a chunk whose write was killed leaves zarr's temporary file beside it; the chunk
    # itself is untouched (the rename never happened), so the leftover is only clutter
    for p in path.rglob("*.partial"):
        p.unlink(missing_ok=True)


def _update_attrs(store: str, attrs: dict) -> None:
    import zarr

    zarr.open_group(store, mode="r+").attrs.update(attrs)


def read_status(store: str, layout: Layout, index: int) -> int:
    """Run ``index``'s status; a flag that cannot be read counts as pending."""
    import zarr

    try:
        flag = int(zarr.open_array(store, path="status", mode="r")[layout.position(index)])
    except Exception:  # noqa: BLE001 - a damaged chunk: the run is redone and rewrites it
        return PENDING
    return flag if flag in (PENDING, DONE, FAILED) else PENDING


def read_all_status(store: str, layout: Layout | None = None) -> np.ndarray:
    """Every run's status; a flag that cannot be read counts as pending."""
    return integrity.read_status(store)[0]


def _cell(layout: Layout, name: str, value):
    """The run's value of ``name`` as an array with leading length-1 run dims."""
    dtype = layout.dtypes[name]
    extra = layout.var_shape(name)
    out = np.full(extra, _fill(dtype), dtype=dtype)
    if value is not None:
        value = np.asarray(value)
        if name == "error" or value.ndim == 0:
            out = np.asarray(value, dtype=dtype).reshape(extra)
        else:
            # runs with fewer levels than the sweep's widest leave the rest as fill
            out[tuple(slice(0, n) for n in value.shape)] = value
    return out.reshape((1,) * len(layout.dims) + extra)


def write_run(store: str, layout: Layout, index: int, values: dict | None, error: str) -> int:
    """Write a run's data and error into its region, then its status; returns the status."""
    import xarray as xr

    region = layout.region(index)
    run_dims = layout.dims

    def cells(given: dict) -> dict:
        return {
            name: (run_dims + VARIABLES[name].dims, _cell(layout, name, given.get(name)))
            for name in layout.dtypes
            if name not in ("status", "error")
        }

    try:
        data = cells(values or {})
    except (ValueError, TypeError, IndexError) as exc:
        error = f"writing the result failed: {type(exc).__name__}: {exc}"
        data = cells({})
    status = FAILED if error else DONE
    data["error"] = (run_dims, _cell(layout, "error", error))
    xr.Dataset(data).to_zarr(store, region=region, mode="r+", consolidated=False)
    integrity.record_run(store, layout, index)
    # the status last: a run counts as done only once everything above is on disk
    flag = np.full((1,) * len(run_dims), status, dtype=np.int8)
    xr.Dataset({"status": (run_dims, flag)}).to_zarr(
        store, region=region, mode="r+", consolidated=False
    )
    return status


def finish(store: str, layout: Layout, *, seconds: float | None, skipped: int) -> dict:
    """Count done/failed/pending runs and the failure reasons into the root attrs.

    ``seconds`` is the time of this invocation; None (nothing was left to run) keeps the
    time of the invocation that ran the runs.
    """
    import zarr

    status = read_all_status(store, layout)
    failed = status == FAILED
    reasons = Counter()
    if failed.any():
        errors = zarr.open_array(store, path="error", mode="r")
        runs = integrity.Runs(status.shape)
        for index in np.flatnonzero(failed.reshape(-1)):
            try:
                reasons[str(errors[runs.position(index)])] += 1
            except Exception:  # noqa: BLE001 - a damaged error chunk: still a failure
                reasons["(its error text cannot be read)"] += 1
    attrs = {
        "sweep_done": int((status == DONE).sum()),
        "sweep_failed": int(failed.sum()),
        "sweep_pending": int((status == PENDING).sum()),
        "sweep_failures": json.dumps(
            [{"error": e, "count": n} for e, n in reasons.most_common(_MAX_REASONS)]
        ),
        "sweep_skipped": int(skipped),
    }
    if seconds is not None or "sweep_seconds" not in (_root_attrs(Path(store)) or {}):
        attrs["sweep_seconds"] = round(float(seconds or 0.0), 3)
    _update_attrs(store, attrs)
    return attrs
