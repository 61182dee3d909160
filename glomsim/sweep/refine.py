"""Adaptive sweeps: locate where a seed-mean measure crosses a value, by bisection rounds.

A spec with ``[refine]`` first runs its grid as any sweep (the store's root). Then, round
after round, every cell of the other axes (and every level of a per-level measure) has
its *bracket*: the first pair of neighbouring evaluated values of the refined axis between
which the measure's mean over seeds (and members) passes the ``crossing`` value (from
``>= crossing`` to ``< crossing`` or back). Each bracket wider than ``tolerance`` gets its
midpoint evaluated in the next round; the rounds stop when no bracket is wider than that,
or after ``max_rounds``. Adding points inside a bracket keeps the crossing inside one of
its halves, so recomputing "the first bracket" from every evaluated point is bisection.

Storage (a choice the contract leaves open): round ``r`` is a sweep of its own, in zip
mode over exactly its new points (cell values and midpoint), stored as a complete sweep
store at ``<store>/_refine/round_<r>`` (a subgroup, which ``xr.open_zarr`` of the root
does not read). Its spec, and so its content hash, is derived from the results of the
rounds before it alone, and results are bit-identical; so a killed refinement resumes
round by round exactly as any sweep does (the root first, then each round's store), with
nothing lost, duplicated or different. A round store whose hash is not the one derived
now (possible only after ``retry_failed`` changed a result) is replaced, with every round
after it. :func:`open_sweep` merges the root and the rounds into one Dataset whose
refined axis holds every evaluated value, sorted.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from .._validate import one_line
from . import _open
from . import store as st
from ._errors import FIRST_FEW, SweepIncomplete, SweepRunsFailed
from .spec import load_spec

__all__ = ["open_sweep", "run_refined", "first_crossing", "seed_means", "ABSENT"]

#: ``status`` of a point of the merged refined axis that a cell never evaluated.
ABSENT = -1
ROUNDS = "_refine"


# ----------------------------------------------------------------------------------------
# the crossing of a sequence: shared by the rounds and by critical()
# ----------------------------------------------------------------------------------------
def first_crossing(x, means, crossing: float):
    """(estimate, low, high) of the first crossing along the last axis of ``means``.

    ``x`` (P,) is sorted; ``means`` (..., P) is NaN where nothing was evaluated (such points
    are skipped). The bracket is the first pair of consecutive evaluated points whose
    values lie on either side of ``crossing`` (``>=`` against ``<``); the estimate is the
    linear interpolation inside it. NaN everywhere where no pair brackets the crossing.

    Examples
    --------
    >>> est, lo, hi = first_crossing(np.array([0.0, 1.0, 2.0]), np.array([5.0, 3.0, 1.0]), 2.0)
    >>> float(est), float(lo), float(hi)
    (1.5, 1.0, 2.0)
    """
    x = np.asarray(x, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n = means.shape[-1]
    valid = np.isfinite(means)
    idx = np.where(valid, np.arange(n), -1)
    last = np.maximum.accumulate(idx, axis=-1)
    prev = np.concatenate([np.full(last.shape[:-1] + (1,), -1), last[..., :-1]], axis=-1)
    prev0 = np.maximum(prev, 0)
    above = means >= crossing
    cand = valid & (prev >= 0) & (above != np.take_along_axis(above, prev0, -1))
    has = cand.any(axis=-1)
    j = cand.argmax(axis=-1)[..., None]
    i = np.take_along_axis(prev0, j, -1)
    lo, hi = x[i[..., 0]], x[j[..., 0]]
    ylo = np.take_along_axis(means, i, -1)[..., 0]
    yhi = np.take_along_axis(means, j, -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        est = lo + (crossing - ylo) * (hi - lo) / (yhi - ylo)
    nan = np.nan
    return np.where(has, est, nan), np.where(has, lo, nan), np.where(has, hi, nan)


def seed_means(ds, measure: str, level):
    """The refined measure's mean over seeds (and members) of done runs, NaN elsewhere."""
    values = ds[measure]
    if level is not None:
        values = values.sel(level=level)
    values = values.where(ds["status"] == st.DONE)
    return values.mean([d for d in ("seed", "member") if d in values.dims])


# ----------------------------------------------------------------------------------------
# reading: the root and its rounds as one Dataset
# ----------------------------------------------------------------------------------------
def _round_path(store, r: int) -> Path:
    return Path(store) / ROUNDS / f"round_{r:03d}"


def _rounds(store) -> list[Path]:
    out, r = [], 1
    while (_round_path(store, r) / "zarr.json").is_file():
        out.append(_round_path(store, r))
        r += 1
    return out


def open_sweep(store, *, check: bool = True):
    """Open a sweep store as a Dataset; a refined sweep with every evaluated point.

    Without ``[refine]`` this is :func:`glomsim.sweep.store.open_sweep`. With it, the grid
    and every refinement round are merged: the refined axis holds every value evaluated
    in any cell, sorted, and a (cell, value) that was not evaluated has ``status`` -1
    (absent) and fill values (NaN; -1 for integers). The attrs ``sweep_done``,
    ``sweep_failed``, ``sweep_pending``, ``sweep_runs`` and ``sweep_seconds`` count all
    stores, ``refine_rounds`` the rounds. Loaded into memory (a refined sweep keeps
    summaries only).

    Examples
    --------
    >>> import tempfile, os
    >>> from glomsim.sweep import run
    >>> spec = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 2},
    ...         "axes": {"top_down_delay": [1, 2]}, "scene": False}
    >>> path = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> _ = run(spec, path, client="sync", progress=False)
    >>> open_sweep(path).residual.dims
    ('top_down_delay', 'seed', 'level')
    """
    return _open_merged(store, check=check)


def _open_merged(store, *, check: bool, before: int | None = None):
    """The root merged with its rounds (those numbered below ``before`` only, if given:
    what round ``before`` is derived from)."""
    import tomllib

    root = _open.open_sweep(store, check=check)
    refine = tomllib.loads(root.attrs.get("sweep_spec", "")).get("refine")
    if refine is None:
        return root
    paths = _rounds(store)[: None if before is None else before - 1]
    rounds = [_open.open_sweep(p, check=check).load() for p in paths]
    return _merge(root.load(), rounds, refine["axis"])


def _merge(root, rounds, axis: str):
    import xarray as xr

    names = json.loads(root.attrs["sweep_axes"])
    x_root = root[axis].values.astype(np.float64)
    xs = np.unique(np.concatenate([x_root] + [r[axis].values.astype(np.float64) for r in rounds]))
    where = {float(v): i for i, v in enumerate(xs)}
    index = {a: {v: i for i, v in enumerate(root[a].values.tolist())} for a in names}

    def cell(values) -> tuple[int, ...]:
        return tuple(
            where[float(v)] if a == axis else index[a][v]
            for a, v in zip(names, values, strict=True)
        )

    cells = [[cell(c) for c in zip(*(r[a].values.tolist() for a in names), strict=True)]
             for r in rounds]  # fmt: skip
    root_pos = [where[float(v)] for v in x_root]
    data = {}
    for name, var in root.data_vars.items():
        k = var.dims.index(axis)
        shape = list(var.shape)
        shape[k] = len(xs)
        fill = ABSENT if name == "status" else ("" if var.dtype == object else st._fill(var.dtype))
        arr = np.full(shape, fill, dtype=var.dtype)
        arr[(slice(None),) * k + (root_pos,)] = var.values
        for r, cell in zip(rounds, cells, strict=True):
            values = r[name].values
            for p, c in enumerate(cell):
                v = values[p]
                arr[c + tuple(slice(0, n) for n in v.shape)] = v
        attrs = dict(var.attrs)
        if name == "status":
            attrs.update(flag_values=[ABSENT, 0, 1, 2], flag_meanings="absent pending done failed")
        data[name] = (var.dims, arr, attrs)
    coords = {c: root.coords[c].variable for c in root.coords if c != axis}
    coords[axis] = ((axis,), xs, root[axis].attrs)
    out = xr.Dataset(data, coords=coords, attrs=dict(root.attrs))
    status = out["status"].values
    parts = [root] + rounds
    out.attrs.update(
        sweep_done=int((status == st.DONE).sum()),
        sweep_failed=int((status == st.FAILED).sum()),
        sweep_pending=int((status == st.PENDING).sum()),
        sweep_runs=int(sum(p.attrs["sweep_runs"] for p in parts)),
        sweep_skipped=int(sum(p.attrs.get("sweep_skipped", 0) for p in parts)),
        sweep_seconds=round(float(sum(p.attrs.get("sweep_seconds", 0.0) for p in parts)), 3),
        refine_rounds=len(rounds),
    )
    return out


# ----------------------------------------------------------------------------------------
# running: the grid, then rounds of midpoints
# ----------------------------------------------------------------------------------------
def next_points(spec, ds) -> list[tuple[tuple[int, ...], float]]:
    """The (cell, midpoint) pairs of the next round: one per distinct bracket wider than
    the tolerance; cells are positions along the other axes, in the spec's order."""
    r = spec.refine
    means = seed_means(ds, r["measure"], r["level"])
    means = means.transpose(*[a.name for a in spec.axes if a.name != r["axis"]], ..., r["axis"])
    _, lo, hi = first_crossing(ds[r["axis"]].values, means.values, r["crossing"])
    n_other = len(spec.axes) - 1
    out = set()
    for pos in zip(*np.nonzero(np.isfinite(lo) & (hi - lo > r["tolerance"])), strict=True):
        a, b = float(lo[pos]), float(hi[pos])
        mid = (a + b) / 2
        if a < mid < b:  # else the bracket is as narrow as floats go
            out.add((tuple(int(i) for i in pos[:n_other]), mid))
    return sorted(out)


def round_spec(spec, points, r: int):
    """The spec of round ``r``: zip mode over its points, no ``[refine]``."""
    other = [a for a in spec.axes if a.name != spec.refine["axis"]]
    axes = []
    for a in spec.axes:
        if a.name == spec.refine["axis"]:
            values = tuple(mid for _, mid in points)
        else:
            k = other.index(a)
            values = tuple(a.values[cell[k]] for cell, _ in points)
        axes.append(dataclasses.replace(a, values=values))
    name = f"{spec.name} refine round {r}"
    derived = dataclasses.replace(spec, mode="zip", axes=tuple(axes), refine=None, name=name)
    return load_spec(derived.to_dict())


def _stored_hash(path: Path):
    try:
        return json.loads((path / "zarr.json").read_text())["attributes"].get("sweep_hash")
    except (OSError, ValueError, KeyError):
        return None


def _drop_rounds_from(store, r: int) -> None:
    """Delete rounds r, r+1, ... (the highest first, so a kill leaves a prefix)."""
    for p in reversed([p for k, p in enumerate(_rounds(store), 1) if k >= r]):
        shutil.rmtree(p)


def run_refined(spec, store, *, client, options, sweep, start_cluster):
    """Run a ``[refine]`` sweep: the grid, then bisection rounds; the merged Dataset.

    Called by :func:`glomsim.sweep.run` with the store's lock held. ``options`` holds
    ``workers``, ``progress``, ``resume`` and ``retry_failed`` as ``run`` got them;
    ``sweep(spec, store, layout, client, workers, progress, resume, retry_failed)`` runs
    one sweep (each round shows its own progress bar), and ``start_cluster(workers)``
    gives (cluster, client) for the embedded cluster, started once for every round.
    """
    o = options
    cluster = None
    if client is None:
        cluster, client = start_cluster(o["workers"])
    t0 = time.perf_counter()
    try:
        args = (client, o["workers"], o["progress"])
        sweep(spec, store, st.Layout(spec), *args, o["resume"], o["retry_failed"])
        import zarr

        zarr.open_group(str(Path(store) / ROUNDS), mode="a")  # the rounds' parent group
        for r in range(1, spec.refine["max_rounds"] + 2):
            ds = _open_merged(store, check=False, before=r)
            if (ds["status"] == st.PENDING).any():
                break  # the next round needs every result before it
            points = [] if r > spec.refine["max_rounds"] else next_points(spec, ds)
            if not points:
                _drop_rounds_from(store, r)  # rounds of an older, longer chain
                break
            rspec = round_spec(spec, points, r)
            path = _round_path(store, r)
            if path.exists() and _stored_hash(path) != rspec.content_hash():
                _drop_rounds_from(store, r)
            sweep(rspec, str(path), st.Layout(rspec), *args, True, o["retry_failed"])
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    ds = open_sweep(store, check=False)
    ds.attrs["refine_seconds"] = round(time.perf_counter() - t0, 3)
    _report(spec, ds, store)
    return ds


def _labels(ds, where) -> str:
    dims = ds["status"].dims
    shown = [", ".join(f"{d}={ds[d].values[i]}" for d, i in zip(dims, pos, strict=True))
             for pos in where[:FIRST_FEW]]  # fmt: skip
    return "; ".join(shown) + ("; ..." if len(where) > FIRST_FEW else "")


def _report(spec, ds, store) -> None:
    """Raise while runs are pending (a round cannot be derived from missing data); warn
    when runs failed (their seeds are left out of the means)."""
    status = ds["status"].values
    pending = np.argwhere(status == st.PENDING)
    failed = np.argwhere(status == st.FAILED)
    n = int((status != ABSENT).sum())
    if len(pending):
        raise SweepIncomplete(
            f"sweep {spec.name!r}: {len(pending)} of {n} runs are still pending "
            f"({_labels(ds, pending)}) and {len(failed)} failed: their workers were lost, so "
            f"the refinement stopped; run the sweep again on {store!r} to resume it",
            dataset=ds,
            pending=pending.tolist(),
            failed=failed.tolist(),
        )
    if len(failed):
        first = ds["error"].values[tuple(failed[0])]
        warnings.warn(
            SweepRunsFailed(
                f"sweep {spec.name!r}: {len(failed)} of {n} runs failed, e.g. "
                f"{one_line(_labels(ds, failed[:1]) + ': ' + str(first), 300)}; the means "
                "that locate the crossing leave them out (retry_failed=True runs them again)"
            ),
            stacklevel=4,
        )
