"""The contrastive kernel: its config fields, the reference against the contract's
formula worked by hand, the cosine kernel as its special case (repulsion 0, threshold -1),
and the numba primitives on the local (CSR) and the dense path, with and without self,
against the reference (float64 within 1e-10, float32 within 1e-4)."""

import math

import numpy as np
import pytest

import glomsim as gs
from glomsim import reference
from glomsim._kernels import ids

from . import kernel_args
from .test_sampled_step import rel

TOL = {"float64": 1e-10, "float32": 1e-4}


def attend(cfg, x, level=0, t=1):
    """Level ``level``'s attention by the primitives, with the tables of step t."""
    return kernel_args.attend(cfg, x, level, step=t)


def test_fields_are_checked_and_round_trip():
    att = gs.Attention(kernel="contrastive", beta=2.0, threshold=-0.25, repulsion=0.5)
    cfg = gs.GlomConfig(levels=2, dim=2, grid=(2, 2), attention=[att, gs.Attention()])
    assert gs.GlomConfig.from_toml(cfg.to_toml()) == cfg
    assert gs.GlomConfig.from_json(cfg.to_json()) == cfg
    assert ids.KERNEL_IDS["contrastive"] == ids.CONTRASTIVE == 5  # appended: old ids kept
    for field, bad, allowed in (
        ("threshold", 1.5, "a finite number >= -1 and <= 1"),
        ("threshold", math.nan, "a finite number >= -1 and <= 1"),
        ("repulsion", -0.1, "a finite number >= 0"),
    ):
        with pytest.raises(ValueError, match=f"^attention.{field}={bad!r} is not allowed; "
                                              f"allowed: {allowed}$"):  # fmt: skip
            gs.Attention(kernel="contrastive", **{field: bad})


def test_the_formula_by_hand():
    """Three columns on a line, all attended, threshold 0.5, repulsion 0.6, beta 0:
    x0 = (1, 0), x1 = (1, 1) (cos 0.707 with x0), x2 = (-1, 0) (cos -1 with x0).
    Column 0: P = {0, 1}, uniform softmax -> (x0 + x1) / 2 = (1, 0.5); Q = {2} with
    threshold - c = 1.5, so minus 0.6 / 3 * 1.5 * x2 = -(0.3) * (-1, 0) = (+0.3, 0).
    Column 2: P = {2} (itself, cos 1) -> x2; Q = {0, 1}: c = -1 and -0.707."""
    x = np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    pos = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    att = gs.Attention(kernel="contrastive", beta=0.0, threshold=0.5, repulsion=0.6)
    got = reference.attention(x, pos, att)
    np.testing.assert_allclose(got[0], [1.3, 0.5], rtol=1e-14)
    c21 = -1 / math.sqrt(2)
    push = 0.6 / 3 * ((0.5 + 1) * x[0] + (0.5 - c21) * x[1])
    np.testing.assert_allclose(got[2], x[2] - push, rtol=1e-14)


def test_empty_attraction_keeps_the_column_and_empty_repulsion_adds_nothing():
    x = np.array([[1.0, 0.0], [-1.0, 0.2], [0.0, 0.0]])
    pos = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    # self excluded and nobody similar enough: x_i itself minus the push
    att = gs.Attention(kernel="contrastive", threshold=0.9, repulsion=0.0, include_self=False)
    np.testing.assert_array_equal(reference.attention(x, pos, att), x)
    # threshold -1: everyone attracts, so repulsion changes nothing
    loose = gs.Attention(kernel="contrastive", threshold=-1.0, repulsion=5.0, beta=2.0)
    cosine = gs.Attention(kernel="cosine", beta=2.0)
    np.testing.assert_allclose(reference.attention(x, pos, loose),
                               reference.attention(x, pos, cosine), rtol=1e-14)  # fmt: skip


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("radius", [1.5, math.inf], ids=["local", "dense"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_repulsion_zero_threshold_minus_one_is_the_cosine_kernel(radius, include_self, dtype):
    """In the reference and in the primitives, on both paths."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 4)).astype(dtype)
    x[5] = 0.0
    kw = dict(beta=2.5, radius=radius, include_self=include_self)
    contrastive = gs.Attention(kernel="contrastive", threshold=-1.0, repulsion=0.0, **kw)
    cosine = gs.Attention(kernel="cosine", **kw)
    cfgs = [gs.GlomConfig(levels=1, dim=4, grid=(4, 5), dtype=dtype, attention=a)
            for a in (contrastive, cosine)]  # fmt: skip
    pos = cfgs[0].position_array()
    assert rel(reference.attention(x, pos, contrastive), reference.attention(x, pos, cosine)) < (
        1e-6 if dtype == "float32" else 1e-15
    )
    assert rel(attend(cfgs[0], x), attend(cfgs[1], x)) < TOL[dtype]


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("radius", [1.0, 2.5, math.inf], ids=["r1", "r2.5", "dense"])
@pytest.mark.parametrize("threshold,repulsion", [(0.0, 1.0), (0.6, 3.0), (-0.4, 0.5), (1.0, 1.0)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_primitives_match_the_reference(threshold, repulsion, radius, include_self, dtype):
    att = gs.Attention(kernel="contrastive", beta=3.0, threshold=threshold, repulsion=repulsion,
                       radius=radius, include_self=include_self)  # fmt: skip
    cfg = gs.GlomConfig(levels=1, dim=3, grid=(5, 6), attention=att, dtype=dtype)
    rng = np.random.default_rng(7)
    for scale in (0.3, 3.0):
        x = (scale * rng.standard_normal((30, 3))).astype(dtype)
        x[4] = 0.0  # a zero vector: cosines 0
        want = reference.attention(x.astype(np.float64), cfg.position_array(), att)
        assert rel(attend(cfg, x), want) < TOL[dtype]


def test_repulsion_pushes_dissimilar_columns_apart():
    """Two opposite groups: with repulsion each column's contribution moves away from the
    other group (its projection on its own group's direction grows), without it not."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.array([1.0, 0.0]) + 0.1 * rng.standard_normal((5, 2)),
                        np.array([-1.0, 0.0]) + 0.1 * rng.standard_normal((5, 2))])  # fmt: skip
    pos = np.stack([np.zeros(10), np.arange(10.0)], axis=1)
    side = np.sign(x[:, 0])
    out = {rep: reference.attention(x, pos, gs.Attention(kernel="contrastive", repulsion=rep,
                                                          threshold=0.0, beta=1.0))
           for rep in (0.0, 2.0)}  # fmt: skip
    assert np.all(side * out[2.0][:, 0] > side * out[0.0][:, 0])
    assert np.all(side * out[2.0][:, 0] > 1.0)  # beyond its own group's mean: not convex
