"""The nets of a run stacked for the fused step, cached by the weights' content."""

from __future__ import annotations

import numpy as np

from .._kernels.args import Nets
from .._kernels.ids import ACTIVATION_IDS, GELU
from ..weights import NET_ARRAYS
from .cache import BoundedCache

__all__ = ["stacked_nets", "activation_ids"]

#: only shared weights, up to a few sets in turn (sweeps, benchmarks) and 256 MB in all:
#: per-member ensembles are restacked on every call instead of kept alive
_STACKED = BoundedCache(max_items=4, max_bytes=256 * 2**20, sizeof=lambda hit: hit[1])


def stacked_nets(wlist: tuple, dt: np.dtype, splits: int) -> Nets:
    """The nets of ``wlist`` stacked along a member axis in the run's dtype, with the hidden
    layer cut into ``splits`` contiguous chunks (w1 (M, L, S, D, H/S), b1 (M, L, S, H/S),
    w2 (M, L, S, H/S, D), b2 (M, L, D)), and the positional codes likewise; cached by
    content hash (weights are immutable values): converting dim-256 nets to float32 on
    every call had cost ~5 ms a run."""
    key = (tuple(w.content_hash() for w in wlist), dt.str, splits)
    hit = _STACKED.get(key)
    if hit is not None:
        return hit[0]
    nets = _stack(wlist, dt, splits)
    size = sum(a.nbytes for a in nets if isinstance(a, np.ndarray))
    if len(wlist) == 1 and size <= _STACKED.max_bytes:
        _STACKED.put(key, (nets, size))
    return nets


def activation_ids(cfg) -> np.ndarray:
    """``Nets.act`` of a config: the ids of its bottom-up and top-down nets' activations
    (the stacked nets hold GELU's, and are cached by the weights alone: a plan puts its
    config's in with ``stacked_nets(...)._replace(act=activation_ids(cfg))``)."""
    names = (cfg.bottom_up_activation, cfg.top_down_activation)
    return np.array([ACTIVATION_IDS[name] for name in names], dtype=np.int64)


def _stack(wlist, dt, splits) -> Nets:
    pos = np.ascontiguousarray(np.stack([w.pos_code for w in wlist]), dtype=dt)
    act = np.array([GELU, GELU], dtype=np.int64)  # bottom-up, top-down
    if wlist[0].identity:
        z5, z4, z3 = (np.zeros((1,) * n, dtype=dt) for n in (5, 4, 3))
        return Nets(z5, z4, z5, z3, z5, z4, z5, z3, pos, True, act)
    arrays = []
    for k in NET_ARRAYS:
        a = np.stack([getattr(w, k) for w in wlist])
        if k.endswith("w1"):  # (M, L, D, H) -> (M, L, S, D, H/S)
            m, n, d, h = a.shape
            a = a.reshape(m, n, d, splits, h // splits).transpose(0, 1, 3, 2, 4)
        elif k.endswith("b1"):  # (M, L, H) -> (M, L, S, H/S)
            m, n, h = a.shape
            a = a.reshape(m, n, splits, h // splits)
        elif k.endswith("w2"):  # (M, L, H, D) -> (M, L, S, H/S, D)
            m, n, h, d = a.shape
            a = a.reshape(m, n, splits, h // splits, d)
        arrays.append(np.ascontiguousarray(a, dtype=dt))
    return Nets(*arrays, pos, False, act)
