"""What a run needs to fit: memory on this machine, and values in the run's dtype.

:func:`check_run_memory` estimates, from the sizes alone and before anything is
allocated, the bytes a run will hold (its recorded states, the engine's buffers and
tables, the nets and the inputs) and fails in one line when they exceed the memory this
machine has available, naming the fields and the alternatives that would fit
(``summaries_only``, ``record_every``). :func:`cast_checked` casts an array to the run's
dtype and fails, naming the field, when a finite value overflows in the cast (``1e39`` in
float32).

Examples
--------
>>> import glomsim as gs
>>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=10)
>>> est = estimate_run_memory(cfg)
>>> est.states == 11 * 2 * 9 * 4 * 4
True
>>> check_run_memory(cfg, 10, 1, False, 1).total == est.total
True
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MemoryEstimate",
    "RunMemoryError",
    "estimate_run_memory",
    "available_memory",
    "check_run_memory",
    "cast_checked",
    "format_bytes",
    "MEMORY_CHECK_ENV",
]

#: ``GLOMSIM_MEMORY_CHECK=0`` turns :func:`check_run_memory` off (the estimate is rough:
#: for a machine with swap, or a user who knows better).
MEMORY_CHECK_ENV = "GLOMSIM_MEMORY_CHECK"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run holds at its peak, by what holds them.

    ``states``: the recorded states, the ring of the last ``top_down_delay + 1`` states
    and the change scratch; ``summaries``: the per-step ``rms`` and ``change``;
    ``buffers``: the engine's buffers, per-thread scratch and attention tables;
    ``weights``: the nets (float64, and stacked in the run's dtype) and positional codes;
    ``inputs``: tokens (and a scene's image)."""

    states: int
    summaries: int
    buffers: int
    weights: int
    inputs: int

    @property
    def total(self) -> int:
        return self.states + self.summaries + self.buffers + self.weights + self.inputs


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``format_bytes(3 * 2**30)`` is ``'3.0 GiB'``.

    Examples
    --------
    >>> format_bytes(1536), format_bytes(97.7 * 2**30)
    ('1.5 KiB', '97.7 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover (the loop returns at PiB)


def _records(steps: int, record_every: int, summaries_only: bool) -> int:
    """States kept in the result (as the engine's recorders keep them)."""
    if summaries_only:
        return 1 + (steps > 0)
    return len(range(0, steps + 1, record_every)) + (steps % record_every != 0)


def _neighbours(cfg, radius: float) -> int:
    """Neighbours of one column within ``radius`` (grid units), at most all columns: the
    lattice points of the closed ball, cut to the grid (positions are counted as if on a
    unit grid: a rough figure)."""
    n = cfg.n_columns
    if math.isinf(radius):
        return n
    rows, cols = cfg.grid if cfg.grid is not None else (n, n)
    reach = int(math.floor(radius))
    count = 0
    for dy in range(-min(reach, rows - 1), min(reach, rows - 1) + 1):
        half = int(math.floor(math.sqrt(max(radius * radius - dy * dy, 0.0))))
        count += 2 * min(half, cols - 1) + 1
        if count >= n:
            return n
    return min(count, n)


def _attention_bytes(cfg, rows: int, threads: int, itemsize: int, members: int = 1) -> int:
    """Attention tables (CSR neighbour lists, int64, and the pairs they are built from)
    and the dense path's per-thread scores and attention rows (padded to whole panels)
    and its packed states (keys and values of every member and level)."""
    from ._engine.tables import is_dense
    from ._kernels.gemm import padded

    n = cfg.n_columns
    sparse = dense = 0
    for level in range(cfg.levels):
        att = cfg.attention_at(level)
        if is_dense(att):
            dense = 1
        else:
            sparse += n * _neighbours(cfg, att.radius)
    # indices (8 bytes an entry), and the rows/cols/order temporaries of building them
    tables = 8 * sparse * 4 + 8 * cfg.levels * (n + 1)
    if not dense:
        return tables + threads * rows * itemsize
    np_, dp = padded(n, cfg.np_dtype), padded(cfg.dim, cfg.np_dtype)
    packed = members * cfg.levels * (np_ * cfg.dim + dp * n)
    # scores (rows, N padded) and the attention rows' padding (the rows themselves are
    # counted with the other scratch)
    return tables + (threads * rows * (np_ + dp - cfg.dim) + packed) * itemsize


def _weights_bytes(cfg, weights, members: int) -> int:
    """The nets in float64 (GlomWeights) and stacked in the run's dtype, and the
    positional codes; ``weights`` None counts one set of random (MLP) weights."""
    from ._kernels.gemm import padded

    wlist = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    identity = weights is not None and all(getattr(w, "identity", False) for w in wlist)
    L, N, D, H = cfg.levels, cfg.n_columns, cfg.dim, cfg.hidden_width
    sets = len(wlist)
    nets = 0 if identity else 2 * L * (2 * D * H + H + D)
    # stacked: packed in panels, hidden units and outputs padded (_engine.nets.pack_net)
    hp, dp = padded(H, cfg.np_dtype), padded(D, cfg.np_dtype)
    stacked = 0 if identity else 2 * L * (D * hp + hp + hp * dp + D)
    per_set = (nets + N * D + L * D) * 8 + (stacked + N * D + L * D) * cfg.np_dtype.itemsize
    return sets * per_set


def estimate_run_memory(cfg, steps=None, record_every=1, summaries_only=False, members=1, *,
                        weights=None) -> MemoryEstimate:  # fmt: skip
    """The bytes a run of ``cfg`` holds at its peak, from the sizes alone (nothing is
    allocated).

    Parameters
    ----------
    cfg : GlomConfig
    steps : int, optional
        Default ``cfg.steps``.
    record_every : int
    summaries_only : bool
    members : int
        Ensemble members (1 for :func:`glomsim.simulate`).
    weights : GlomWeights or sequence of GlomWeights, optional
        The run's weights, when they exist (identity weights have no nets); default one
        set of random weights.

    Returns
    -------
    MemoryEstimate

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=5, dim=64, grid=(64, 64), steps=20000)
    >>> format_bytes(estimate_run_memory(cfg).states)
    '97.7 GiB'
    >>> format_bytes(estimate_run_memory(cfg, summaries_only=True).states)
    '25.0 MiB'
    """
    from ._engine.split import hidden_splits, work_split
    from ._kernels.gemm import padded
    from .runtime import max_threads

    steps = cfg.steps if steps is None else int(steps)
    M, L, N, D, H = members, cfg.levels, cfg.n_columns, cfg.dim, cfg.hidden_width
    size = cfg.np_dtype.itemsize
    state = M * L * N * D * size
    direct = record_every == 1 and not summaries_only
    ring = 0 if direct else (cfg.top_down_delay + 1) * state
    scratch = state if summaries_only else 0  # E_t - E_{t-1}
    states = _records(steps, record_every, summaries_only) * state + ring + scratch
    summaries = 2 * (steps + 1) * M * L * 8  # every run keeps rms and change per step
    # the engine's buffers (glomsim._engine.tables.buffers) for MLP weights
    split = work_split(cfg, M, True, L * N * D * size)
    splits = hidden_splits(N, H)
    threads = max_threads()
    net_rows = split.group * split.block
    netbuf = 2 * splits * L * M * N * D * size
    norms = 3 * M * L * N * size
    hp, dp = padded(H // splits, cfg.np_dtype), padded(D, cfg.np_dtype)  # whole panels
    per_thread = threads * (net_rows * (D + hp + dp) + split.rows * D) * size
    small = 64 * 1024  # kernel ids, parameter rows, flags, task tables: a few KiB
    buffers = netbuf + norms + per_thread + _attention_bytes(cfg, split.rows, threads, size, M)
    buffers += small + L * M * -(-N // split.rows)  # and the per-task non-finite flags
    # tokens in the run's dtype, one float64 copy (a scene's or the caller's)
    inputs = M * N * D * (size + 8)
    return MemoryEstimate(states, summaries, buffers, _weights_bytes(cfg, weights, M), inputs)


def _cgroup_free() -> int | None:
    """The memory a cgroup (v2) limit leaves this process, when there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation on this machine (the OS's
    "available" figure, within a container's limit), or None when unknown."""
    free = None
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unsupported: the OS's page counts
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    limit = _cgroup_free()
    if limit is not None:
        free = limit if free is None else min(free, limit)
    return free


def _shape(cfg, steps: int, members: int) -> str:
    layout = (
        f"grid={cfg.grid} ({cfg.n_columns} columns)"
        if cfg.grid is not None
        else f"{cfg.n_columns} positions"
    )
    lead = f"members={members}, " if members != 1 else ""
    return f"{lead}steps={steps}, levels={cfg.levels}, {layout}, dim={cfg.dim}, {cfg.dtype}"


def _alternatives(cfg, steps, record_every, summaries_only, members, weights, free) -> str:
    """What would fit instead: the lighter recording modes, or smaller sizes."""
    if summaries_only:
        base = estimate_run_memory(cfg, steps, 1, True, members, weights=weights)
        if base.total <= free:  # pragma: no cover (summaries_only is the lightest mode)
            return ""
        return "reduce grid, dim, levels or members (summaries_only is the lightest mode)"
    light = estimate_run_memory(cfg, steps, 1, True, members, weights=weights)
    if light.total > free:
        return (
            f"even summaries_only=True (--summaries-only) needs {format_bytes(light.total)}: "
            "reduce grid, dim, levels or members"
        )
    fixed = light.total - light.states - light.summaries
    state = members * cfg.levels * cfg.n_columns * cfg.dim * cfg.np_dtype.itemsize
    ring = (cfg.top_down_delay + 1) * state
    room = (free - fixed - ring) // state  # states that fit beside everything else
    hint = f"summaries_only=True (--summaries-only) needs {format_bytes(light.total)}"
    if room >= 2:
        k = max(record_every + 1, math.ceil(steps / max(room - 2, 1)))
        if k <= steps:
            hint += f", record_every={k} (--record-every {k}) keeps {_records(steps, k, False)}"
            hint += " states"
    return hint + "; or reduce steps, grid, dim or levels"


class RunMemoryError(MemoryError, ValueError):
    """A run that would not fit in this machine's memory: a MemoryError (what the
    allocation would have raised) and a ValueError (bad input, found before any work)."""


#: Runs estimated below this never ask the system what is available: any machine that
#: runs glomsim has it, and asking costs ~50 us, 2% of a small sweep run.
_SMALL = 256 * 2**20


def check_run_memory(cfg, steps, record_every, summaries_only, members, *, weights=None,
                     available=None) -> MemoryEstimate:  # fmt: skip
    """Fail in one line, before anything is allocated, when a run would need more memory
    than this machine has available; else return the estimate.

    The message names the run's sizes, what the run needs and what is available, and
    the alternatives that would fit (``summaries_only=True``, a larger ``record_every``,
    smaller sizes). ``GLOMSIM_MEMORY_CHECK=0`` turns the check off.

    Parameters
    ----------
    cfg : GlomConfig
    steps : int or None
        None: ``cfg.steps``.
    record_every : int
    summaries_only : bool
    members : int
    weights : GlomWeights or sequence of GlomWeights, optional
        As in :func:`estimate_run_memory`.
    available : int, optional
        Bytes available; default :func:`available_memory`.

    Raises
    ------
    RunMemoryError
        With the one-line message: a MemoryError (what the allocation would have
        raised) and a ValueError (bad input, so the CLI prints it on one line with exit
        code 2).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=5, dim=64, grid=(64, 64), steps=20000)
    >>> check_run_memory(cfg, None, 1, False, 1, available=2**30)
    Traceback (most recent call last):
    ...
    glomsim._memory.RunMemoryError: this run needs about 97.7 GiB ...
    """
    steps = cfg.steps if steps is None else int(steps)
    est = estimate_run_memory(cfg, steps, record_every, summaries_only, members, weights=weights)
    if os.environ.get(MEMORY_CHECK_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return est
    if available is None and est.total <= _SMALL:
        return est  # small runs (sweeps make thousands) skip asking the system
    free = available_memory() if available is None else int(available)
    if free is None or est.total <= free:
        return est
    alternatives = _alternatives(cfg, steps, record_every, summaries_only, members, weights,
                                 free)  # fmt: skip
    raise RunMemoryError(
        f"this run needs about {format_bytes(est.total)} ({_shape(cfg, steps, members)}: "
        f"recorded states {format_bytes(est.states)}, buffers and tables "
        f"{format_bytes(est.buffers)}, weights {format_bytes(est.weights)}) but "
        f"{format_bytes(free)} is available; {alternatives} "
        f"({MEMORY_CHECK_ENV}=0 skips this check)"
    )


def cast_checked(name: str, values, dtype) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype``; a ValueError naming ``name``
    when a finite value does not fit in ``dtype`` (it would become infinite).

    Examples
    --------
    >>> cast_checked("init", [1.0, 2.0], "float32").dtype
    dtype('float32')
    >>> cast_checked("init", [1.0, 1e39], "float32")
    Traceback (most recent call last):
    ...
    ValueError: init=1e+39 (at index (1,)) is not allowed with dtype='float32'; allowed: a magnitude <= 3.4028235e+38 (or dtype='float64')
    """
    arr = np.asarray(values)
    dt = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dt)
    narrowing = arr.dtype.kind == "f" and dt.kind == "f" and arr.dtype.itemsize > dt.itemsize
    if not narrowing or out.size == 0:
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        total = out.sum()
    if math.isfinite(total):  # one pass; an overflow of the sum alone is no error
        return out
    bad = np.isinf(out) & np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}={float(arr[where]):g} (at index {where}) is not allowed with "
            f"dtype={dt.name!r}; allowed: a magnitude <= {float(np.finfo(dt).max):.8g} (or "
            "dtype='float64')"
        )
    return out
