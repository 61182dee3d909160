"""Hypothesis strategies for configs, weights and states (keyword-only, documented).

Sizes are kept small by default so that property tests stay fast; every bound can be
widened by the caller. Like xarray's strategies they compose: where a choice is given as
a sequence of values, a strategy may be given instead (``kernels=st.just("dot")``), and
:func:`configs` takes strategies for its levels' ``attention`` and ``mix``.

The kernels drawn by default (:data:`DEFAULT_KERNELS`) include the contrastive one,
with its ``thresholds`` and ``repulsions``; the other mechanisms of issue 13 are drawn on
request: sampled neighbourhoods (``attentions(samples=[None, 1, 3])``) and the nets'
activations (``with_activations(configs())``). Every check of
:mod:`glomsim.testing.checks` can judge the default space (what the mechanisms do to the
invariants is in that module's docs).

The default thresholds stop short of -1: a cosine of exactly -1 (antiparallel columns,
as every pair is in dimension 2 under layernorm) is computed as -1 give or take a unit
in the last place, differently by the reference and the kernels, so a threshold of
exactly -1 is a tie that round-off alone decides (ask for it with ``thresholds=``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - hypothesis is a dependency of glomsim
    raise ImportError(
        "glomsim.testing needs hypothesis (pip install hypothesis); glomsim itself does not"
    ) from err

from ..config import ACTIVATIONS, KERNELS, NORMALIZATIONS, Attention, GlomConfig, Mix
from ..weights import GlomWeights, identity_weights, random_weights

#: The kernels drawn by default: all of them, the contrastive one included.
DEFAULT_KERNELS = KERNELS

_weight = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])
_positive = st.sampled_from([0.25, 0.5, 1.0, 2.0])


def _choice(values) -> st.SearchStrategy:
    """A strategy as given, or one of a sequence of values."""
    return values if isinstance(values, st.SearchStrategy) else st.sampled_from(values)


@st.composite
def attentions(
    draw,
    *,
    kernels=DEFAULT_KERNELS,
    radii=(0.0, 1.0, 1.5, 2.0, math.inf),
    thresholds=(-0.99, -0.3, 0.0, 0.5, 0.95),
    repulsions=(0.0, 0.5, 1.0, 3.0),
    samples=(None,),
    sample_widths=(0.5, 1.0, 2.0, math.inf),
):
    """An :class:`~glomsim.Attention` of any kernel, radius and ``include_self``.

    Each argument is a sequence to pick from, or a strategy: ``thresholds`` and
    ``repulsions`` are the contrastive kernel's, ``samples`` the number of sampled
    neighbours (None: attend to all), ``sample_widths`` the sampling's width.

    Examples
    --------
    >>> from hypothesis import given, strategies as st
    >>> @given(attentions(kernels=["bounded"], radii=st.floats(0, 3)))
    ... def test(att):
    ...     assert att.epsilon > 0
    >>> test()
    >>> @given(attentions(kernels=["contrastive"], samples=[2]))
    ... def test_new(att):
    ...     assert -1 <= att.threshold <= 1 and att.sample == 2
    >>> test_new()
    """
    kernel = draw(_choice(kernels))
    extra = {}
    if kernel == "contrastive":
        extra.update(threshold=draw(_choice(thresholds)), repulsion=draw(_choice(repulsions)))
    sample = draw(_choice(samples))
    if sample is not None:
        extra.update(sample=sample, sample_width=draw(_choice(sample_widths)))
    return Attention(
        kernel=kernel,
        beta=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
        epsilon=draw(st.sampled_from([0.1, 0.5, 1.0, 2.0])) if kernel == "bounded" else None,
        radius=draw(_choice(radii)),
        include_self=draw(st.booleans()),
        **extra,
    )


@st.composite
def mixes(draw, *, positive=False, schedule=True, levels=1):
    """A :class:`~glomsim.Mix`, possibly with schedules; the config's own validation
    rejects all-zero levels, so callers filter with ``GlomConfig`` or use ``positive``.
    ``levels`` is accepted and unused (a Mix serves any number of levels)."""
    w = _positive if positive else _weight

    def value():
        if schedule and draw(st.booleans()):
            return tuple(draw(st.lists(w, min_size=1, max_size=3)))
        return draw(w)

    return Mix(bottom_up=value(), top_down=value(), previous=value(), attention=value())


@dataclass(frozen=True)
class _ConfigSpace:
    """What :func:`configs` draws from."""

    max_levels: int
    max_dim: int
    max_side: int
    normalizations: st.SearchStrategy
    dtypes: st.SearchStrategy
    per_level: bool
    max_delay: int
    steps: tuple[int, int]
    attention: st.SearchStrategy
    mix: st.SearchStrategy


def configs(
    *,
    max_levels=3,
    max_dim=5,
    max_side=4,
    kernels=DEFAULT_KERNELS,
    normalizations=NORMALIZATIONS,
    dtypes=("float64",),
    per_level=True,
    positive_mix=False,
    max_delay=2,
    steps=(1, 4),
    attention=None,
    mix=None,
) -> st.SearchStrategy:
    """A small valid :class:`~glomsim.GlomConfig` covering kernels, radii,
    ``include_self``, per-level mixes and attention, schedules, delays and
    normalisations (GELU nets: :func:`with_activations` draws the others).

    Parameters
    ----------
    max_levels, max_dim, max_side, max_delay : int
        Upper bounds of levels, dim, grid rows and columns, and top_down_delay.
    kernels, normalizations, dtypes : sequence or strategy
        What to pick from; ``kernels`` is used by the default ``attention``.
    per_level : bool
        Whether some configs get one Mix and one Attention per level.
    positive_mix : bool
        Only positive mixing weights (default ``mix``).
    steps : (int, int)
        Bounds of the number of steps.
    attention, mix : strategy, optional
        Strategies of the :class:`~glomsim.Attention` and :class:`~glomsim.Mix` of a level
        (default :func:`attentions` and :func:`mixes`).

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(configs())
    ... def test(cfg):
    ...     assert cfg.levels <= 3
    >>> @given(configs(attention=attentions(kernels=["dot"]), dtypes=["float32"]))
    ... def test_dot(cfg):
    ...     assert cfg.attention_at(0).kernel == "dot" and cfg.dtype == "float32"
    >>> test_dot()
    """
    space = _ConfigSpace(
        max_levels=max_levels,
        max_dim=max_dim,
        max_side=max_side,
        normalizations=_choice(normalizations),
        dtypes=_choice(dtypes),
        per_level=per_level,
        max_delay=max_delay,
        steps=tuple(steps),
        attention=attentions(kernels=kernels) if attention is None else attention,
        mix=mixes(positive=positive_mix) if mix is None else mix,
    )
    return _configs(space)


@st.composite
def with_activations(draw, config, *, activations=ACTIVATIONS):
    """The configs of the strategy ``config`` with their bottom-up and top-down
    activations each drawn from ``activations`` (a sequence or a strategy).

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(with_activations(configs(), activations=["sin"]))
    ... def test(cfg):
    ...     assert cfg.top_down_activation == cfg.bottom_up_activation == "sin"
    >>> test()
    """
    cfg = draw(config)
    return cfg.replace(bottom_up_activation=draw(_choice(activations)),
                       top_down_activation=draw(_choice(activations)))  # fmt: skip


def _per_level_draw(draw, space, strategy, levels):
    if space.per_level and levels > 1 and draw(st.booleans()):
        return tuple(draw(strategy) for _ in range(levels))
    return draw(strategy)


@st.composite
def _configs(draw, space: _ConfigSpace):
    levels = draw(st.integers(1, space.max_levels))
    dim = draw(st.integers(1, space.max_dim))
    rows = draw(st.integers(1, space.max_side))
    cols = draw(st.integers(1, space.max_side))
    attention = _per_level_draw(draw, space, space.attention, levels)
    common = dict(
        levels=levels,
        dim=dim,
        grid=(rows, cols),
        steps=draw(st.integers(*space.steps)),
        attention=attention,
        top_down_delay=draw(st.integers(1, space.max_delay)),
        normalize=draw(space.normalizations),
        dtype=draw(space.dtypes),
        seed=draw(st.integers(0, 2**16)),
        hidden=draw(st.integers(1, 2 * dim + 2)),
    )
    mix = _per_level_draw(draw, space, space.mix, levels)
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
def frames_for(draw, cfg: GlomConfig, *, n_frames=None, steps_per_frame=None, scale=1.0):
    """Level-0 input for a frames run of ``cfg``: ``{"frames": (F, columns, dim) array in
    the config's dtype, "steps_per_frame": k}``, to pass as ``simulate(cfg, w, **drawn)``.

    ``n_frames`` and ``steps_per_frame`` are strategies (or None: 1-4 frames, k in 1-3),
    so they compose; some draws repeat a frame, so runs see frames that do and do not
    change.

    Examples
    --------
    >>> import glomsim as gs, glomsim.testing as gt
    >>> cfg = gs.GlomConfig(levels=2, dim=3, grid=(2, 2), steps=4)
    >>> drawn = gt.frames_for(cfg).example()  # doctest: +SKIP
    """
    n = draw(st.integers(1, 4) if n_frames is None else n_frames)
    k = draw(st.integers(1, 3) if steps_per_frame is None else steps_per_frame)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = rng.standard_normal((n, cfg.n_columns, cfg.dim)) * scale
    if n > 1 and draw(st.booleans()):
        frames[1] = frames[0]  # a frame that does not change
    return {"frames": np.ascontiguousarray(frames, dtype=cfg.np_dtype), "steps_per_frame": k}


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
def consensus_cases(draw, *, identity=True, positive_mix=True, config=None, **config_kwargs):
    """A :class:`~glomsim.testing.Case` (config, weights, inputs, state) for invariant checks.

    By default: identity nets and positive mixing weights, ``normalize="none"``, float64.
    ``config`` is a strategy of configs to use instead of
    ``configs(positive_mix=positive_mix, **config_kwargs)``.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(consensus_cases(config=configs(max_levels=1, normalizations=["none"])))
    ... def test(case):
    ...     assert case.cfg.levels == 1
    >>> test()
    """
    from .checks import Case

    if config is None:
        config_kwargs.setdefault("normalizations", ("none",))
        config = configs(positive_mix=positive_mix, **config_kwargs)
    elif config_kwargs:
        raise TypeError(f"consensus_cases: give config= or {sorted(config_kwargs)}, not both")
    cfg = draw(config)
    w = draw(weights_for(cfg, identity=identity))
    state = draw(states(cfg))
    inputs = draw(states(cfg))[0]
    return Case(cfg, w, inputs, state)
