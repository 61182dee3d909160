"""How much memory a sweep's task needs at least, checked against the machine at spec check.

A task simulates the runs of one sweep point in its batch as one ensemble, and every run
records its trajectory (``keep.record_every`` thins it) because the measures read it:
``recorded steps x levels x columns x dim x itemsize`` bytes per run. The measures then
need at least one more trajectory's worth (the residual's differences), and kept
trajectories one more (the copy written to the store). The sum is a lower bound: a spec
whose lower bound exceeds the machine's memory cannot run, and is refused before any work.
"""

from __future__ import annotations

import os

import numpy as np

from ._fields import spec_error

__all__ = ["machine_bytes", "task_bytes", "check_memory"]

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_bytes() -> int | None:
    """Physical memory of this machine, or of its container's limit when that is smaller;
    None when unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    for path in _CGROUP_LIMITS:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def _recorded(steps: int, every: int) -> int:
    # multiples of every, and the last step
    return steps // every + 1 + (steps % every != 0)


def _run_bytes(cfg, every: int) -> int:
    itemsize = np.dtype(cfg.dtype).itemsize
    return _recorded(cfg.steps, every) * cfg.levels * cfg.n_columns * cfg.dim * itemsize


def task_bytes(spec) -> tuple[int, dict]:
    """A lower bound of the largest task's memory in bytes, and what it is made of."""
    every = spec.keep["record_every"]
    extra = 1 + bool(spec.keep["trajectories"])
    worst, parts = 0, {}
    for batch in spec.batches():
        groups: dict[int, int] = {}
        for index in batch:
            point = spec.unravel(index)[0]
            groups[point] = groups.get(point, 0) + 1
        for point, size in groups.items():
            try:
                cfg = spec.settings(point)["config"]
            except ValueError:
                continue
            need = _run_bytes(cfg, every) * (size + extra)
            if need > worst:
                worst = need
                parts = {"cfg": cfg, "runs": size, "extra": extra, "every": every}
    return worst, parts


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(spec, available: int | None = None) -> None:
    """Refuse a spec whose largest task needs more memory than the machine has.

    Raises a :class:`~glomsim.sweep.SpecError` naming the fields that set the size and
    what would make it fit.
    """
    available = machine_bytes() if available is None else available
    if not available:
        return
    need, p = task_bytes(spec)
    if need <= available:
        return
    cfg = p["cfg"]
    steps = _recorded(cfg.steps, p["every"])
    what = (
        f"a task needs at least {_gib(need)}: {p['runs']} run(s) at once, each recording "
        f"{steps} steps x {cfg.levels} levels x {cfg.n_columns} columns x {cfg.dim} "
        f"features of {cfg.dtype}, plus {p['extra']} more for measuring"
        + (" and writing the trajectory" if p["extra"] > 1 else "")
        + f" (base.steps, base.levels, base.grid, base.dim, base.dtype); this machine has "
        f"{_gib(available)}"
    )
    fixes = "record fewer steps (keep.record_every), run fewer (base.steps)"
    if spec.keep["trajectories"]:
        fixes += ", keep summaries only (keep.trajectories = false)"
    if p["runs"] > 1:
        fixes += ", put fewer runs in a task (sweep.batch_size = 1)"
    raise spec_error("memory", f"{what}; {fixes}, or shrink the config")
