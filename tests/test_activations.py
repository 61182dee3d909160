"""The nets' activations (gelu, relu, sin): config names and kernel ids, each numba
primitive against the readable reference (float64 within 1e-10, float32 within 1e-4),
the float32 sine's accuracy over SIREN-sized arguments, SIREN initialisation, and
interop's refusal of anything but GELU."""

import math

import numpy as np
import pytest

import glomsim as gs
from glomsim import reference
from glomsim._engine.nets import pack_net
from glomsim._engine.tables import maths_of
from glomsim._kernels import ids
from glomsim._kernels.nets import POLY_F32, net_rows, sin_rows
from glomsim.config import ACTIVATIONS

TOL = {"float64": 1e-10, "float32": 1e-4}


def _rel(a, b):
    b = np.asarray(b, np.float64)
    return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1.0)


def test_names_and_ids_come_from_the_config():
    assert ACTIVATIONS == ("gelu", "relu", "sin")
    assert list(ids.ACTIVATION_IDS) == list(ACTIVATIONS)
    assert [ids.GELU, ids.RELU, ids.SIN] == [0, 1, 2]  # append only: gelu keeps its id
    assert set(reference.ACTIVATION_FUNCTIONS) == set(ACTIVATIONS)
    cfg = gs.GlomConfig(top_down_activation="sin")
    assert (cfg.bottom_up_activation, cfg.top_down_activation) == ("gelu", "sin")


@pytest.mark.parametrize("bad", ["tanh", "GELU", 1, None])
@pytest.mark.parametrize("field", ["bottom_up_activation", "top_down_activation"])
def test_bad_activations_name_the_field(field, bad):
    with pytest.raises(ValueError, match=f"{field}={bad!r} is not allowed; allowed: gelu, relu"):
        gs.GlomConfig(**{field: bad})


@pytest.mark.parametrize("acts", [("relu", "sin"), ("sin", "gelu")])
def test_config_round_trips_and_gelu_writes_what_it_wrote_before(acts):
    cfg = gs.GlomConfig(levels=2, dim=3, bottom_up_activation=acts[0], top_down_activation=acts[1])
    for text, back in ((cfg.to_json(), gs.GlomConfig.from_json),
                       (cfg.to_toml(), gs.GlomConfig.from_toml)):  # fmt: skip
        assert back(text) == cfg
    assert "activation" not in gs.GlomConfig(levels=2, dim=3).to_json()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_primitive_matches_the_reference(activation, dtype):
    """net_rows with each id on random and SIREN weights equals reference.net_forward."""
    for sin_init in (False, True):
        cfg = gs.GlomConfig(levels=2, dim=6, grid=(4, 5), dtype=dtype,
                            bottom_up_activation="sin" if sin_init else activation)  # fmt: skip
        w = gs.random_weights(cfg, seed=3)
        x = (1.5 * np.random.default_rng(4).standard_normal((20, 6))).astype(dtype)
        w1, b1, w2, b2 = (getattr(w, f"bu_{k}")[1].astype(dtype) for k in ("w1", "b1", "w2", "b2"))
        w1p, b1p, w2p = pack_net(w1, b1, w2, np.dtype(dtype))
        h = np.empty((20, b1p.shape[0]), dtype)
        y = np.full((20, w2p.shape[0] * w2p.shape[2]), np.nan, dtype)
        act = ids.ACTIVATION_IDS[activation]
        net_rows(x, w1p, b1p, w2p, act, maths_of(dtype), h, y)
        assert (y[:, 6:] == 0).all()  # the padded outputs: zero weights, zero out
        y = y[:, :6]
        arrays = (getattr(w, f"bu_{k}")[1] for k in ("w1", "b1", "w2", "b2"))
        want = reference.net_forward(x.astype(np.float64), *arrays, activation=activation)
        assert _rel(y + b2, want) < TOL[dtype]


def test_the_float32_sine_is_accurate_over_siren_arguments():
    """The vectorised float32 sine against float64's, on |z| up to 3000 (SIREN's first
    layer reaches ~30 |x|): the reduction by pi in three parts keeps the error absolute."""
    z = np.linspace(-3000, 3000, 200_001).astype(np.float32)
    h = z.reshape(1, -1).copy()
    sin_rows(h, np.zeros(h.shape[1], np.float32), True, POLY_F32)
    want = np.sin(z.astype(np.float64))
    err = np.abs(h[0] - want)
    assert err.max() < 1e-6  # absolute, whatever |z| up to 3000
    small = np.abs(z) < 10
    assert err[small].max() < 3e-7
    assert np.all(np.abs(h) <= 1.0 + 1e-6)


def test_siren_initialisation():
    """Sine nets: w1 uniform in +-omega_0 / D, b1 in +-omega_0 / sqrt(D), w2 in
    +-gain sqrt(6 / H); a net keeps its input's RMS to within a factor ~2 (like the
    GELU nets); the other nets and GELU weights are unchanged."""
    cfg = gs.GlomConfig(levels=3, dim=16, grid=(8, 8), top_down_activation="sin")
    w = gs.random_weights(cfg, seed=0, gain=1.0)
    D, H = cfg.dim, cfg.hidden_width
    assert np.abs(w.td_w1).max() <= 30 / D and np.abs(w.td_w1).max() > 0.9 * 30 / D
    assert np.abs(w.td_b1).max() <= 30 / math.sqrt(D)
    assert np.abs(w.td_w2).max() <= math.sqrt(6 / H) and np.abs(w.td_w2).max() > 0.9 * math.sqrt(
        6 / H
    )
    # uniform, not normal: the variance of U(-a, a) is a^2 / 3
    assert np.var(w.td_w1) == pytest.approx((30 / D) ** 2 / 3, rel=0.05)
    x = np.random.default_rng(1).standard_normal((256, D))
    arrays = (getattr(w, f"td_{k}")[0] for k in ("w1", "b1", "w2", "b2"))
    out = reference.net_forward(x, *arrays, activation="sin")
    assert 0.5 < np.sqrt((out**2).mean()) < 2.0
    gelu = gs.random_weights(cfg.replace(top_down_activation="gelu"), seed=0, gain=1.0)
    assert np.array_equal(gelu.bu_w1, w.bu_w1)  # bottom-up nets drawn first, unchanged
    assert w.meta["activations"] == ["gelu", "sin"] and w.meta["omega_0"] == 30.0
    assert "activations" not in gelu.meta
    with pytest.raises(ValueError, match="omega_0=0"):
        gs.random_weights(cfg, omega_0=0)


@pytest.mark.parametrize("field", ["bottom_up_activation", "top_down_activation"])
def test_interop_refuses_anything_but_gelu(field):
    from glomsim.interop import glom_kwargs

    cfg = gs.GlomConfig(levels=2, dim=8, grid=(4, 4), attention=gs.Attention(kernel="glom_pytorch"))
    w = gs.random_weights(cfg, seed=0, patch_size=2)
    glom_kwargs(cfg, w)  # expressible as it is
    with pytest.raises(ValueError, match=f"^{field}='relu': glom-pytorch's nets use GELU"):
        glom_kwargs(cfg.replace(**{field: "relu"}), w)
    sampled = cfg.replace(attention=gs.Attention(kernel="glom_pytorch", sample=2))
    with pytest.raises(ValueError, match=r"^attention\.sample=2: glom-pytorch attends to every"):
        glom_kwargs(sampled, w)
