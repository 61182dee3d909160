"""Hypothesis strategies for configs, weights and states (keyword-only, documented).

Sizes are kept small by default so that property tests stay fast; every bound can be
widened by the caller.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ..config import KERNELS, NORMALIZATIONS, Attention, GlomConfig, Mix
from ..weights import GlomWeights, identity_weights, random_weights

_weight = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])
_positive = st.sampled_from([0.25, 0.5, 1.0, 2.0])


@st.composite
def attentions(draw, *, kernels=KERNELS, radii=(0.0, 1.0, 1.5, 2.0, math.inf)):
    """An :class:`~glomsim.Attention` of any kernel, radius and ``include_self``."""
    kernel = draw(st.sampled_from(kernels))
    return Attention(
        kernel=kernel,
        beta=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
        epsilon=draw(st.sampled_from([0.1, 0.5, 1.0, 2.0])) if kernel == "bounded" else None,
        radius=draw(st.sampled_from(radii)),
        include_self=draw(st.booleans()),
    )


@st.composite
def mixes(draw, *, positive=False, schedule=True, levels=1):
    """A :class:`~glomsim.Mix`, possibly with schedules; the config's own validation
    rejects all-zero levels, so callers filter with ``GlomConfig`` or use ``positive``."""
    w = _positive if positive else _weight

    def value():
        if schedule and draw(st.booleans()):
            return tuple(draw(st.lists(w, min_size=1, max_size=3)))
        return draw(w)

    return Mix(bottom_up=value(), top_down=value(), previous=value(), attention=value())


@st.composite
def configs(
    draw,
    *,
    max_levels=3,
    max_dim=5,
    max_side=4,
    kernels=KERNELS,
    normalizations=NORMALIZATIONS,
    dtypes=("float64",),
    per_level=True,
    positive_mix=False,
    max_delay=2,
    steps=(1, 4),
):
    """A small valid :class:`~glomsim.GlomConfig` covering kernels, radii,
    ``include_self``, per-level mixes and attention, schedules, delays and normalisations.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(configs())
    ... def test(cfg):
    ...     assert cfg.levels <= 3
    """
    levels = draw(st.integers(1, max_levels))
    dim = draw(st.integers(1, max_dim))
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    if per_level and levels > 1 and draw(st.booleans()):
        attention = tuple(draw(attentions(kernels=kernels)) for _ in range(levels))
    else:
        attention = draw(attentions(kernels=kernels))
    common = dict(
        levels=levels,
        dim=dim,
        grid=(rows, cols),
        steps=draw(st.integers(*steps)),
        attention=attention,
        top_down_delay=draw(st.integers(1, max_delay)),
        normalize=draw(st.sampled_from(normalizations)),
        dtype=draw(st.sampled_from(dtypes)),
        seed=draw(st.integers(0, 2**16)),
        hidden=draw(st.integers(1, 2 * dim + 2)),
    )
    if per_level and levels > 1 and draw(st.booleans()):
        mix = tuple(draw(mixes(positive=positive_mix)) for _ in range(levels))
    else:
        mix = draw(mixes(positive=positive_mix))
    try:
        return GlomConfig(mix=mix, **common)
    except ValueError:
        # some level's present weights sum to zero: fall back to the default mix
        return GlomConfig(mix=Mix(), **common)


@st.composite
def weights_for(draw, cfg: GlomConfig, *, identity=None) -> GlomWeights:
    """Random or identity weights that fit ``cfg``."""
    use_identity = draw(st.booleans()) if identity is None else identity
    if use_identity:
        return identity_weights(cfg)
    return random_weights(cfg, seed=draw(st.integers(0, 2**16)))


@st.composite
def states(draw, cfg: GlomConfig, *, scale=2.0, agree=False):
    """A finite state (levels, columns, dim) in the config's dtype; with ``agree``, every
    column holds the same vector per level."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (cfg.levels, 1 if agree else cfg.n_columns, cfg.dim)
    x = rng.standard_normal(shape) * scale
    if draw(st.booleans()):
        x = np.round(x, 1)  # ties and exact distances exercise the kernels' edge cases
    x = np.broadcast_to(x, (cfg.levels, cfg.n_columns, cfg.dim))
    return np.ascontiguousarray(x, dtype=cfg.np_dtype)


@st.composite
def consensus_cases(draw, *, identity=True, positive_mix=True, **config_kwargs):
    """A :class:`~glomsim.testing.Case` (config, weights, inputs, state) for invariant checks.

    By default: identity nets and positive mixing weights, ``normalize="none"``, float64.
    """
    from .checks import Case

    config_kwargs.setdefault("normalizations", ("none",))
    cfg = draw(configs(positive_mix=positive_mix, **config_kwargs))
    w = draw(weights_for(cfg, identity=identity))
    state = draw(states(cfg))
    inputs = draw(states(cfg))[0]
    return Case(cfg, w, inputs, state)
