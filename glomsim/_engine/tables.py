"""The kernels' fixed arguments of a config: attention tables (kernel ids, parameter rows,
neighbour lists), the normalisation and the dtype's constants (:mod:`glomsim._kernels.args`).

These are also the small builders tests use to call the kernels directly.
"""

from __future__ import annotations

import math

import numpy as np

from .._kernels import ids
from .._kernels.args import AttentionTables, Buffers, Maths, Norm, Scratch
from .._kernels.gemm import aligned_empty, padded, panel_width
from .._kernels.nets import POLY_F32
from ..config import GlomConfig
from ..neighbours import attention_csr
from ..reference import GLOM_PYTORCH_SELF_SCORE, LAYERNORM_EPS, bounded_tolerance
from ..runtime import max_threads

__all__ = ["attention_tables", "sampled_lists", "samples", "norm_of", "maths_of", "params_of",
           "is_dense", "buffers"]  # fmt: skip


def params_of(att, dim: int, dtype) -> np.ndarray:
    """The parameter row (``ids.PARAM_SLOTS``) of one level's ``Attention``, the
    contrastive kernel's threshold and repulsion included."""
    bound = (att.epsilon or 0.0) * (1.0 + bounded_tolerance(dtype))
    return ids.level_params(dtype, dim, att.beta, bound, GLOM_PYTORCH_SELF_SCORE,
                            threshold=att.threshold, repulsion=att.repulsion)  # fmt: skip


def is_dense(att) -> bool:
    """Whether a level runs the dense (global) attention path: a global ball, not the
    bounded kernel, not sampled (a sampled level attends over its lists of the step)."""
    return math.isinf(att.radius) and att.kernel != "bounded" and att.sample is None


def samples(cfg: GlomConfig) -> bool:
    """Whether some level of ``cfg`` draws its neighbourhoods afresh every step."""
    return any(cfg.attention_at(level).sample is not None for level in range(cfg.levels))


def attention_tables(cfg: GlomConfig, step: int = 1) -> AttentionTables:
    """Every level's attention: ids, parameters, path and CSR neighbour lists (the lists
    of all levels concatenated, ``indptr`` offset into them), those of sampled levels as
    drawn for the step ``step`` computes (:func:`sampled_lists` redraws them)."""
    dt = cfg.np_dtype
    atts = [cfg.attention_at(level) for level in range(cfg.levels)]
    indptr, indices, max_k = _lists(cfg, atts, step)
    return AttentionTables(
        kernels=np.array([ids.KERNEL_IDS[a.kernel] for a in atts], dtype=np.int64),
        self_excl=np.array([not a.include_self for a in atts], dtype=np.bool_),
        params=np.stack([params_of(a, cfg.dim, dt) for a in atts]),
        dense=np.array([is_dense(a) for a in atts], dtype=np.bool_),
        indptr=indptr,
        indices=indices,
        max_k=max_k,
    )


def sampled_lists(cfg: GlomConfig, tables: AttentionTables, step: int) -> AttentionTables:
    """``tables`` with the neighbour lists of the step ``step`` computes (E[step]): each
    sampled level's drawn for (``cfg.seed``, ``step``, level), the others' fixed."""
    atts = [cfg.attention_at(level) for level in range(cfg.levels)]
    indptr, indices, max_k = _lists(cfg, atts, step)
    return tables._replace(indptr=indptr, indices=indices, max_k=max_k)


def _lists(cfg, atts, step):
    positions = cfg.position_array()
    indptr_all = np.zeros((len(atts), cfg.n_columns + 1), dtype=np.int64)
    chunks, offset, max_k = [], 0, 1
    for level, att in enumerate(atts):
        if is_dense(att):
            indptr_all[level] = offset
            continue
        indptr, indices = attention_csr(positions, att, seed=cfg.seed, step=step, level=level)
        indptr_all[level] = indptr + offset
        chunks.append(indices)
        offset += len(indices)
        max_k = max(max_k, int(np.diff(indptr).max(initial=0)))
    indices = np.concatenate(chunks) if chunks else np.zeros(1, dtype=np.int64)
    return indptr_all, indices, max_k


def norm_of(cfg: GlomConfig) -> Norm:
    """The config's normalisation: its id and layernorm's epsilon in the run's dtype."""
    return Norm(ids.NORM_IDS[cfg.normalize], cfg.np_dtype.type(LAYERNORM_EPS))


def maths_of(dtype) -> Maths:
    """The dtype's constants: float32 takes the vectorised polynomials."""
    dt = np.dtype(dtype)
    gelu = np.array([0.5, 1 / math.sqrt(2.0), 1.0], dtype=dt)
    return Maths(bool(dt == np.float32), POLY_F32, gelu)


def buffers(cfg: GlomConfig, members: int, split, splits: int, identity: bool) -> Buffers:
    """The buffers the fused step writes, for ``members`` runs of ``cfg`` under the work
    split ``split`` with hidden layers cut into ``splits`` chunks."""
    dt, M = cfg.np_dtype, members
    L, N, D, H = cfg.levels, cfg.n_columns, cfg.dim, cfg.hidden_width
    # outputs of every net of a step, (net, chunk, level, member, column, feature)
    shape = (2, 1, 1, 1, 1, 1) if identity else (2, splits, L, M, N, D)
    # per-thread scratch, one slot for every thread numba can ever run, so that a thread
    # count raised after planning is no error
    T = max_threads()
    net_rows = 1 if identity else split.group * split.block
    # hidden units and outputs padded to whole panels of the packed products (nets.pack_net)
    hc = 1 if identity else padded(H // splits, dt)
    dp = 1 if identity else padded(D, dt)
    # global attention multiplies by its level's state packed in panels (attention.pack_rows)
    any_dense = any(is_dense(cfg.attention_at(level)) for level in range(L))
    W = panel_width(dt)
    dense_n = padded(N, dt) if any_dense else 1
    att_d = padded(D, dt) if any_dense else D
    packed = (
        ((M, L, dense_n // W, D, W), (M, L, att_d // W, N, W)) if any_dense else ((1,) * 5,) * 2
    )
    scratch = Scratch(
        x=aligned_empty((T, net_rows, D), dt),
        h=aligned_empty((T, net_rows, hc), dt),
        y=aligned_empty((T, net_rows, dp), dt),
        att=aligned_empty((T, split.rows, att_d), dt),
        scores=aligned_empty((T, split.rows, dense_n), dt),
    )
    return Buffers(
        netbuf=aligned_empty(shape, dt),
        norms=np.empty((M, L, N), dt),
        sqnorms=np.empty((M, L, N), dt),
        inv_norms=np.empty((M, L, N), dt),
        keys=aligned_empty(packed[0], dt, fill=0),
        values=aligned_empty(packed[1], dt, fill=0),
        nonfinite=np.zeros(L * M * -(-N // split.rows), dtype=np.uint8),
        where=np.zeros(2, dtype=np.int64),  # (member, level) of a failed run
        scratch=scratch,
        att_out=np.empty((1, 1, 1, 1), dt),
        keep_att=False,
        change_sums=np.zeros((2, L * M * -(-N // split.rows)), dtype=np.float64),
    )
