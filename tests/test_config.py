"""Config validation (errors name the field) and round trips."""

import math

import numpy as np
import pytest
from hypothesis import given

import glomsim as gs
import glomsim.testing as gt


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(levels=0), "levels"),
        (dict(levels=2.5), "levels"),
        (dict(dim=0), "dim"),
        (dict(steps=-1), "steps"),
        (dict(top_down_delay=0), "top_down_delay"),
        (dict(normalize="batchnorm"), "normalize"),
        (dict(dtype="float16"), "dtype"),
        (dict(grid=(0, 3)), "grid"),
        (dict(grid=(2, 2), positions=[[0, 0]] * 4), "grid and positions"),
        (dict(grid=None, positions=[[0, 0, 0]]), "positions"),
        (dict(grid=None, positions=[[0, np.nan]]), "positions"),
        (dict(mix=gs.Mix(bottom_up=0, top_down=0, previous=0, attention=0)), "mix"),
        (dict(levels=1, mix=gs.Mix(bottom_up=0, top_down=1, previous=0, attention=0)), "mix"),
        (dict(levels=2, mix=[gs.Mix()]), "mix"),
        (dict(levels=2, attention=[gs.Attention()] * 3), "attention"),
        (dict(mix="strong"), "mix"),
        (dict(hidden=0), "hidden"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises((ValueError, TypeError)) as err:
        gs.GlomConfig(**kwargs)
    assert field in str(err.value)


@pytest.mark.parametrize(
    "make,field,allowed",
    [
        (lambda: gs.Attention(kernel="softmax"), "attention.kernel", "bounded"),
        (lambda: gs.Attention(radius=-1.0), "attention.radius", ">= 0"),
        (lambda: gs.Attention(radius=math.nan), "attention.radius", ">= 0"),
        (lambda: gs.Attention(kernel="bounded"), "attention.epsilon", "> 0"),
        (lambda: gs.Attention(kernel="bounded", epsilon=0.0), "attention.epsilon", "> 0"),
        (lambda: gs.Attention(kernel="bounded", epsilon=-1.0), "attention.epsilon", "> 0"),
        (lambda: gs.Attention(beta=math.inf), "attention.beta", "finite"),
        (lambda: gs.Attention(include_self="yes"), "attention.include_self", "True or False"),
        (lambda: gs.Mix(attention=-0.5), "mix.attention", ">= 0"),
        (lambda: gs.Mix(previous=math.nan), "mix.previous", ">= 0"),
        (lambda: gs.Mix(bottom_up=[1.0, -1.0]), "mix.bottom_up", ">= 0"),
        (lambda: gs.Mix(top_down=[]), "mix.top_down", "at least one"),
    ],
)
def test_bad_parts_name_field_and_allowed(make, field, allowed):
    with pytest.raises((ValueError, TypeError)) as err:
        make()
    assert field in str(err.value) and allowed in str(err.value)


def test_zero_weights_in_a_schedule_step_are_rejected():
    with pytest.raises(ValueError, match="step 2"):
        gs.GlomConfig(levels=1, mix=gs.Mix(bottom_up=0, previous=[1.0, 0.0], attention=0))


def test_schedule_entry_k_applies_to_step_k_plus_1_and_last_is_held():
    m = gs.Mix(attention=[0.0, 0.5, 1.0], previous=2.0)
    assert [m.at(s)[3] for s in (1, 2, 3, 4, 10)] == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert m.at(7)[2] == 2.0


def test_top_level_has_no_top_down_weight():
    cfg = gs.GlomConfig(levels=3)
    w = cfg.mix_weights(1)
    assert w[-1, 1] == 0 and np.all(w[:-1, 1] == 1)


def test_grid_is_row_major():
    cfg = gs.GlomConfig(grid=(2, 3))
    pos = cfg.position_array()
    assert pos[4].tolist() == [1.0, 1.0] and pos[2].tolist() == [0.0, 2.0]


@given(gt.configs())
def test_round_trips(cfg):
    assert gs.GlomConfig.from_dict(cfg.to_dict()) == cfg
    assert gs.GlomConfig.from_json(cfg.to_json()) == cfg
    assert gs.GlomConfig.from_toml(cfg.to_toml()) == cfg


def test_json_is_strict_and_toml_keeps_inf():
    import json

    cfg = gs.GlomConfig(attention=gs.Attention(radius=math.inf))
    json.loads(cfg.to_json(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert "inf" in cfg.to_toml()


def test_positions_round_trip():
    cfg = gs.GlomConfig(levels=1, dim=1, grid=None, positions=[[0.0, 0.5], [1.0, 2.0]])
    assert gs.GlomConfig.from_json(cfg.to_json()) == cfg
    assert cfg.n_columns == 2


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="radiuss"):
        gs.GlomConfig.from_dict({"attention": {"radiuss": 2}})
    with pytest.raises(ValueError, match="levles"):
        gs.GlomConfig.from_dict({"levles": 2})


def test_config_file(tmp_path):
    cfg = gs.GlomConfig(levels=2, dim=3, grid=(2, 2), mix=[gs.Mix(), gs.Mix(previous=[0.0, 1.0])])
    p = tmp_path / "c.toml"
    p.write_text(cfg.to_toml())
    assert gs.GlomConfig.from_file(p) == cfg
    with pytest.raises(ValueError, match="suffix"):
        gs.GlomConfig.from_file(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: gs.Mix(previous=1e-320), "mix.previous"),  # subnormal even in float64
        (lambda: gs.Mix(attention=1e308), "mix.attention"),
        (lambda: gs.Mix(attention=[1.0, 1e-310]), "mix.attention[1]"),
        (lambda: gs.Attention(kernel="gaussian", beta=1e300), "attention.beta"),
        (lambda: gs.Attention(kernel="dot", beta=-1e200), "attention.beta"),
        (lambda: gs.Attention(kernel="bounded", epsilon=1e-320), "attention.epsilon"),
    ],
)
def test_values_that_vanish_or_overflow_in_float64_name_the_field(make, field):
    with pytest.raises(ValueError) as err:
        make()
    msg = str(err.value)
    assert msg.startswith(f"{field}=") and "float64" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(mix=gs.Mix(previous=1e-40)), "mix.previous"),
        (dict(mix=gs.Mix(attention=1e30)), "mix.attention"),
        (dict(mix=gs.Mix(attention=[1.0, 1e25])), "mix.attention[1]"),
        (dict(levels=2, mix=[gs.Mix(top_down=1e-45), gs.Mix()]), "mix[0].top_down"),
        (dict(attention=gs.Attention(kernel="gaussian", beta=1e30)), "attention.beta"),
        (dict(levels=2, attention=[gs.Attention(), gs.Attention(beta=1e25)]),
         "attention[1].beta"),
        (dict(attention=gs.Attention(kernel="bounded", epsilon=1e-40)), "attention.epsilon"),
    ],
)  # fmt: skip
def test_values_that_float32_cannot_hold_fail_validation_naming_the_field(kwargs, field):
    with pytest.raises(ValueError) as err:
        gs.GlomConfig(dtype="float32", **kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{field}=") and "dtype='float32'" in msg and "float64" in msg
    # the same values are fine where float64 holds them
    assert gs.GlomConfig(dtype="float64", **kwargs).dtype == "float64"


def test_the_dtype_range_is_what_the_dtype_holds():
    from glomsim.config import _magnitudes

    for dtype in ("float32", "float64"):
        lo, hi = _magnitudes(dtype)
        dt = np.dtype(dtype)
        # the smallest allowed magnitude is the smallest normal number of the dtype
        assert dt.type(lo) == lo and np.finfo(dt).tiny == lo
        # products of the largest allowed weight with a state of the same size are finite
        with np.errstate(over="raise"):
            assert np.isfinite(dt.type(hi) * dt.type(hi * 0.999))
    # a zero weight stays allowed: it switches its contribution off
    cfg = gs.GlomConfig(dtype="float32", mix=gs.Mix(bottom_up=0, top_down=1e10, previous=0))
    assert cfg.mix.bottom_up == 0.0
