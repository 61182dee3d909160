"""glomsim reproduces glom-pytorch step by step, and weights convert both ways exactly."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
glom_pytorch = pytest.importorskip("glom_pytorch")

import glomsim  # noqa: E402
from glomsim.interop import from_glom_pytorch, glom_kwargs, to_glom_pytorch  # noqa: E402

# glom-pytorch calls torch.meshgrid without indexing= when it builds the local mask
pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")

TOL = {"float32": 1e-5, "float64": 1e-10}

CONFIGS = [
    dict(dim=24, levels=2, image_size=8, patch_size=2),
    dict(dim=40, levels=3, image_size=12, patch_size=3, consensus_self=True),
    dict(dim=24, levels=4, image_size=16, patch_size=4, local_consensus_radius=1.5),
    dict(
        dim=40, levels=5, image_size=10, patch_size=2, consensus_self=True, local_consensus_radius=1
    ),
    dict(dim=24, levels=6, image_size=12, patch_size=2, local_consensus_radius=2.5),
]


def agreement(a, b):
    """max|a - b| / max(max|b|, 1) over the whole array (the project's measure of numerical agreement)."""
    return np.abs(a - b).max() / max(np.abs(b).max(), 1.0)


def make_model(kwargs, seed):
    torch.manual_seed(seed)
    return glom_pytorch.Glom(**kwargs)


def torch_states(model, img, dtype, init=None):
    """glom-pytorch's states as (time, level, column, dim) numpy."""
    x = torch.from_numpy(img)[None]
    levels = None if init is None else torch.from_numpy(init.transpose(1, 0, 2))[None]
    with torch.no_grad():
        out = model.to(getattr(torch, dtype))(x, levels=levels, return_all=True)
    return out[:, 0].permute(0, 2, 1, 3).numpy()  # (iters+1, batch, n, L, D) -> (t, L, n, D)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda kw: "-".join(f"{v}" for v in kw.values()))
def test_simulate_reproduces_glom_pytorch(kwargs, dtype):
    model = make_model(kwargs, seed=kwargs["levels"])
    img = np.random.default_rng(0).standard_normal((3, kwargs["image_size"], kwargs["image_size"]))
    img = img.astype(dtype)
    cfg, w = from_glom_pytorch(model, dtype=dtype)
    assert cfg.dtype == dtype and cfg.steps == 2 * kwargs["levels"]
    assert w.meta["kind"] == "glom_pytorch"

    ds = glomsim.simulate(cfg, w, inputs=img)
    ref = torch_states(model, img, dtype)
    assert ds.embedding.shape == ref.shape
    assert agreement(ds.embedding.values, ref) < TOL[dtype]


def test_random_start_state_and_iters():
    """A random start makes consensus act from step 1; ``iters`` sets the step count."""
    kwargs = CONFIGS[3]
    model = make_model(kwargs, seed=1)
    rng = np.random.default_rng(1)
    img = rng.standard_normal((3, 10, 10))
    cfg, w = from_glom_pytorch(model, iters=3, dtype="float64")
    init = rng.standard_normal((cfg.levels, cfg.n_columns, cfg.dim))
    ds = glomsim.simulate(cfg, w, inputs=img, init=init)
    x = torch.from_numpy(img)[None]
    levels = torch.from_numpy(init.transpose(1, 0, 2))[None]
    with torch.no_grad():
        ref = model.double()(x, iters=3, levels=levels, return_all=True)
    ref = ref[:, 0].permute(0, 2, 1, 3).numpy()
    assert ds.sizes["time"] == 4
    assert agreement(ds.embedding.values, ref) < TOL["float64"]
    # the comparison can tell the attention settings apart: flipping consensus_self moves
    # the trajectory by far more than the tolerance
    att = cfg.attention_at(0)
    flipped = cfg.replace(
        attention=glomsim.Attention(kernel="glom_pytorch", radius=att.radius, include_self=False)
    )
    other = glomsim.simulate(flipped, w, inputs=img, init=init).embedding.values
    assert agreement(other, ref) > 1e-3


def test_state_dict_with_inferred_kwargs():
    """A bare state dict: shapes give dim, levels, patch_size and the grid; the mask a radius."""
    kwargs = dict(dim=24, levels=3, image_size=12, patch_size=3, local_consensus_radius=1.2)
    model = make_model(kwargs, seed=3)
    cfg_m, w_m = from_glom_pytorch(model)
    cfg_s, w_s = from_glom_pytorch(model.state_dict())
    assert w_s.content_hash() == w_m.content_hash()
    assert cfg_s.grid == (4, 4) and cfg_s.dim == 24 and cfg_s.levels == 3
    assert cfg_m.attention_at(0).radius == 1.2
    # the largest grid distance inside the mask (1) gives the same neighbourhood as 1.2
    assert cfg_s.attention_at(0).radius == 1.0
    assert cfg_s.attention_at(0).include_self is False  # Glom's default consensus_self
    cfg_k, _ = from_glom_pytorch(model.state_dict(), **kwargs)
    assert cfg_k == cfg_m


def test_round_trip_and_strict_load():
    for kwargs in (CONFIGS[1], CONFIGS[4]):
        model = make_model(kwargs, seed=5)
        cfg, w = from_glom_pytorch(model)
        sd = to_glom_pytorch(cfg, w)
        assert glom_kwargs(cfg, w) == {
            "consensus_self": False,
            "local_consensus_radius": 0,
            **kwargs,
        }
        fresh = glom_pytorch.Glom(**glom_kwargs(cfg, w))
        fresh.load_state_dict(sd, strict=True)
        for key, value in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key
        cfg2, w2 = from_glom_pytorch(fresh)
        assert w2.content_hash() == w.content_hash()
        assert cfg2 == cfg


def test_glomsim_weights_run_in_glom_pytorch():
    """The other direction: random glomsim weights, loaded into Glom, give simulate's run."""
    cfg = glomsim.GlomConfig(
        levels=3,
        dim=24,
        grid=(4, 4),
        steps=5,
        attention=glomsim.Attention(kernel="glom_pytorch", radius=math.sqrt(2)),
        dtype="float64",
    )
    w = glomsim.random_weights(cfg, seed=2, patch_size=2)
    # double before loading: a float32 module would round the float64 weights
    model = glom_pytorch.Glom(**glom_kwargs(cfg, w)).double()
    model.load_state_dict(to_glom_pytorch(cfg, w), strict=True)
    img = np.random.default_rng(2).standard_normal((3, 8, 8))
    ds = glomsim.simulate(cfg, w, inputs=img)
    x = torch.from_numpy(img)[None]
    with torch.no_grad():
        ref = model(x, iters=cfg.steps, return_all=True)[:, 0].permute(0, 2, 1, 3)
    assert agreement(ds.embedding.values, ref.numpy()) < TOL["float64"]
    _, w_back = from_glom_pytorch(model)
    assert w_back.content_hash() == w.content_hash()


GOOD = dict(levels=3, dim=8, grid=(4, 4), attention=glomsim.Attention(kernel="glom_pytorch"))


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(attention=glomsim.Attention(kernel="dot")), "attention.kernel"),
        (dict(attention=glomsim.Attention(kernel="glom_pytorch", beta=2.0)), "attention.beta"),
        (dict(attention=glomsim.Attention(kernel="glom_pytorch", radius=0.0)), "attention.radius"),
        (
            dict(
                attention=[
                    glomsim.Attention(kernel="glom_pytorch"),
                    glomsim.Attention(kernel="glom_pytorch", radius=1.0),
                    glomsim.Attention(kernel="glom_pytorch"),
                ]
            ),
            "attention",
        ),
        (dict(mix=glomsim.Mix(previous=0.5)), "mix.previous"),
        (dict(mix=glomsim.Mix(attention=[0.0, 1.0])), "mix.attention"),
        (dict(normalize="l2"), "normalize"),
        (dict(top_down_delay=2), "top_down_delay"),
        (dict(grid=(4, 2)), "grid"),
        (dict(grid=None, positions=[(0.0, 0.0)] * 16), "positions"),
        (dict(levels=1), "levels"),
    ],
)
def test_inexpressible_configs_raise(change, field):
    cfg = glomsim.GlomConfig(**{**GOOD, **change})
    w = glomsim.random_weights(cfg, seed=0, patch_size=2)
    with pytest.raises(ValueError, match=field.replace(".", r"\.").replace("[", r"\[")):
        to_glom_pytorch(cfg, w)


@pytest.mark.parametrize(
    "weights, field",
    [
        (lambda cfg: glomsim.random_weights(cfg, seed=0), "weights.patch_w"),
        (lambda cfg: glomsim.random_weights(cfg, seed=0, patch_size=2, channels=1), "channels"),
        (lambda cfg: glomsim.identity_weights(cfg), "weights.identity"),
        (
            lambda cfg: glomsim.random_weights(cfg.replace(hidden=16), seed=0, patch_size=2),
            "hidden",
        ),
    ],
)
def test_inexpressible_weights_raise(weights, field):
    cfg = glomsim.GlomConfig(**GOOD)
    w = weights(cfg)
    cfg = cfg.replace(hidden=w.hidden)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        to_glom_pytorch(cfg, w)


def test_bad_sources_raise():
    model = make_model(CONFIGS[0], seed=0)
    sd = model.state_dict()
    with pytest.raises(TypeError, match="module"):
        from_glom_pytorch(model, dim=24)
    with pytest.raises(TypeError, match="unexpected keyword"):
        from_glom_pytorch(sd, mult=4)
    with pytest.raises(TypeError, match="state dict"):
        from_glom_pytorch([1, 2, 3])
    with pytest.raises(ValueError, match="dim=32"):
        from_glom_pytorch(sd, dim=32)
    with pytest.raises(ValueError, match="image_size"):
        from_glom_pytorch(sd, image_size=16)
    with pytest.raises(ValueError, match="iters"):
        from_glom_pytorch(sd, iters=-1)
    broken = dict(sd)
    broken["bottom_up.net.1.bias"] = broken["bottom_up.net.1.bias"][:-1]
    with pytest.raises(ValueError, match=r"bottom_up\.net\.1\.bias"):
        from_glom_pytorch(broken)
    missing = {k: v for k, v in sd.items() if k != "top_down.net.3.weight"}
    with pytest.raises(ValueError, match=r"top_down\.net\.3\.weight"):
        from_glom_pytorch(missing)
    local = make_model(CONFIGS[2], seed=0).state_dict()
    with pytest.raises(ValueError, match="local_consensus_radius=0"):
        from_glom_pytorch(local, local_consensus_radius=0)


def test_import_glomsim_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, glomsim, glomsim.interop; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_the_config_dtype_follows_the_model(precision):
    model = make_model(CONFIGS[0], seed=0)
    if precision == "float64":
        model = model.double()
    cfg, _ = from_glom_pytorch(model)
    assert cfg.dtype == precision
    cfg, _ = from_glom_pytorch(model.state_dict())
    assert cfg.dtype == precision
    # dtype= still chooses
    other = "float32" if precision == "float64" else "float64"
    assert from_glom_pytorch(model, dtype=other)[0].dtype == other


def test_a_half_precision_model_runs_in_float32():
    model = make_model(CONFIGS[0], seed=0).half()
    assert from_glom_pytorch(model)[0].dtype == "float32"
