"""Helpers shared by the analysis modules: time selection, labels, the history line.

Pure computations live in the modules. Inputs are checked and outputs labelled through the
one variable registry (:func:`glomsim.variables.check_dataset`,
:func:`glomsim.variables.annotate`); this adds the ``history`` line, the thin metadata
layer that xclim keeps apart from the arithmetic.
"""

from __future__ import annotations

import datetime

import numpy as np

__all__ = [
    "time_positions",
    "iter_time_blocks",
    "canonical_labels",
    "add_history",
    "is_islands",
    "is_summaries_only",
    "has_step_change",
]


def has_step_change(ds) -> bool:
    """Whether ``ds`` records the RMS change of every step, ``change(step, level)``.

    ``summaries_only`` runs always do; since issue 14 every run does, thinned ones too, so
    that the change between recorded states is never all that is known.
    """
    return "change" in ds.data_vars and "step" in ds["change"].dims and "level" in ds["change"].dims


def is_summaries_only(ds) -> bool:
    """Whether ``ds`` is a ``summaries_only`` run: ``embedding`` at the first and last steps
    only, and the per-step ``rms`` and ``change`` on the ``step`` dimension.

    A run's attrs say so (``summaries_only = 1``); without a run's attrs (dropped by a
    merge, say), a per-step ``change`` beside at most two recorded states does.
    """
    if "summaries_only" in ds.attrs or "glomsim_config" in ds.attrs:
        return bool(ds.attrs.get("summaries_only", 0))
    if not has_step_change(ds):
        return False
    n_times = ds.sizes.get("time", 0)
    return n_times <= 2 < ds.sizes["step"]


def time_positions(n_times: int, time, func: str) -> np.ndarray:
    """Positions along ``time`` picked by ``time`` (None = all; ints index like isel)."""
    if time is None:
        return np.arange(n_times)
    sel = np.atleast_1d(np.asarray(time))
    if sel.ndim != 1 or sel.dtype.kind not in "iu" or sel.size == 0:
        raise ValueError(
            f"{func}: time={time!r} must be None (all) or one or more integer positions "
            "along the time dimension (-1 is the last recorded step)"
        )
    if np.any(sel >= n_times) or np.any(sel < -n_times):
        raise ValueError(
            f"{func}: time={time!r} is out of range; the dataset has {n_times} recorded "
            f"steps, so positions must lie in [{-n_times}, {n_times - 1}]"
        )
    return np.where(sel < 0, sel + n_times, sel).astype(np.int64)


def iter_time_blocks(da, positions):
    """Yield (indices into ``positions``, numpy block (k, ...)) reading ``da`` in pieces.

    A dask-backed array is read one of its time chunks at a time, so memory stays at one
    chunk; a numpy-backed one is read without a copy.
    """
    positions = np.asarray(positions)
    if da.chunks is None:
        data = da.data
        yield np.arange(len(positions)), data[positions]
        return
    axis = da.dims.index("time")
    bounds = np.cumsum((0,) + tuple(da.chunks[axis]))
    chunk_of = np.searchsorted(bounds, positions, side="right") - 1
    for c in np.unique(chunk_of):
        idx = np.nonzero(chunk_of == c)[0]
        yield idx, np.asarray(da.isel(time=positions[idx]).values)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, ... in order of first appearance (int64).

    The partition is unchanged; only the names change, so equal partitions of the same
    columns get equal labels whatever labels the clustering produced.

    Examples
    --------
    >>> canonical_labels(np.array([5, 5, 2, 9, 2])).tolist()
    [0, 0, 1, 2, 1]
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].reshape(labels.shape)


def _call_repr(func: str, params: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{func}({args})"


def add_history(out, source_attrs: dict, func: str, params: dict):
    """Give ``out`` the source's attrs (its own win) and append a history line for this call.

    The source's attrs carry the run's config and weights hash, so a measurement can be
    traced back to the simulation it came from.
    """
    from glomsim import __version__

    attrs = dict(source_attrs)
    attrs.update({k: v for k, v in out.attrs.items() if k != "history"})
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{now} glomsim {__version__}: analysis.{_call_repr(func, params)}"
    previous = attrs.get("history", "")
    attrs["history"] = f"{previous}\n{line}" if previous else line
    out.attrs = attrs
    return out


def is_islands(ds) -> bool:
    """Whether ``ds`` is a result of :func:`analysis.islands` (rather than a simulation)."""
    return (
        "labels" in ds.data_vars
        and tuple(ds["labels"].dims) == ("time", "level", "column")
        and "embedding" not in ds.data_vars
    )
