"""Finding damaged runs in a sweep store: a per-run record of its chunk files' sizes.

Every run owns one chunk file per variable (chunks are 1 along the run dims and whole
along the variable's own dims). After writing its data, and before its status, a run
records the byte size of each of its chunk files (0 for a chunk zarr did not write
because it holds only fill values) in the array ``_runs/chunk_bytes`` of the store, a
subgroup that ``xarray.open_zarr`` does not read. A recorded run whose files no longer
have the recorded sizes (a chunk deleted or cut short), or whose record itself cannot be
read, is damaged: :func:`~glomsim.sweep.open_sweep` warns about it and shows it pending,
and a resume redoes it.

The check costs one ``stat`` per chunk file of every recorded run and one read of the
record (as much as reading ``status``), never a read of the data itself, so it stays cheap
on stores of large trajectories. It finds missing and truncated chunks, not chunks
overwritten in place with other bytes of the same length.

A damaged ``status`` chunk reads as pending too (:func:`read_status`), so its run is
redone and the chunk rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["Runs", "create_record", "record_run", "read_status", "find_damaged", "RECORD"]
__all__ += ["PENDING", "DONE", "FAILED"]

#: A run's status flags (the ``status`` variable).
PENDING, DONE, FAILED = 0, 1, 2
RECORD = "_runs/chunk_bytes"
#: What a record holds before its run has written one.
_UNRECORDED = -1


class Runs:
    """The runs of a store of run shape ``shape``: their count and positions."""

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)
        self.n_runs = int(np.prod(self.shape))

    def position(self, index: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(int(index), self.shape))


def create_record(store: str, layout) -> None:
    """Add the empty record array to a new store's template (``layout``: a
    :class:`~glomsim.sweep.store.Layout`)."""
    import zarr

    names = [name for name in layout.dtypes if name != "status"]
    group = zarr.open_group(store, mode="r+").require_group("_runs")
    group.create_array(
        "chunk_bytes",
        shape=tuple(layout.shape) + (len(names),),
        chunks=(1,) * len(layout.shape) + (len(names),),
        dtype="int64",
        fill_value=_UNRECORDED,
        attributes={
            "variables": names,
            "description": "byte size of each variable's chunk file of a run (0: not "
            "written, all fill values); -1 before the run recorded them",
        },
    )


class _Files:
    """The chunk file of every recorded variable of a run, from the arrays' key encodings."""

    def __init__(self, store: str, runs, names):
        import zarr

        self.root = Path(store)
        self.runs = runs
        self.names = list(names)
        self.keys = {}
        for name in self.names:
            meta = zarr.open_array(store, path=name, mode="r").metadata
            extra = len(meta.shape) - len(runs.shape)
            self.keys[name] = (meta, extra)

    def of(self, index: int) -> list[tuple[str, Path]]:
        pos = self.runs.position(index)
        out = []
        for name in self.names:
            meta, extra = self.keys[name]
            key = meta.encode_chunk_key(pos + (0,) * extra)
            out.append((f"{name}/{key}", self.root / name / key))
        return out

    def sizes(self, index: int) -> np.ndarray:
        sizes = []
        for _, path in self.of(index):
            try:
                sizes.append(os.stat(path).st_size)
            except FileNotFoundError:
                sizes.append(0)
        return np.asarray(sizes, dtype=np.int64)


def record_run(store: str, runs, index: int) -> None:
    """Record the sizes of run ``index``'s chunk files (after its data, before its status).
    A store without a record (written by an older glomsim) is left as it is."""
    import zarr

    try:
        arr = zarr.open_array(store, path=RECORD, mode="r+")
    except Exception:  # noqa: BLE001 - zarr's "no array here" errors vary by version
        return
    sizes = _Files(store, runs, arr.attrs["variables"]).sizes(index)
    arr[runs.position(index) + (slice(None),)] = sizes


def _open(store: str, path: str):
    import zarr

    try:
        return zarr.open_array(store, path=path, mode="r")
    except Exception:  # noqa: BLE001 - zarr's "no array here" errors vary by version
        return None


def _read_robustly(store: str, arr, runs, fill) -> tuple[np.ndarray, list[int]]:
    """The whole of ``arr``, with unreadable runs' cells as ``fill``; the indices of
    those runs."""
    try:
        return np.asarray(arr[...]), []
    except Exception:  # noqa: BLE001 - a damaged chunk: find which, one run at a time
        pass
    out = np.full(arr.shape, fill, dtype=arr.dtype)
    bad = []
    for index in range(runs.n_runs):
        pos = runs.position(index)
        try:
            out[pos] = arr[pos]
        except Exception:  # noqa: BLE001 - zstd, truncated or garbled: the same to us
            bad.append(index)
    return out, bad


def read_status(store: str) -> tuple[np.ndarray, list[int]]:
    """Every run's status (the run dims' shape), a damaged or unknown flag read as
    pending; and the indices of runs whose status chunk could not be read."""
    arr = _open(store, "status")
    if arr is None:
        raise ValueError(f"store {store!r} has no status array: it is not a glomsim sweep")
    status, bad = _read_robustly(store, arr, Runs(arr.shape), 0)
    status = status.astype(np.int8)
    status[~np.isin(status, (0, 1, 2))] = 0
    return status, bad


def find_damaged(store: str, status: np.ndarray) -> dict[int, str]:
    """{run index: what is wrong} for recorded runs (done or failed) whose chunk files do
    not match their record. Stores written without a record are not checked."""
    arr = _open(store, RECORD)
    if arr is None:
        return {}
    runs = Runs(status.shape)
    record, bad = _read_robustly(store, arr, runs, _UNRECORDED)
    files = _Files(store, runs, arr.attrs["variables"])
    flat_status = status.reshape(-1)
    flat_record = record.reshape(runs.n_runs, -1)
    out = {i: "its size record cannot be read" for i in bad if flat_status[i] != 0}
    for index in np.flatnonzero(flat_status != 0):
        index = int(index)
        if index in out:
            continue
        expected = flat_record[index]
        if (expected == _UNRECORDED).any():
            out[index] = "it has no size record"
            continue
        got = files.sizes(index)
        if not np.array_equal(got, expected):
            k = int(np.flatnonzero(got != expected)[0])
            key = files.of(index)[k][0]
            what = "is missing" if got[k] == 0 else f"has {got[k]} bytes, not {expected[k]}"
            out[index] = f"{key} {what}"
    return out
