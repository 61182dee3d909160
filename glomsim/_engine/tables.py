"""The kernels' fixed arguments of a config: attention tables (kernel ids, parameter rows,
neighbour lists), the normalisation and the dtype's constants (:mod:`glomsim._kernels.args`).

These are also the small builders tests use to call the kernels directly.
"""

from __future__ import annotations

import math

import numpy as np

from .._kernels import ids
from .._kernels.args import AttentionTables, Buffers, Maths, Norm, Scratch
from .._kernels.nets import POLY_F32
from ..config import GlomConfig
from ..neighbours import neighbour_csr
from ..reference import GLOM_PYTORCH_SELF_SCORE, LAYERNORM_EPS, bounded_tolerance
from ..runtime import max_threads

__all__ = ["attention_tables", "norm_of", "maths_of", "params_of", "is_dense", "buffers"]


def params_of(att, dim: int, dtype) -> np.ndarray:
    """The parameter row (``ids.PARAM_SLOTS``) of one level's ``Attention``."""
    bound = (att.epsilon or 0.0) * (1.0 + bounded_tolerance(dtype))
    return ids.level_params(dtype, dim, att.beta, bound, GLOM_PYTORCH_SELF_SCORE)


def is_dense(att) -> bool:
    """Whether a level runs the dense (global) attention path."""
    return math.isinf(att.radius) and att.kernel != "bounded"


def attention_tables(cfg: GlomConfig) -> AttentionTables:
    """Every level's attention: ids, parameters, path and CSR neighbour lists (the lists
    of all levels concatenated, ``indptr`` offset into them)."""
    dt = cfg.np_dtype
    L, N = cfg.levels, cfg.n_columns
    atts = [cfg.attention_at(level) for level in range(L)]
    positions = cfg.position_array()
    indptr_all = np.zeros((L, N + 1), dtype=np.int64)
    chunks, offset, max_k = [], 0, 1
    for level, att in enumerate(atts):
        if is_dense(att):
            indptr_all[level] = offset
            continue
        indptr, indices = neighbour_csr(positions, att)
        indptr_all[level] = indptr + offset
        chunks.append(indices)
        offset += len(indices)
        max_k = max(max_k, int(np.diff(indptr).max(initial=0)))
    return AttentionTables(
        kernels=np.array([ids.KERNEL_IDS[a.kernel] for a in atts], dtype=np.int64),
        self_excl=np.array([not a.include_self for a in atts], dtype=np.bool_),
        params=np.stack([params_of(a, cfg.dim, dt) for a in atts]),
        dense=np.array([is_dense(a) for a in atts], dtype=np.bool_),
        indptr=indptr_all,
        indices=np.concatenate(chunks) if chunks else np.zeros(1, dtype=np.int64),
        max_k=max_k,
    )


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
    hc = 1 if identity else H // splits
    dense_n = N if any(is_dense(cfg.attention_at(level)) for level in range(L)) else 1
    scratch = Scratch(
        x=np.empty((T, net_rows, D), dt),
        h=np.empty((T, net_rows, hc), dt),
        y=np.empty((T, net_rows, D), dt),
        att=np.empty((T, split.rows, D), dt),
        scores=np.empty((T, split.rows, dense_n), dt),
    )
    return Buffers(
        netbuf=np.empty(shape, dt),
        norms=np.empty((M, L, N), dt),
        sqnorms=np.empty((M, L, N), dt),
        inv_norms=np.empty((M, L, N), dt),
        nonfinite=np.zeros(L * M * -(-N // split.rows), dtype=np.uint8),
        where=np.zeros(2, dtype=np.int64),  # (member, level) of a failed run
        scratch=scratch,
        att_out=np.empty((1, 1, 1, 1), dt),
        keep_att=False,
        change_sums=np.zeros((2, L * M * -(-N // split.rows)), dtype=np.float64),
    )
