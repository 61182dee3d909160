"""The numba primitives called directly, without a plan, against glomsim.reference (the
executable spec): net forward, every attention kernel on the local (CSR) and the dense
path with and without self, the normalisations, and one whole fused step built from the
grouped arguments; float64 within 1e-10, float32 within 1e-4 (relative)."""

import math

import numpy as np
import pytest

import glomsim as gs
from glomsim import reference
from glomsim._engine.nets import stacked_nets
from glomsim._engine.split import TaskTables, hidden_splits, work_split
from glomsim._engine.tables import attention_tables, buffers, maths_of, norm_of
from glomsim._kernels import ids
from glomsim._kernels.args import Norm, StepTasks
from glomsim._kernels.normalise import normalise_rows
from glomsim._kernels.step import step_all
from glomsim.config import KERNELS, NORMALIZATIONS

from . import kernel_args

TOL = {"float64": 1e-10, "float32": 1e-4}


def _rel(a, b):
    b = np.asarray(b, np.float64)
    return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1.0)


def test_ids_come_from_the_config_names():
    assert list(ids.KERNEL_IDS) == list(KERNELS)
    assert list(ids.NORM_IDS) == list(NORMALIZATIONS)
    assert [ids.DOT, ids.COSINE, ids.GAUSSIAN, ids.BOUNDED, ids.GLOM_PYTORCH] == [
        ids.KERNEL_IDS[k] for k in ("dot", "cosine", "gaussian", "bounded", "glom_pytorch")
    ]
    assert len(set(range(len(ids.PARAM_SLOTS)))) == len(ids.PARAM_SLOTS) == ids.INF + 1
    row = ids.level_params(np.float32, 16, 2.0, 0.5, -5e-4)
    assert row.dtype == np.float32
    assert (row[ids.BETA], row[ids.BOUND], row[ids.INV_SQRT_D]) == (2.0, 0.5, 0.25)
    assert row[ids.INF] == np.inf and row[ids.SHIFT_MAX] == ids.BOUND_SHIFT_MAX


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("prefix", ["bu", "td"])
def test_net_forward_matches_reference(dtype, prefix):
    cfg = gs.GlomConfig(levels=3, dim=7, grid=(3, 5), dtype=dtype)
    w = gs.random_weights(cfg, seed=4)
    x = (2 * np.random.default_rng(5).standard_normal((15, 7))).astype(dtype)
    for level in range(2):
        got = kernel_args.net(cfg, w, x, prefix, level)
        want = reference.net_forward(
            x.astype(np.float64),
            *(getattr(w, f"{prefix}_{k}")[level] for k in ("w1", "b1", "w2", "b2")),
        )
        assert got.dtype == np.dtype(dtype)
        assert _rel(got, want) < TOL[dtype]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("radius", [1.5, math.inf], ids=["local", "dense"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_attention_matches_reference(kernel, radius, include_self, dtype):
    """Local lists for a finite radius (and always for bounded), the dense block for an
    infinite one; scores small enough for the bound shift and large enough for the max."""
    att = gs.Attention(kernel=kernel, beta=1.5, epsilon=1.2, radius=radius,
                       include_self=include_self)  # fmt: skip
    cfg = gs.GlomConfig(levels=1, dim=5, grid=(4, 6), attention=att, dtype=dtype)
    rng = np.random.default_rng(11)
    for scale in (0.3, 3.0):
        x = (scale * rng.standard_normal((cfg.n_columns, cfg.dim))).astype(dtype)
        x[3] = 0.0  # a zero vector: cosine 0, unit key floor
        got = kernel_args.attend(cfg, x)
        # the bounded kernel's tolerance of epsilon is the dtype's: that one in float32
        spec = x if kernel == "bounded" else x.astype(np.float64)
        want = reference.attention(spec, cfg.position_array(), att)
        assert _rel(got, want) < TOL[dtype]


@pytest.mark.parametrize("norm", NORMALIZATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normalisation_matches_reference(norm, dtype):
    x = (3 * np.random.default_rng(2).standard_normal((9, 6))).astype(dtype)
    x[0] = 0.0  # l2 keeps a zero row zero
    got = x.copy()
    normalise_rows(got, Norm(ids.NORM_IDS[norm], np.dtype(dtype).type(reference.LAYERNORM_EPS)))
    want = reference.normalize(x.astype(np.float64), norm)
    assert _rel(got, want) < TOL[dtype]
    if norm == "l2":
        assert np.all(got[0] == 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_fused_step_built_without_a_plan(dtype):
    """step_all on grouped arguments from the table builders equals reference.step."""
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 5), dtype=dtype, normalize="l2",
                        attention=[gs.Attention(radius=1.5), gs.Attention(kernel="cosine"),
                                   gs.Attention(kernel="bounded", epsilon=2.0, radius=2.0)],
                        mix=gs.Mix(previous=0.5, attention=2.0))  # fmt: skip
    w = gs.random_weights(cfg, seed=7)
    rng = np.random.default_rng(8)
    state = rng.standard_normal((cfg.levels, cfg.n_columns, cfg.dim)).astype(dtype)
    inputs = rng.standard_normal((cfg.n_columns, cfg.dim)).astype(dtype)
    dt = cfg.np_dtype
    splits = hidden_splits(cfg.n_columns, cfg.hidden_width)
    split = work_split(cfg, 1, True, state.nbytes)
    mix, tasks, _ = TaskTables(cfg, 1, split, splits, False).step(1)
    out = np.empty_like(state)[None]
    step_all(state[None], state[None], inputs[None], out, StepTasks(mix, tasks, False),
             stacked_nets((w,), dt, splits), attention_tables(cfg), norm_of(cfg), maths_of(dt),
             split, buffers(cfg, 1, split, splits, False))  # fmt: skip
    want = reference.step(cfg, w, [state.astype(np.float64)], inputs.astype(np.float64), 1)
    assert _rel(out[0], want) < TOL[dtype]


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "contrastive"])
@pytest.mark.parametrize("radius", [1.5, math.inf], ids=["local", "dense"])
def test_the_lean_attention_variants_give_the_same_bits(kernel, radius):
    """The lean variants (no contrastive kernel) are the same code less one branch: every
    other kernel's attention is bit for bit the full primitives'."""
    att = gs.Attention(kernel=kernel, beta=1.5, epsilon=1.2, radius=radius)
    cfg = gs.GlomConfig(levels=1, dim=6, grid=(4, 6), attention=att, dtype="float32")
    x = (2 * np.random.default_rng(3).standard_normal((cfg.n_columns, cfg.dim))).astype("float32")
    assert np.array_equal(kernel_args.attend_lean(cfg, x), kernel_args.attend(cfg, x))
