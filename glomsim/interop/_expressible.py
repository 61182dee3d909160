"""What glom-pytorch can express: the checks :func:`glomsim.interop.to_glom_pytorch` and
:func:`glomsim.interop.glom_kwargs` run before converting, each naming the first field
glom-pytorch has no counterpart for.
"""

from __future__ import annotations

from ..config import Attention, GlomConfig, Mix
from ..weights import GlomWeights

#: glom-pytorch's patch embedding is ``nn.Linear(patch_size ** 2 * 3, dim)``: RGB only.
CHANNELS = 3
#: glom-pytorch's GroupedFeedForward is built with its default ``mult=4``.
MULT = 4


def _all_equal_to_one(value) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return all(v == 1.0 for v in values)


def check_expressible(cfg: GlomConfig, weights: GlomWeights) -> Attention:
    """Raise ValueError naming the first field glom-pytorch cannot express; return the
    attention settings shared by all levels."""
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    if not isinstance(weights, GlomWeights):
        raise TypeError(f"weights must be GlomWeights, got {type(weights).__name__}")
    weights.check(cfg)
    _check_layout(cfg)
    att = _check_attention(cfg)
    _check_nets(cfg, weights)
    return att


def _check_layout(cfg: GlomConfig) -> None:
    """Levels, grid, normalisation, delay and mixing weights glom-pytorch can express."""
    if cfg.levels < 2:
        raise ValueError(
            f"levels={cfg.levels}: glom-pytorch needs at least 2 levels (its top-down net has "
            "levels - 1 groups)"
        )
    if cfg.positions is not None:
        raise ValueError("positions: glom-pytorch's columns are a square grid; use grid=(n, n)")
    if cfg.grid[0] != cfg.grid[1]:
        raise ValueError(
            f"grid={cfg.grid}: glom-pytorch's grid is square (image_size // patch_size)"
        )
    if cfg.normalize != "none":
        raise ValueError(f"normalize={cfg.normalize!r}: glom-pytorch does not normalise ('none')")
    for name in ("bottom_up_activation", "top_down_activation"):
        if getattr(cfg, name) != "gelu":
            raise ValueError(
                f"{name}={getattr(cfg, name)!r}: glom-pytorch's nets use GELU ('gelu') only"
            )
    if cfg.top_down_delay != 1:
        raise ValueError(
            f"top_down_delay={cfg.top_down_delay}: glom-pytorch's top-down reads the previous "
            "step (1)"
        )
    for level in range(cfg.levels):
        mix = cfg.mix_at(level)
        for name in ("bottom_up", "top_down", "previous", "attention"):
            if not _all_equal_to_one(getattr(mix, name)):
                where = "mix" if isinstance(cfg.mix, Mix) else f"mix[{level}]"
                raise ValueError(
                    f"{where}.{name}={getattr(mix, name)!r}: glom-pytorch takes the plain mean "
                    "of the contributions (every mixing weight 1)"
                )


def _check_attention(cfg: GlomConfig) -> Attention:
    """The one attention of all levels, if glom-pytorch's consensus attention is it."""
    atts = [cfg.attention_at(level) for level in range(cfg.levels)]
    if any(a != atts[0] for a in atts[1:]):
        raise ValueError(
            f"attention={cfg.attention!r}: levels use different attention settings; "
            "glom-pytorch has one consensus attention for all levels"
        )
    att = atts[0]
    if att.kernel != "glom_pytorch":
        raise ValueError(
            f"attention.kernel={att.kernel!r}: glom-pytorch's consensus attention is the "
            "'glom_pytorch' kernel"
        )
    if att.sample is not None:
        raise ValueError(
            f"attention.sample={att.sample!r}: glom-pytorch attends to every column within "
            "the radius (None)"
        )
    if att.beta != 1.0:
        raise ValueError(f"attention.beta={att.beta!r}: glom-pytorch's attention has beta 1")
    if att.radius == 0.0:
        raise ValueError(
            "attention.radius=0.0: glom-pytorch reads local_consensus_radius=0 as global "
            "attention; any radius in (0, 1) gives the same self-only neighbourhood"
        )
    return att


def _check_nets(cfg: GlomConfig, weights: GlomWeights) -> None:
    """Nets and patch embedding in glom-pytorch's shapes."""
    if weights.identity:
        raise ValueError(
            "weights.identity=True: glom-pytorch's nets are MLPs and cannot be exact identities"
        )
    if weights.hidden != MULT * cfg.dim:
        raise ValueError(
            f"weights.hidden={weights.hidden}: glom-pytorch's nets have hidden width "
            f"{MULT} * dim = {MULT * cfg.dim}"
        )
    if weights.patch_w is None:
        raise ValueError(
            "weights.patch_w=None: glom-pytorch always embeds an image through patches; make "
            "weights with a patch embedding (e.g. random_weights(cfg, patch_size=...))"
        )
    if weights.channels != CHANNELS:
        raise ValueError(
            f"weights.patch_w has {weights.channels} channels: glom-pytorch's patch embedding "
            f"takes {CHANNELS}"
        )
