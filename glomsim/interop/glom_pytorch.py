"""Exact conversion between glomsim and glom-pytorch (``glom_pytorch.Glom``, v0.0.14).

glom-pytorch's forward pass is one particular configuration of glomsim's update rule:

=====================================  ==================================================
glom-pytorch                           glomsim
=====================================  ==================================================
``image_to_tokens`` (Rearrange         ``patch_w = Linear.weight.T``, ``patch_b``; patches
+ Linear)                              row-major, flattened (p1, p2, channel)
``init_levels`` (L, D)                 ``init_levels``
``bottom_up`` (Conv1d, groups=L)       ``bu_w1 (L, D, H)``, ``bu_b1``, ``bu_w2 (L, H, D)``,
                                       ``bu_b2``: group l is level l's net f_l
``top_down`` (Conv1d, groups=L-1)      ``td_*``: group l reads level l+1 (+ ``pos_emb``)
``pos_emb.weight`` (N, D)              ``pos_code``
``ConsensusAttention``                 ``Attention(kernel="glom_pytorch", beta=1,
                                       radius=local_consensus_radius or inf,
                                       include_self=consensus_self)``
mean of 4 contributions (3 at top)     ``Mix()`` (all weights 1), ``normalize="none"``,
                                       ``top_down_delay=1``
``iters`` (default ``2 * levels``)     ``steps``
=====================================  ==================================================

torch is imported inside the functions only, so ``import glomsim`` never needs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..config import Attention, GlomConfig, Mix
from ..neighbours import grid_positions, within_radius
from ..weights import GlomWeights, net_fields
from ._expressible import CHANNELS, MULT, check_expressible

__all__ = ["from_glom_pytorch", "to_glom_pytorch", "glom_kwargs"]

#: The constructor arguments that shape a ``Glom`` module.
GLOM_KWARGS = (
    "dim",
    "levels",
    "image_size",
    "patch_size",
    "consensus_self",
    "local_consensus_radius",
)
_MASK_KEY = "attention.non_local_mask"


def _to_numpy(tensor) -> np.ndarray:
    import torch

    # via float64 so that bfloat16/half parameters convert too, without rounding
    return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def _square_root(n: int, what: str) -> int:
    r = math.isqrt(n)
    if r * r != n:
        raise ValueError(f"{what}={n} is not a perfect square; glom-pytorch's grid is square")
    return r


def _read_source(model_or_state_dict, kwargs: dict) -> tuple[dict, dict]:
    """The state dict and the constructor kwargs known so far (module attributes or kwargs)."""
    import torch

    unknown = sorted(set(kwargs) - set(GLOM_KWARGS))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {unknown}; glom_kwargs are the Glom constructor "
            f"arguments: {', '.join(GLOM_KWARGS)}"
        )
    if isinstance(model_or_state_dict, torch.nn.Module):
        model = model_or_state_dict
        if kwargs:
            raise TypeError(
                f"glom_kwargs {sorted(kwargs)} were given with a module: a module's settings "
                "are read from the module itself; pass its state_dict() to override them"
            )
        try:
            attention = model.attention
            known = {
                "levels": int(model.levels),
                "consensus_self": bool(attention.attend_self),
                "local_consensus_radius": attention.local_consensus_radius,
            }
        except AttributeError as exc:
            raise TypeError(
                f"model_or_state_dict is a {type(model).__name__}, not a glom_pytorch.Glom "
                f"(missing attribute: {exc})"
            ) from None
        return dict(model.state_dict()), known
    if isinstance(model_or_state_dict, Mapping):
        return dict(model_or_state_dict), dict(kwargs)
    raise TypeError(
        "model_or_state_dict must be a glom_pytorch.Glom module or its state dict, got "
        f"{type(model_or_state_dict).__name__}"
    )


def _expected_shapes(levels: int, dim: int, patch_size: int, n: int) -> dict:
    hidden = MULT * dim
    shapes = {
        "init_levels": (levels, dim),
        "image_to_tokens.1.weight": (dim, patch_size * patch_size * CHANNELS),
        "image_to_tokens.1.bias": (dim,),
        "pos_emb.weight": (n, dim),
    }
    for prefix, groups in (("bottom_up", levels), ("top_down", levels - 1)):
        shapes[f"{prefix}.net.1.weight"] = (groups * hidden, dim, 1)
        shapes[f"{prefix}.net.1.bias"] = (groups * hidden,)
        shapes[f"{prefix}.net.3.weight"] = (groups * dim, hidden, 1)
        shapes[f"{prefix}.net.3.bias"] = (groups * dim,)
    return shapes


def _infer_kwargs(sd: dict, known: dict) -> dict:
    """Complete the constructor kwargs from tensor shapes, checking any that were given."""
    for key in ("init_levels", "pos_emb.weight", "image_to_tokens.1.weight"):
        if key not in sd:
            raise ValueError(f"state dict has no {key!r}: it is not a glom_pytorch.Glom state dict")
    levels, dim = (int(s) for s in sd["init_levels"].shape)
    n = int(sd["pos_emb.weight"].shape[0])
    side = _square_root(n, "pos_emb.weight rows (columns)")
    fan_in = int(sd["image_to_tokens.1.weight"].shape[1])
    if fan_in % CHANNELS:
        raise ValueError(
            f"image_to_tokens.1.weight has {fan_in} inputs, not patch_size**2 * {CHANNELS}"
        )
    patch_size = _square_root(fan_in // CHANNELS, "image_to_tokens.1.weight inputs / 3")
    inferred = {"levels": levels, "dim": dim, "patch_size": patch_size}
    for name, value in inferred.items():
        given = known.get(name)
        if given is not None and int(given) != value:
            raise ValueError(f"{name}={given!r} but the state dict's shapes say {name}={value}")
    image_size = known.get("image_size")
    if image_size is None:
        image_size = side * patch_size
    elif int(image_size) // patch_size != side:
        raise ValueError(
            f"image_size={image_size!r} with patch_size={patch_size} gives a "
            f"{int(image_size) // patch_size}-column side, but pos_emb.weight has {n} = "
            f"{side}**2 columns"
        )
    if levels < 2:
        raise ValueError(f"levels={levels}: glom-pytorch needs at least 2 levels")
    out = {
        "dim": dim,
        "levels": levels,
        "image_size": int(image_size),
        "patch_size": patch_size,
        # Glom's own default, so the kwargs one gave to Glom(...) read its state dict alike
        "consensus_self": bool(known.get("consensus_self", False)),
        "local_consensus_radius": known.get("local_consensus_radius"),
    }
    expected = _expected_shapes(levels, dim, patch_size, n)
    for key, shape in expected.items():
        if key not in sd:
            raise ValueError(f"state dict has no {key!r} (expected shape {shape})")
        if tuple(sd[key].shape) != shape:
            raise ValueError(
                f"state dict {key!r} has shape {tuple(sd[key].shape)}, expected {shape} for "
                f"levels={levels}, dim={dim}, patch_size={patch_size}"
            )
    extra = sorted(set(sd) - set(expected) - {_MASK_KEY})
    if extra:
        raise ValueError(f"state dict has keys glom_pytorch.Glom does not: {extra}")
    return out


def _consensus_radius(sd: dict, given, side: int) -> float:
    """The neighbourhood radius in glomsim's convention (closed ball, inf = all columns).

    The mask buffer, when present, is what the model runs with, so it decides: the given
    radius is kept when its closed ball is exactly the mask (the usual case), otherwise the
    largest distance the mask allows, which reproduces the mask exactly.
    """
    mask = sd.get(_MASK_KEY)
    if mask is None:
        if given is None or given <= 0:
            return math.inf
        return float(given)
    if given is not None and given <= 0:
        raise ValueError(
            f"local_consensus_radius={given!r} means global attention, but the state dict "
            f"holds {_MASK_KEY!r} (local attention)"
        )
    n = side * side
    allowed = ~np.asarray(mask.detach().cpu().numpy(), dtype=bool).reshape(-1, n, n)[0]
    positions = grid_positions(side, side)
    if given is not None and np.array_equal(within_radius(positions, float(given)), allowed):
        return float(given)
    diff = positions[:, None, :] - positions[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    radius = float(dist[allowed].max()) if allowed.any() else 0.0
    if radius == 0.0 or not np.array_equal(within_radius(positions, radius), allowed):
        raise ValueError(
            f"{_MASK_KEY!r} is not the closed ball of any radius > 0 around each column, "
            "so no glomsim neighbourhood reproduces it"
        )
    return radius


def _split_groups(sd: dict, prefix: str, groups: int, dim: int) -> tuple[np.ndarray, ...]:
    """A grouped 1x1 Conv1d pair -> stacked row-vector nets (G, D, H), (G, H), (G, H, D), (G, D).

    Group g of the first conv maps input channels [g D, (g+1) D) to output channels
    [g H, (g+1) H): its weight rows g H .. (g+1) H - 1 are W1_g (H, D), used as x @ W1_g.T.
    """
    hidden = MULT * dim
    w1 = _to_numpy(sd[f"{prefix}.net.1.weight"])[..., 0].reshape(groups, hidden, dim)
    b1 = _to_numpy(sd[f"{prefix}.net.1.bias"]).reshape(groups, hidden)
    w2 = _to_numpy(sd[f"{prefix}.net.3.weight"])[..., 0].reshape(groups, dim, hidden)
    b2 = _to_numpy(sd[f"{prefix}.net.3.bias"]).reshape(groups, dim)
    return w1.transpose(0, 2, 1).copy(), b1, w2.transpose(0, 2, 1).copy(), b2


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("glom-pytorch")
    except PackageNotFoundError:
        return None


def _model_dtype(sd: dict) -> str:
    """The simulation dtype that follows a state dict's parameters: float64 when any
    floating tensor is float64, else float32 (half and bfloat16 included)."""
    import torch

    floats = [t for t in sd.values() if hasattr(t, "dtype") and t.dtype.is_floating_point]
    return "float64" if any(t.dtype == torch.float64 for t in floats) else "float32"


def from_glom_pytorch(
    model_or_state_dict, *, iters: int | None = None, dtype: str | None = None, **glom_kwargs
) -> tuple[GlomConfig, GlomWeights]:
    """The glomsim config and weights that reproduce a glom-pytorch ``Glom`` exactly.

    ``simulate(cfg, w, inputs=img)`` with an image ``img`` (3, H, W) then gives, at every
    step, the states of ``model(img[None], iters=iters, return_all=True)`` (up to float
    round-off), as ``embedding(time, level, column, feature)``.

    Parameters
    ----------
    model_or_state_dict : glom_pytorch.Glom or mapping of str to torch.Tensor
        A module (its settings are read from it) or its ``state_dict()``.
    iters : int, optional
        Steps of the returned config; default glom-pytorch's ``2 * levels``.
    dtype : {"float32", "float64"}, optional
        Arithmetic of the simulation; default the model's: float64 when its parameters
        are float64, else float32. The weights keep the tensors' values exactly.
    **glom_kwargs
        With a state dict only: the ``Glom`` constructor arguments ``dim``, ``levels``,
        ``image_size``, ``patch_size``, ``consensus_self``, ``local_consensus_radius``.
        ``dim``, ``levels``, ``patch_size`` and the grid side are read from tensor shapes
        (given values are checked against them); ``consensus_self`` defaults to Glom's
        default False; a radius is read from ``attention.non_local_mask`` when absent.

    Returns
    -------
    cfg : GlomConfig
        ``Attention(kernel="glom_pytorch", beta=1, radius=local_consensus_radius or inf,
        include_self=consensus_self)``, ``Mix()`` (plain mean), ``top_down_delay=1``,
        ``normalize="none"``, ``grid=(image_size // patch_size,) * 2``, hidden ``4 * dim``.
    weights : GlomWeights
        With the patch embedding; ``meta`` records ``kind="glom_pytorch"``, the
        constructor kwargs and the glom-pytorch version.

    Raises
    ------
    TypeError
        Not a Glom module or state dict, unknown kwargs, or kwargs given with a module.
    ValueError
        Tensor shapes or kwargs that do not fit together, naming the key.

    Examples
    --------
    >>> import torch, glom_pytorch, glomsim
    >>> from glomsim.interop import from_glom_pytorch
    >>> model = glom_pytorch.Glom(dim=16, levels=3, image_size=8, patch_size=2)
    >>> cfg, w = from_glom_pytorch(model)
    >>> cfg.grid, cfg.steps, cfg.attention.kernel
    ((4, 4), 6, 'glom_pytorch')
    >>> img = torch.randn(3, 8, 8)
    >>> ds = glomsim.simulate(cfg, w, inputs=img.numpy())
    >>> ref = model(img[None], return_all=True)[:, 0].permute(0, 2, 1, 3)
    >>> bool(abs(ds.embedding.values - ref.detach().numpy()).max() < 1e-4)
    True
    """
    sd, known = _read_source(model_or_state_dict, glom_kwargs)
    kw = _infer_kwargs(sd, known)
    side = kw["image_size"] // kw["patch_size"]
    radius = _consensus_radius(sd, kw["local_consensus_radius"], side)
    kw["local_consensus_radius"] = 0 if math.isinf(radius) else radius
    levels, dim = kw["levels"], kw["dim"]
    if iters is not None and (isinstance(iters, bool) or not isinstance(iters, int) or iters < 0):
        raise ValueError(f"iters={iters!r} must be an integer >= 0 or None (2 * levels)")
    if dtype is None:
        dtype = _model_dtype(sd)

    cfg = GlomConfig(
        levels=levels,
        dim=dim,
        grid=(side, side),
        steps=2 * levels if iters is None else iters,
        mix=Mix(),
        attention=Attention(
            kernel="glom_pytorch", beta=1.0, radius=radius, include_self=kw["consensus_self"]
        ),
        top_down_delay=1,
        normalize="none",
        dtype=dtype,
    )
    bu = _split_groups(sd, "bottom_up", levels, dim)
    td = _split_groups(sd, "top_down", levels - 1, dim)
    weights = GlomWeights(
        levels=levels,
        dim=dim,
        hidden=MULT * dim,
        n_columns=side * side,
        **net_fields(bu, td),
        pos_code=_to_numpy(sd["pos_emb.weight"]),
        init_levels=_to_numpy(sd["init_levels"]),
        # nn.Linear computes x @ weight.T + bias
        patch_w=_to_numpy(sd["image_to_tokens.1.weight"]).T.copy(),
        patch_b=_to_numpy(sd["image_to_tokens.1.bias"]),
        patch_size=kw["patch_size"],
        meta={
            "kind": "glom_pytorch",
            "glom_kwargs": dict(kw),
            "glom_pytorch_version": _package_version(),
        },
    )
    return cfg, weights


def glom_kwargs(cfg: GlomConfig, weights: GlomWeights) -> dict:
    """The ``glom_pytorch.Glom`` constructor arguments of a glomsim config and weights.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights
        They need a 3-channel patch embedding, as glom-pytorch's has.

    Returns
    -------
    dict
        ``dim``, ``levels``, ``image_size``, ``patch_size``, ``consensus_self``,
        ``local_consensus_radius`` (0 for global attention). ``cfg.steps`` is not among
        them: pass it to the forward call as ``iters``.

    Raises
    ------
    ValueError
        When glom-pytorch cannot express ``cfg``/``weights``; the message names the field.

    Examples
    --------
    >>> import glomsim
    >>> from glomsim.interop import glom_kwargs
    >>> cfg = glomsim.GlomConfig(levels=3, dim=8, grid=(4, 4),
    ...                          attention=glomsim.Attention(kernel="glom_pytorch"))
    >>> w = glomsim.random_weights(cfg, seed=0, patch_size=2)
    >>> glom_kwargs(cfg, w)["image_size"]
    8
    """
    att = check_expressible(cfg, weights)
    return {
        "dim": cfg.dim,
        "levels": cfg.levels,
        "image_size": cfg.grid[0] * weights.patch_size,
        "patch_size": weights.patch_size,
        "consensus_self": att.include_self,
        "local_consensus_radius": 0 if math.isinf(att.radius) else att.radius,
    }


def to_glom_pytorch(cfg: GlomConfig, weights: GlomWeights, *, dtype: str | None = None) -> dict:
    """A state dict that ``glom_pytorch.Glom(**glom_kwargs(cfg, weights))`` loads strictly.

    The inverse of :func:`from_glom_pytorch`: the loaded model's forward pass with
    ``iters=cfg.steps`` reproduces ``simulate(cfg, weights, inputs=img)``.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights
    dtype : {"float32", "float64"}, optional
        Tensor dtype; default ``cfg.dtype``. float64 keeps float64 weights bit-exact;
        weights that came from a float32 model are exact either way.

    Returns
    -------
    dict of str to torch.Tensor
        In ``Glom.state_dict()`` order; ``attention.non_local_mask`` (glomsim's closed
        ball, so the loaded model attends exactly where glomsim does) when the radius is
        finite.

    Raises
    ------
    ValueError
        When glom-pytorch cannot express ``cfg``/``weights`` (another kernel, beta != 1,
        per-level attention, mixing weights != 1, normalisation, ``top_down_delay`` != 1,
        no 3-channel patch embedding, a non-square grid, ...); the message names the field.

    Examples
    --------
    >>> import glom_pytorch, glomsim
    >>> from glomsim.interop import glom_kwargs, to_glom_pytorch
    >>> cfg = glomsim.GlomConfig(levels=3, dim=8, grid=(4, 4),
    ...                          attention=glomsim.Attention(kernel="glom_pytorch"))
    >>> w = glomsim.random_weights(cfg, seed=0, patch_size=2)
    >>> model = glom_pytorch.Glom(**glom_kwargs(cfg, w))
    >>> model.load_state_dict(to_glom_pytorch(cfg, w))
    <All keys matched successfully>
    """
    import torch

    kw = glom_kwargs(cfg, weights)
    dtype = cfg.dtype if dtype is None else dtype
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r} is not allowed; allowed: float32, float64")
    tdtype = getattr(torch, dtype)

    def tensor(a):
        return torch.tensor(np.ascontiguousarray(a, dtype=np.float64), dtype=tdtype)

    def grouped(w1, b1, w2, b2):
        g, d, h = w1.shape
        return (
            tensor(w1.transpose(0, 2, 1).reshape(g * h, d)[..., None]),
            tensor(b1.reshape(g * h)),
            tensor(w2.transpose(0, 2, 1).reshape(g * d, h)[..., None]),
            tensor(b2.reshape(g * d)),
        )

    L, D = cfg.levels, cfg.dim
    init = weights.init_levels if weights.init_levels is not None else np.zeros((L, D))
    sd = {
        "init_levels": tensor(init),
        "image_to_tokens.1.weight": tensor(weights.patch_w.T),
        "image_to_tokens.1.bias": tensor(weights.patch_b),
        "pos_emb.weight": tensor(weights.pos_code),
    }
    for prefix, nets in (
        ("bottom_up", (weights.bu_w1, weights.bu_b1, weights.bu_w2, weights.bu_b2)),
        ("top_down", (weights.td_w1, weights.td_b1, weights.td_w2, weights.td_b2)),
    ):
        w1, b1, w2, b2 = grouped(*nets)
        sd[f"{prefix}.net.1.weight"] = w1
        sd[f"{prefix}.net.1.bias"] = b1
        sd[f"{prefix}.net.3.weight"] = w2
        sd[f"{prefix}.net.3.bias"] = b2
    if kw["local_consensus_radius"] > 0:
        # glomsim's float64 closed ball rather than torch's float32 cdist, so that a radius
        # on a grid distance (e.g. sqrt 2) cannot fall on different sides of it
        allowed = within_radius(cfg.position_array(), kw["local_consensus_radius"])
        sd[_MASK_KEY] = torch.from_numpy(~allowed)[None]
    return sd
