"""The nets of a run stacked for the fused step, cached by the weights' content."""

from __future__ import annotations

import numpy as np

from .._kernels.args import Nets
from .._kernels.gemm import pack_panels, padded
from .._kernels.ids import ACTIVATION_IDS, GELU
from ..weights import NET_ARRAYS
from .cache import BoundedCache

__all__ = ["stacked_nets", "activation_ids", "pack_net"]

#: only shared weights, up to a few sets in turn (sweeps, benchmarks) and 256 MB in all:
#: per-member ensembles are restacked on every call instead of kept alive
_STACKED = BoundedCache(max_items=4, max_bytes=256 * 2**20, sizeof=lambda hit: hit[1])


def stacked_nets(wlist: tuple, dt: np.dtype, splits: int) -> Nets:
    """The nets of ``wlist`` stacked along a member axis in the run's dtype, with the hidden
    layer cut into ``splits`` contiguous chunks and each chunk packed for the step's
    products by :func:`pack_net` (w1 (M, L, S, P1, D, W), b1 (M, L, S, Hp), w2 (M, L, S,
    P2, Hp, W), b2 (M, L, D)), and the positional codes likewise; cached by content hash
    (weights are immutable values): converting dim-256 nets to float32 on every call had
    cost ~5 ms a run."""
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
        z6, z4, z3 = (np.zeros((1,) * n, dtype=dt) for n in (6, 4, 3))
        return Nets(z6, z4, z6, z3, z6, z4, z6, z3, pos, True, act)
    arrays = {k: np.stack([getattr(w, k) for w in wlist]) for k in NET_ARRAYS}
    out = []
    for net in ("bu", "td"):
        w1, b1, w2, b2 = (arrays[f"{net}_{k}"] for k in ("w1", "b1", "w2", "b2"))
        m, n, d, h = w1.shape  # (M, L, D, H) -> (M, L, S, D, H/S), and so on
        w1 = w1.reshape(m, n, d, splits, h // splits).transpose(0, 1, 3, 2, 4)
        b1 = b1.reshape(m, n, splits, h // splits)
        w2 = w2.reshape(m, n, splits, h // splits, d)
        out += [*pack_net(w1, b1, w2, dt), np.ascontiguousarray(b2, dtype=dt)]
    return Nets(*out, pos, False, act)


def pack_net(w1, b1, w2, dt) -> tuple:
    """One net's weights, w1 (..., D, H), b1 (..., H), w2 (..., H, D), as the step's
    products read them (:mod:`glomsim._kernels.gemm`), in dtype ``dt``: w1 in panels
    (..., P1, D, W), b1 padded with zeros to Hp = P1 W hidden units, w2 with Hp rows (the
    padding's zero) in panels (..., P2, Hp, W). The padded hidden units compute
    act(0) and the padded rows of w2 drop them, so the net's outputs are exactly those of
    the weights as given (the first D of P2 W columns).

    Examples
    --------
    >>> w1, b1, w2 = np.ones((3, 20)), np.ones(20), np.ones((20, 3))
    >>> from glomsim._kernels.gemm import panel_width
    >>> W = panel_width(np.float32)  # 16 or 32 (256- or 512-bit vectors)
    >>> [a.shape for a in pack_net(w1, b1, w2, np.float32)] == [(-(-20 // W), 3, W),
    ...     (padded(20, np.float32),), (1, padded(20, np.float32), W)]
    True
    """
    h = w1.shape[-1]
    hp = padded(h, dt)
    b1p = np.zeros((*b1.shape[:-1], hp), dtype=dt)
    b1p[..., :h] = b1
    w2p = np.zeros((*w2.shape[:-2], hp, w2.shape[-1]), dtype=dt)
    w2p[..., :h, :] = w2
    return pack_panels(w1, dt), b1p, pack_panels(w2p, dt)
