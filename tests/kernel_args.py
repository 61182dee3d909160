"""Small builders that call the numba primitives directly, without a plan: the grouped
arguments come from the engine's table builders, the buffers are sized here."""

import numpy as np

from glomsim._engine.nets import pack_net
from glomsim._engine.tables import attention_tables, maths_of
from glomsim._kernels import ids
from glomsim._kernels.attention import dense_block, key_rows, local_row, pack_rows
from glomsim._kernels.gemm import padded, panel_width
from glomsim._kernels.nets import net_rows


def net(cfg, weights, x, prefix, level):
    """One net of ``weights`` (``prefix`` "bu" or "td") on rows ``x`` by the primitive."""
    dt = x.dtype
    w1, b1, w2, b2 = (getattr(weights, f"{prefix}_{k}")[level].astype(dt)
                      for k in ("w1", "b1", "w2", "b2"))  # fmt: skip
    w1p, b1p, w2p = pack_net(w1, b1, w2, dt)
    h = np.empty((x.shape[0], b1p.shape[0]), dt)
    y = np.empty((x.shape[0], w2p.shape[0] * w2p.shape[2]), dt)
    net_rows(np.ascontiguousarray(x), w1p, b1p, w2p, ids.GELU, maths_of(dt), h, y)
    return y[:, : w2.shape[1]] + b2


def attend(cfg, x, level=0, step=1):
    """Level ``level``'s attention contribution of the state ``x`` (N, D) by the
    primitives, with the tables of the step ``step`` computes (sampled levels draw their
    lists for it): the norms, then each row over its CSR neighbours or the dense block."""
    t = attention_tables(cfg, step=step)
    maths = maths_of(x.dtype)
    n = x.shape[0]
    kernel, excl, p = t.kernels[level], t.self_excl[level], t.params[level]
    norms, sqnorms, inv_norms = (np.empty(n, x.dtype) for _ in range(3))
    key_rows(x, 0, n, kernel == ids.GLOM_PYTORCH, p[ids.TINY], norms, sqnorms, inv_norms)
    out = np.empty_like(x)
    if t.dense[level]:
        # the level packed for the products as the step's norm tasks do, in two pieces
        dt, (N, D) = x.dtype, x.shape
        W = panel_width(dt)
        keys = np.zeros((padded(N, dt) // W, D, W), dt)
        values = np.zeros((padded(D, dt) // W, N, W), dt)
        pack_rows(x, 0, n // 2, keys, values)
        pack_rows(x, n // 2, n, keys, values)
        scores = np.full((n, padded(n, dt)), np.nan, dt)  # as wide as whole panels
        wide = np.full((n, padded(D, dt)), np.nan, dt)
        dense_block(x, 0, kernel, excl, p, (norms, sqnorms, inv_norms), (keys, values), wide,
                    maths.fast, maths.poly, scores)  # fmt: skip
        out[:] = wide[:, :D]
    else:
        scores = np.empty(t.max_k, x.dtype)
        for i in range(n):
            local_row(x, i, t.indptr[level], t.indices, kernel, excl, p, norms, scores, out[i],
                      maths.fast, maths.poly)  # fmt: skip
    return out


def attend_lean(cfg, x, level=0):
    """:func:`attend` by the lean variants of the attention primitives (no contrastive
    kernel): the same numbers for every other kernel."""
    from glomsim._kernels import attention

    full = (attention.dense_block, attention.local_row)
    g = globals()
    g["dense_block"], g["local_row"] = attention.dense_block_lean, attention.local_row_lean
    try:
        return attend(cfg, x, level)
    finally:
        g["dense_block"], g["local_row"] = full
