"""The pool of idle plans: a run reuses the plan an earlier run of the same key left."""

from __future__ import annotations

import contextlib

from .cache import BoundedCache
from .plan import Plan

__all__ = ["planned", "forget_plans", "idle_plans"]

_PLAN_MAX_BYTES = 32 * 2**20  # buffers of one idle plan
#: idle plans per key (config, weights by content, member count): at most eight keys,
#: least recently stored dropped first, and 64 MB of buffers in all
_POOL = BoundedCache(
    max_items=8, max_bytes=64 * 2**20, sizeof=lambda plans: sum(p.nbytes() for p in plans)
)


@contextlib.contextmanager
def planned(cfg, weights, members: int = 1):
    """A :class:`Plan` for one run: an idle one left by an earlier run with the same key
    (config, weights by content, member count), or a new one. After a run that
    returned, it is kept for the next: at most two per key and eight keys, 32 MB of
    buffers each and 64 MB in all; per-member weights never. Planning and building its
    tables was ~0.1 ms of a ~3 ms small run, and sweeps make thousands of runs. Each run
    holds its plan alone, so concurrent runs never share buffers. An idle plan keeps no
    nets (those live in ``stacked_nets``'s capped cache). Plans do not depend on the
    thread count: their per-thread scratch has a slot for every thread numba can run."""
    key = None
    if not isinstance(weights, (list, tuple)):
        key = (cfg, weights.content_hash(), members)
    plan = None
    if key is not None:
        with _POOL.lock:
            idle = _POOL.get(key)
            if idle:
                plan = idle.pop()
    if plan is None:
        plan = Plan(cfg, weights, members)
    else:
        plan.attach(weights)
    yield plan
    # only after a run that returned (a failed one may have left its buffers anyhow)
    if key is not None and plan.nbytes() <= _PLAN_MAX_BYTES:
        plan.detach()
        with _POOL.lock:
            idle = _POOL.pop(key, [])
            if len(idle) < 2:
                idle.append(plan)
            _POOL.put(key, idle)


def forget_plans() -> None:
    """Drop every idle plan (the benchmark does before measuring a run's peak memory)."""
    _POOL.clear()


def idle_plans() -> list:
    """The keys (config, weights hash, members) that have idle plans."""
    return _POOL.keys()
