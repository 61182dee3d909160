"""What training learns from: examples from scenes or token sets, the states the nets learn
to predict, and corrupted minibatches of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_choice, check_int
from ..config import GlomConfig
from ..reference import net_forward, normalize
from ..weights import GlomWeights
from .losses import TrainingBatch

__all__ = ["TARGETS", "make_training_scenes", "level_states", "to_examples", "make_batch"]

#: How the states the nets learn to predict are made.
TARGETS = ("settled", "bottom_up")


@dataclass(frozen=True)
class _Example:
    tokens: np.ndarray  # (N, D) float64
    labels: np.ndarray | None  # (L, N) int64


def _fit_labels(labels, cfg, where):
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[None, :]
    if (
        labels.ndim != 2
        or labels.shape[0] < 1
        or labels.shape[1] != cfg.n_columns
        or labels.dtype.kind not in "iu"
    ):
        raise ValueError(
            f"{where}: labels has shape {labels.shape} and dtype {labels.dtype}; expected "
            f"integers of shape (levels, {cfg.n_columns})"
        )
    # a scene may know fewer or more levels than the config: keep what exists and let the
    # coarsest known level stand for the levels above it, as simulate(inputs=scene) does
    fixed = np.empty((cfg.levels, cfg.n_columns), dtype=np.int64)
    k = min(cfg.levels, labels.shape[0])
    fixed[:k] = labels[:k]
    fixed[k:] = labels[k - 1]
    return fixed


def _tokens_and_labels(item, where):
    """A scene, dict, (tokens, labels) pair or bare token array as (tokens, labels)."""
    if hasattr(item, "tokens") and hasattr(item, "labels"):
        return item.tokens, item.labels
    if isinstance(item, dict):
        if "tokens" not in item:
            raise ValueError(f"{where} is a dict without 'tokens'")
        return item["tokens"], item.get("labels")
    if isinstance(item, tuple) and len(item) == 2:
        return item
    return item, None


def _example(cfg, item, where) -> _Example:
    tokens, labels = _tokens_and_labels(item, where)
    tokens = np.asarray(tokens)
    N, D = cfg.n_columns, cfg.dim
    if tokens.dtype.kind not in "fiu" or tokens.shape != (N, D):
        raise ValueError(
            f"{where}: tokens has shape {tokens.shape} and dtype {tokens.dtype}; expected "
            f"numbers of shape ({N}, {D}) = (columns, dim) of the config"
        )
    if not np.all(np.isfinite(tokens)):
        raise ValueError(f"{where}: tokens contains NaN or inf")
    fitted = None if labels is None else _fit_labels(labels, cfg, where)
    return _Example(np.array(tokens, dtype=np.float64), fitted)


def to_examples(cfg, data) -> list:
    """Turn scenes, (tokens, labels) pairs, dicts or bare token arrays into _Examples."""
    if isinstance(data, np.ndarray):
        if data.ndim == 2:
            data = [data]
        elif data.ndim == 3:
            data = list(data)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
        raise TypeError(
            f"scenes_or_token_sets={type(data).__name__} must be a sequence of scenes, "
            "(tokens, labels) pairs, {'tokens', 'labels'} dicts or token arrays"
        )
    if len(data) == 0:
        raise ValueError("scenes_or_token_sets is empty; give at least one scene or token set")
    return [_example(cfg, item, f"scenes_or_token_sets[{i}]") for i, item in enumerate(data)]


def make_training_scenes(cfg: GlomConfig, n: int, seed: int = 0, **scene_kwargs) -> list:
    """``n`` synthetic scenes that fit ``cfg``, from seeds drawn from ``seed``.

    Parameters
    ----------
    cfg : GlomConfig
        Must be on a grid; scenes get its grid, dim and levels.
    n : int
        Number of scenes (>= 1).
    seed : int
        Scene ``k`` uses seed ``SeedSequence(seed).generate_state(n)[k]``, so scenes made
        from different seeds differ (held-out scenes: use another ``seed``).
    **scene_kwargs
        Passed to :func:`glomsim.scenes.make_scene` (``n_objects``, ``noise``, ...).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8))
    >>> scenes = make_training_scenes(cfg, 2, seed=0, n_objects=2)
    >>> len(scenes), scenes[0].labels.shape
    (2, (3, 64))
    """
    from ..scenes import make_scene

    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    if cfg.grid is None or cfg.positions is not None:
        raise ValueError(
            "cfg.positions is set: training scenes need a grid config (GlomConfig(grid=...))"
        )
    n = check_int("n", n, lo=1)
    seed = check_int("seed", seed, lo=0)
    seeds = np.random.SeedSequence(seed).generate_state(n)
    return [
        make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=int(s), **scene_kwargs)
        for s in seeds
    ]


def level_states(cfg: GlomConfig, weights: GlomWeights, tokens, *, targets="bottom_up", steps=None):
    """The states (levels, columns, dim) float64 that the nets learn to predict.

    ``targets="settled"``: the final state of ``simulate(cfg, weights, inputs=tokens)``
    after ``steps`` steps (default ``cfg.steps``). ``targets="bottom_up"``: one bottom-up
    pass, S_0 = norm(f_0(u)), S_l = norm(f_l(S_{l-1})), with the config's normalisation.

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), normalize="l2")
    >>> w = gs.random_weights(cfg, seed=0)
    >>> s = level_states(cfg, w, np.ones((4, 4)), targets="bottom_up")
    >>> s.shape, bool(np.allclose((s**2).sum(-1), 1))
    ((2, 4, 4), True)
    """
    check_choice("targets", targets, TARGETS)
    tokens = np.asarray(tokens, dtype=np.float64)
    if targets == "settled":
        from ..simulation import simulate

        n = cfg.steps if steps is None else steps
        ds = simulate(cfg, weights, inputs=tokens, steps=n, record_every=max(n, 1))
        return np.asarray(ds["embedding"].values[-1], dtype=np.float64)
    states = np.empty((cfg.levels,) + tokens.shape)
    below = tokens
    for level in range(cfg.levels):
        out = net_forward(
            below,
            weights.bu_w1[level],
            weights.bu_b1[level],
            weights.bu_w2[level],
            weights.bu_b2[level],
            activation=cfg.bottom_up_activation,
        )
        below = states[level] = normalize(out, cfg.normalize)
    return states


def _corrupt(x, noise, rng):
    """Gaussian noise of std ``noise`` times each row's RMS entry (scale-free corruption)."""
    if noise == 0:
        return x.copy()
    rms = np.sqrt((x * x).mean(axis=-1, keepdims=True))
    return x + noise * rms * rng.standard_normal(x.shape)


def make_batch(cfg, weights, examples, states, *, noise, rng) -> TrainingBatch:
    """Stack ``examples`` (tokens, labels) and their ``states`` into one TrainingBatch,
    corrupting the nets' inputs with relative Gaussian noise ``noise``."""
    L = cfg.levels
    below, target, labels, scene = [], [], [], []
    offset = 0
    for k, (ex, s) in enumerate(zip(examples, states, strict=True)):
        below.append(np.concatenate([ex.tokens[None], s[:-1]], axis=0))
        target.append(s)
        if ex.labels is None:
            lab = np.full((L, cfg.n_columns), -1, dtype=np.int64)
        else:
            # make islands unique across the scenes of the batch
            lab = np.where(ex.labels >= 0, ex.labels + offset, -1)
            offset = int(lab.max()) + 1 if (lab >= 0).any() else offset
        labels.append(lab)
        scene.append(np.full(cfg.n_columns, k, dtype=np.int64))
    below = _corrupt(np.concatenate(below, axis=1), noise, rng)
    # corrupt the level above before the positional code is added: p is known exactly
    above_states = np.concatenate([s[1:] for s in states], axis=1)
    pos = np.concatenate([weights.pos_code] * len(states), axis=0)
    above = _corrupt(above_states, noise, rng) + pos[None]
    return TrainingBatch(
        below=below,
        above=above,
        target=np.concatenate(target, axis=1),
        labels=np.concatenate(labels, axis=1),
        scene=np.concatenate(scene),
    )
