"""Learned weights: train the column's bottom-up and top-down nets from scenes, without torch.

Every level is a denoising autoencoder in GLOM's sense: the bottom-up net f_l predicts the
state of level l from a corrupted copy of the level below (the input tokens for l = 0),
and the top-down net g_l predicts it from a corrupted copy of the level above plus the
positional code. On top of this reconstruction the paper's island regulariser pulls each
prediction towards the consensus of the column's own island (the mean state of the
columns that share its ground-truth label at that level) and a contrastive hinge pushes
it away from the consensus of the other islands of the same scene, so that the levels do
not all collapse onto one vector.

The states the nets learn to predict (the *targets*) are the current weights' own:
``targets="bottom_up"`` (the default) uses one cheap bottom-up pass,
S_0 = norm(f_0(u)), S_l = norm(f_l(S_{l-1})); ``targets="settled"`` simulates each
training scene with the current weights and takes the final state (what the dynamics
settle to). Either way the targets and
consensus vectors are constants of each gradient step (no gradient flows through them),
as in the paper. Gradients are derived by hand (exact GELU derivative
Phi(x) + x phi(x)) and checked against finite differences in the tests; the optimiser is
Adam over minibatches of scenes. See ``docs/training.md`` for the maths.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..config import GlomConfig
from ..weights import GlomWeights, random_weights

__all__ = [
    "train",
    "make_training_scenes",
    "TrainingBatch",
    "loss_and_grads",
    "level_states",
    "register_cli",
    "cli_train",
    "TRAINED",
    "TERMS",
    "NETS",
    "TARGETS",
]

#: The arrays training changes; the positional code and initial levels stay as given.
TRAINED = ("bu_w1", "bu_b1", "bu_w2", "bu_b2", "td_w1", "td_b1", "td_w2", "td_b2")
#: Loss terms, as named in the history and the weights' metadata.
TERMS = ("reconstruction", "island", "contrastive")
#: Which net made a prediction.
NETS = ("bottom_up", "top_down")
#: How the states the nets learn to predict are made.
TARGETS = ("settled", "bottom_up")

# Keeps cosines differentiable at a zero prediction without changing them elsewhere.
_NORM_EPS = 1e-12
_ADAM = (0.9, 0.999, 1e-8)


# ----- the MLP and its exact gradient ---------------------------------------------------
def _gelu_and_grad(z):
    """GELU(z) = z Phi(z) and its derivative Phi(z) + z phi(z), both exact (erf)."""
    from scipy.special import erf

    cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * cdf, cdf + z * pdf


def _mlp_forward(x, w1, b1, w2, b2):
    z = x @ w1 + b1
    h, dh = _gelu_and_grad(z)
    return h @ w2 + b2, (x, h, dh)


def _mlp_backward(cache, w2, g_out):
    """Gradients of (w1, b1, w2, b2) given dLoss/dOutput ``g_out`` (rows, D)."""
    x, h, dh = cache
    g_w2 = h.T @ g_out
    g_b2 = g_out.sum(axis=0)
    g_z = (g_out @ w2.T) * dh
    g_w1 = x.T @ g_z
    g_b1 = g_z.sum(axis=0)
    return g_w1, g_b1, g_w2, g_b2


# ----- one minibatch ------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingBatch:
    """The fixed inputs and targets of one gradient step (rows = columns of all its scenes).

    Attributes
    ----------
    below : (levels, rows, dim)
        Input of each bottom-up net f_l: corrupted tokens for l = 0, else the corrupted
        state of level l - 1.
    above : (levels - 1, rows, dim)
        Input of each top-down net g_l: the corrupted state of level l + 1 plus the
        positional code.
    target : (levels, rows, dim)
        The clean state of each level, which both nets predict (reconstruction).
    labels : (levels, rows) int
        Island of each row per level, unique across the scenes of the batch; -1 leaves a
        row out of the island and contrastive terms.
    scene : (rows,) int
        Scene of each row: contrastive negatives are the other islands of the same scene.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = TrainingBatch(rng.normal(size=(2, 4, 3)), rng.normal(size=(1, 4, 3)),
    ...                   rng.normal(size=(2, 4, 3)), np.array([[0, 0, 1, 1], [2, 2, 2, 2]]),
    ...                   np.zeros(4, dtype=int))
    >>> b.levels, b.rows
    (2, 4)
    """

    below: np.ndarray
    above: np.ndarray
    target: np.ndarray
    labels: np.ndarray
    scene: np.ndarray

    @property
    def levels(self) -> int:
        return self.below.shape[0]

    @property
    def rows(self) -> int:
        return self.below.shape[1]


def _consensus(target, labels, scene):
    """Island means of ``target`` (rows, D): (islands, D), each row's island index (or -1)
    and the scene of each island."""
    known = labels >= 0
    ids, inverse = np.unique(labels[known], return_inverse=True)
    island = np.full(labels.shape, -1, dtype=np.int64)
    island[known] = inverse
    k = len(ids)
    counts = np.bincount(inverse, minlength=k).astype(np.float64)
    sums = np.zeros((k, target.shape[1]))
    np.add.at(sums, inverse, target[known])
    means = sums / counts[:, None]
    island_scene = np.zeros(k, dtype=np.int64)
    island_scene[inverse] = scene[known]
    return means, island, island_scene


def _term_losses(pred, target, consensus, island, negatives, margin):
    """(losses, gradients wrt ``pred``) of the three terms for one net at one level.

    reconstruction = mean_i |pred_i - target_i|^2
    island         = mean over labelled i of |pred_i - c_{island(i)}|^2
    contrastive    = mean over rows with negatives of
                     mean_{k in neg(i)} relu(cos(pred_i, c_k) - margin)^2
    A term with no rows to average over is NaN, with zero gradient.
    """
    rows = pred.shape[0]
    out, grads = {}, {}

    diff = pred - target
    out["reconstruction"] = float((diff * diff).sum() / rows)
    grads["reconstruction"] = 2.0 * diff / rows

    known = island >= 0
    g_isl = np.zeros_like(pred)
    if known.any():
        d = pred[known] - consensus[island[known]]
        out["island"] = float((d * d).sum() / known.sum())
        g_isl[known] = 2.0 * d / known.sum()
    else:
        out["island"] = math.nan
    grads["island"] = g_isl

    g_con = np.zeros_like(pred)
    n_neg = negatives.sum(axis=1)
    has = n_neg > 0
    if has.any():
        c_norm = np.sqrt((consensus * consensus).sum(axis=1))
        c_unit = consensus / np.where(c_norm > 0, c_norm, 1.0)[:, None]
        p_norm = np.sqrt((pred * pred).sum(axis=1) + _NORM_EPS)
        cos = (pred @ c_unit.T) / p_norm[:, None]
        excess = np.where(negatives, np.maximum(cos - margin, 0.0), 0.0)
        per_row = (excess * excess).sum(axis=1) / np.maximum(n_neg, 1)
        m = has.sum()
        out["contrastive"] = float(per_row[has].sum() / m)
        # d cos_ik / d pred_i = c_unit_k / |p_i| - cos_ik p_i / |p_i|^2
        a = 2.0 * excess / np.maximum(n_neg, 1)[:, None] / m
        g_con = (a @ c_unit) / p_norm[:, None] - (a * cos).sum(axis=1)[:, None] * pred / (
            p_norm * p_norm
        )[:, None]
    else:
        out["contrastive"] = math.nan
    grads["contrastive"] = g_con
    return out, grads


def loss_and_grads(
    params: dict,
    batch: TrainingBatch,
    *,
    reconstruction_weight: float = 1.0,
    island_weight: float = 1.0,
    contrastive_weight: float = 3.0,
    margin: float = 0.0,
):
    """The training loss of one batch, its parts per level and net, and its gradients.

    Parameters
    ----------
    params : dict
        ``bu_w1`` (L, D, H), ``bu_b1`` (L, H), ``bu_w2`` (L, H, D), ``bu_b2`` (L, D) and the
        same ``td_*`` for levels 0..L-2, float64.
    batch : TrainingBatch
    reconstruction_weight, island_weight, contrastive_weight : float
        Weights of the three terms in the total.
    margin : float
        Cosine similarity to another island's consensus above which the contrastive hinge
        pushes.

    Returns
    -------
    total : float
        Sum over levels and nets of the weighted terms (absent terms count as 0).
    parts : dict
        ``parts[term]`` is a (levels, 2) array, columns (bottom_up, top_down); NaN where
        the term is absent (top-down at the top level, no labels, no negatives).
    grads : dict
        Gradient of ``total`` for every array in :data:`TRAINED`.

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=3, grid=(2, 2), hidden=4)
    >>> w = gs.random_weights(cfg, seed=0)
    >>> params = {k: getattr(w, k) for k in TRAINED}
    >>> rng = np.random.default_rng(0)
    >>> b = TrainingBatch(rng.normal(size=(2, 4, 3)), rng.normal(size=(1, 4, 3)),
    ...                   rng.normal(size=(2, 4, 3)), np.array([[0, 0, 1, 1], [2, 2, 2, 2]]),
    ...                   np.zeros(4, dtype=int))
    >>> total, parts, grads = loss_and_grads(params, b)
    >>> grads["bu_w1"].shape, parts["island"].shape
    ((2, 3, 4), (2, 2))
    """
    weights = {
        "reconstruction": reconstruction_weight,
        "island": island_weight,
        "contrastive": contrastive_weight,
    }
    L = batch.levels
    parts = {t: np.full((L, 2), np.nan) for t in TERMS}
    grads = {k: np.zeros_like(params[k]) for k in TRAINED}
    total = 0.0
    for level in range(L):
        consensus, island, island_scene = _consensus(
            batch.target[level], batch.labels[level], batch.scene
        )
        # negatives: islands of the row's own scene other than its own island
        negatives = (island_scene[None, :] == batch.scene[:, None]) & (
            np.arange(len(consensus))[None, :] != island[:, None]
        )
        negatives &= (island >= 0)[:, None]
        nets = [("bu", 0, batch.below[level])]
        if level < L - 1:
            nets.append(("td", 1, batch.above[level]))
        for prefix, col, x in nets:
            w1, b1, w2, b2 = (params[f"{prefix}_{n}"][level] for n in ("w1", "b1", "w2", "b2"))
            pred, cache = _mlp_forward(x, w1, b1, w2, b2)
            losses, g_pred = _term_losses(
                pred, batch.target[level], consensus, island, negatives, margin
            )
            g_out = np.zeros_like(pred)
            for term in TERMS:
                parts[term][level, col] = losses[term]
                if weights[term] != 0 and not math.isnan(losses[term]):
                    total += weights[term] * losses[term]
                    g_out += weights[term] * g_pred[term]
            for name, g in zip(
                ("w1", "b1", "w2", "b2"), _mlp_backward(cache, w2, g_out), strict=True
            ):
                grads[f"{prefix}_{name}"][level] += g
    return total, parts, grads


# ----- data ---------------------------------------------------------------------------
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


def _examples(cfg, data):
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
    N, D = cfg.n_columns, cfg.dim
    out = []
    for i, item in enumerate(data):
        where = f"scenes_or_token_sets[{i}]"
        if hasattr(item, "tokens") and hasattr(item, "labels"):
            tokens, labels = item.tokens, item.labels
        elif isinstance(item, dict):
            if "tokens" not in item:
                raise ValueError(f"{where} is a dict without 'tokens'")
            tokens, labels = item["tokens"], item.get("labels")
        elif isinstance(item, tuple) and len(item) == 2:
            tokens, labels = item
        else:
            tokens, labels = item, None
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "fiu" or tokens.shape != (N, D):
            raise ValueError(
                f"{where}: tokens has shape {tokens.shape} and dtype {tokens.dtype}; expected "
                f"numbers of shape ({N}, {D}) = (columns, dim) of the config"
            )
        if not np.all(np.isfinite(tokens)):
            raise ValueError(f"{where}: tokens contains NaN or inf")
        fitted = None if labels is None else _fit_labels(labels, cfg, where)
        out.append(_Example(np.array(tokens, dtype=np.float64), fitted))
    return out


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
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1 (number of scenes)")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
    seeds = np.random.SeedSequence(int(seed)).generate_state(int(n))
    return [
        make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=int(s), **scene_kwargs)
        for s in seeds
    ]


# ----- targets and batches ------------------------------------------------------------------
def _weights_from(params, base: GlomWeights, meta=None) -> GlomWeights:
    """``base`` with the trained arrays from ``params`` (everything else kept)."""
    return dataclasses.replace(
        base, meta=dict(meta or {}), **{k: np.array(params[k]) for k in TRAINED}
    )


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
    tokens = np.asarray(tokens, dtype=np.float64)
    if targets == "settled":
        from ..simulation import simulate

        n = cfg.steps if steps is None else steps
        ds = simulate(cfg, weights, inputs=tokens, steps=n, record_every=max(n, 1))
        return np.asarray(ds["embedding"].values[-1], dtype=np.float64)
    if targets == "bottom_up":
        from ..reference import normalize

        states = np.empty((cfg.levels,) + tokens.shape)
        below = tokens
        for level in range(cfg.levels):
            out, _ = _mlp_forward(
                below,
                weights.bu_w1[level],
                weights.bu_b1[level],
                weights.bu_w2[level],
                weights.bu_b2[level],
            )
            below = states[level] = normalize(out, cfg.normalize)
        return states
    raise ValueError(f"targets={targets!r} is not allowed; allowed: {', '.join(TARGETS)}")


def _corrupt(x, noise, rng):
    """Gaussian noise of std ``noise`` times each row's RMS entry (scale-free corruption)."""
    if noise == 0:
        return x.copy()
    rms = np.sqrt((x * x).mean(axis=-1, keepdims=True))
    return x + noise * rms * rng.standard_normal(x.shape)


def _make_batch(cfg, weights, examples, states, *, noise, rng) -> TrainingBatch:
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


# ----- training -----------------------------------------------------------------------------
def _check_number(name, value, *, lo, integer=False, lo_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if integer:
        ok = ok and isinstance(value, numbers.Integral)
    if ok:
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo)
    if not ok:
        kind = "an integer" if integer else "a finite number"
        rel = ">" if lo_open else ">="
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {kind} {rel} {lo}")
    return int(value) if integer else float(value)


def train(
    cfg: GlomConfig,
    scenes_or_token_sets,
    *,
    weights: GlomWeights | None = None,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 4,
    noise: float = 0.1,
    reconstruction_weight: float = 1.0,
    island_weight: float = 1.0,
    contrastive_weight: float = 3.0,
    margin: float = 0.0,
    targets: str = "bottom_up",
    settle_steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
):
    """Learn the column's bottom-up and top-down nets from scenes or token sets.

    Parameters
    ----------
    cfg : GlomConfig
        The config the weights are for (levels, dim, hidden width, columns); with
        ``targets="settled"`` also the dynamics that make the targets.
    scenes_or_token_sets : sequence
        Scenes from :func:`glomsim.scenes.make_scene`, ``(tokens, labels)`` pairs,
        ``{"tokens": ..., "labels": ...}`` dicts, or bare token arrays (columns, dim).
        Labels (levels, columns) name each column's island per level (-1 unknown); without
        them only the reconstruction term is trained.
    weights : GlomWeights, optional
        Starting point; default ``random_weights(cfg, seed)``. Its positional code and
        initial levels are kept as they are.
    epochs : int
        Passes over the scenes (>= 1).
    lr : float
        Adam's step size (> 0).
    batch_size : int
        Scenes per gradient step (>= 1); islands and negatives never mix scenes.
    noise : float
        Denoising corruption: the nets' inputs get Gaussian noise of std ``noise`` times
        each input row's RMS entry (>= 0).
    reconstruction_weight, island_weight, contrastive_weight : float
        Weights of the three loss terms (>= 0).
    margin : float
        The contrastive hinge pushes a prediction whose cosine similarity to another
        island's consensus is above ``margin`` (in [-1, 1)).
    targets : {"settled", "bottom_up"}
        States to predict: the current weights' settled simulation of each scene, or one
        bottom-up pass (cheaper, ignores attention and top-down).
    settle_steps : int, optional
        Steps of the simulation that makes ``settled`` targets; default ``cfg.steps``.
    seed : int
        Seeds the starting weights (when not given), scene order and corruption noise.
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    weights : GlomWeights
        The learned nets; ``meta`` holds ``kind="learned"``, every setting, the config and
        the final losses, and is saved with :meth:`GlomWeights.save`.
    history : xarray.Dataset
        ``reconstruction``, ``island``, ``contrastive`` (epoch, level, net): the mean of
        each term over the epoch's minibatches (NaN where absent), and ``total(epoch)``.

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=5, normalize="l2")
    >>> scenes = make_training_scenes(cfg, 2, seed=0, n_objects=2)
    >>> w, hist = train(cfg, scenes, epochs=2, targets="bottom_up")
    >>> w.meta["kind"], hist.island.dims
    ('learned', ('epoch', 'level', 'net'))
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    epochs = _check_number("epochs", epochs, lo=1, integer=True)
    batch_size = _check_number("batch_size", batch_size, lo=1, integer=True)
    lr = _check_number("lr", lr, lo=0, lo_open=True)
    noise = _check_number("noise", noise, lo=0)
    term_weights = {
        name: _check_number(name, value, lo=0)
        for name, value in (
            ("reconstruction_weight", reconstruction_weight),
            ("island_weight", island_weight),
            ("contrastive_weight", contrastive_weight),
        )
    }
    margin = _check_number("margin", margin, lo=-1)
    if margin >= 1:
        raise ValueError(f"margin={margin!r} is not allowed; allowed: a number in [-1, 1)")
    if targets not in TARGETS:
        raise ValueError(f"targets={targets!r} is not allowed; allowed: {', '.join(TARGETS)}")
    if settle_steps is not None:
        settle_steps = _check_number("settle_steps", settle_steps, lo=1, integer=True)
    seed = _check_number("seed", seed, lo=0, integer=True)
    if not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"progress={progress!r} is not allowed; allowed: True or False")
    if sum(term_weights.values()) == 0:
        raise ValueError(
            "reconstruction_weight, island_weight and contrastive_weight are all 0: at least "
            "one loss term must have a weight > 0"
        )
    examples = _examples(cfg, scenes_or_token_sets)
    if any(ex.labels is None for ex in examples) and (
        term_weights["island_weight"] > 0 or term_weights["contrastive_weight"] > 0
    ):
        raise ValueError(
            "island_weight/contrastive_weight > 0 need labels, but some token sets have none; "
            "give scenes or (tokens, labels) pairs, or set both weights to 0"
        )
    if weights is None:
        weights = random_weights(cfg, seed)
    if not isinstance(weights, GlomWeights):
        raise TypeError(f"weights must be GlomWeights or None, got {type(weights).__name__}")
    if weights.identity:
        raise ValueError(
            "weights.identity=True: identity nets have no parameters to train; start from "
            "random_weights(cfg) or learned weights"
        )
    weights.check(cfg)

    rng = np.random.default_rng(seed)
    params = {k: np.array(getattr(weights, k), dtype=np.float64) for k in TRAINED}
    moment1 = {k: np.zeros_like(v) for k, v in params.items()}
    moment2 = {k: np.zeros_like(v) for k, v in params.items()}
    beta1, beta2, eps = _ADAM
    L = cfg.levels
    hist = {t: np.full((epochs, L, 2), np.nan) for t in TERMS}
    total_hist = np.full(epochs, np.nan)
    n_steps = 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="train", unit="epoch")
    try:
        for epoch in range(epochs):
            sums = {t: np.zeros((L, 2)) for t in TERMS}
            counts = {t: np.zeros((L, 2)) for t in TERMS}
            total_sum = 0.0
            order = rng.permutation(len(examples))
            for start in range(0, len(order), batch_size):
                chosen = [examples[i] for i in order[start : start + batch_size]]
                current = _weights_from(params, weights)
                states = [
                    level_states(cfg, current, ex.tokens, targets=targets, steps=settle_steps)
                    for ex in chosen
                ]
                batch = _make_batch(cfg, weights, chosen, states, noise=noise, rng=rng)
                total, parts, grads = loss_and_grads(
                    params,
                    batch,
                    reconstruction_weight=term_weights["reconstruction_weight"],
                    island_weight=term_weights["island_weight"],
                    contrastive_weight=term_weights["contrastive_weight"],
                    margin=margin,
                )
                if not math.isfinite(total):
                    raise FloatingPointError(
                        f"the training loss became {total} at epoch {epoch + 1}; try a smaller "
                        f"lr (now {lr})"
                    )
                n_steps += 1
                for k in TRAINED:
                    g = grads[k]
                    moment1[k] = beta1 * moment1[k] + (1 - beta1) * g
                    moment2[k] = beta2 * moment2[k] + (1 - beta2) * g * g
                    m_hat = moment1[k] / (1 - beta1**n_steps)
                    v_hat = moment2[k] / (1 - beta2**n_steps)
                    params[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)
                # weight each minibatch by its scenes so the epoch mean is per scene
                for t in TERMS:
                    ok = ~np.isnan(parts[t])
                    sums[t][ok] += parts[t][ok] * len(chosen)
                    counts[t][ok] += len(chosen)
                total_sum += total * len(chosen)
            for t in TERMS:
                hist[t][epoch] = np.divide(
                    sums[t], counts[t], out=np.full((L, 2), np.nan), where=counts[t] > 0
                )
            total_hist[epoch] = total_sum / len(examples)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_hist[epoch]:.4g}")
    finally:
        if bar is not None:
            bar.close()

    settings = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "noise": noise,
        **term_weights,
        "margin": margin,
        "targets": targets,
        # only the settled targets simulate; None says so in the metadata
        "settle_steps": (
            (cfg.steps if settle_steps is None else settle_steps) if targets == "settled" else None
        ),
        "seed": seed,
        "n_scenes": len(examples),
        "optimizer": {"name": "adam", "beta1": beta1, "beta2": beta2, "eps": eps},
    }
    final = {
        t: {
            net: {
                str(lv): float(hist[t][-1, lv, j])
                for lv in range(L)
                if np.isfinite(hist[t][-1, lv, j])
            }
            for j, net in enumerate(NETS)
        }
        for t in TERMS
    }
    from .. import __version__

    meta = {
        "kind": "learned",
        "training": settings,
        "config": json.loads(cfg.to_json()),
        "start_weights": {
            "kind": str(weights.meta.get("kind", "custom")),
            "hash": weights.content_hash(),
        },
        "final_losses": final,
        "final_total": float(total_hist[-1]),
        "glomsim_version": __version__,
    }
    learned = _weights_from(params, weights, meta=meta)
    history = _history(hist, total_hist, settings, L)
    return learned, history


def _history(hist, total_hist, settings, levels):
    import xarray as xr

    epochs = len(total_hist)
    dims = ("epoch", "level", "net")
    ds = xr.Dataset(
        {t: (dims, hist[t]) for t in TERMS} | {"total": (("epoch",), total_hist)},
        coords={
            "epoch": np.arange(1, epochs + 1),
            "level": np.arange(levels),
            "net": list(NETS),
        },
    )
    desc = {
        "reconstruction": "mean squared distance of the prediction to the level's target state",
        "island": "mean squared distance of the prediction to its island's consensus",
        "contrastive": "mean squared hinge on cosine similarity to other islands' consensus",
        "total": "weighted sum of all terms over levels and nets, mean over scenes",
    }
    for name, text in desc.items():
        ds[name].attrs.update(long_name=f"{name} loss", units="1", description=text)
    ds.attrs.update(title="glomsim training history", training=json.dumps(settings))
    return ds


# ----- command line -----------------------------------------------------------------------
def register_cli(subparsers):
    """Add the ``train`` subcommand to an argparse ``subparsers`` object.

    ``glomsim train [CONFIG] -o WEIGHTS.npz [--scenes N] [--epochs E] [--seed S]
    [--progress]`` makes ``N`` synthetic scenes for the config, trains, and saves the
    weights with their settings in the file's metadata.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="glomsim")
    >>> p = register_cli(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["train", "-o", "w.npz", "--epochs", "3"])
    >>> args.epochs, args.func is cli_train
    (3, True)
    """
    p = subparsers.add_parser(
        "train",
        help="learn the nets from synthetic scenes and save the weights (.npz)",
        description="Learn bottom-up and top-down nets from synthetic scenes (no torch).",
    )
    p.add_argument("config", nargs="?", help="config .toml/.json (default: the built-in run)")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.npz)")
    p.add_argument("--scenes", type=int, default=16, help="training scenes (default 16)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the scenes (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of scenes, weights and noise")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam step size (default 3e-3)")
    p.add_argument("--batch-size", type=int, default=4, help="scenes per step (default 4)")
    p.add_argument("--noise", type=float, default=0.1, help="input corruption (default 0.1)")
    p.add_argument("--island-weight", type=float, default=1.0)
    p.add_argument("--contrastive-weight", type=float, default=3.0)
    p.add_argument("--targets", default="bottom_up", help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=cli_train)
    return p


def cli_train(args) -> int:
    """Run ``glomsim train``: returns 0; bad input raises ValueError naming the option."""
    from pathlib import Path

    out = Path(args.output)
    if out.suffix != ".npz":
        raise ValueError(f"--output={str(out)!r} is not allowed; allowed: a path ending in .npz")
    n = _check_number("--scenes", args.scenes, lo=1, integer=True)
    epochs = _check_number("--epochs", args.epochs, lo=1, integer=True)
    seed = _check_number("--seed", args.seed, lo=0, integer=True)
    lr = _check_number("--lr", args.lr, lo=0, lo_open=True)
    batch_size = _check_number("--batch-size", args.batch_size, lo=1, integer=True)
    noise = _check_number("--noise", args.noise, lo=0)
    island = _check_number("--island-weight", args.island_weight, lo=0)
    contrastive = _check_number("--contrastive-weight", args.contrastive_weight, lo=0)
    if args.targets not in TARGETS:
        raise ValueError(
            f"--targets={args.targets!r} is not allowed; allowed: {', '.join(TARGETS)}"
        )
    if args.config is None:
        import tomllib

        from ..cli import DEFAULT_RUN

        cfg = GlomConfig.from_dict(tomllib.loads(DEFAULT_RUN))
    else:
        try:
            cfg = GlomConfig.from_file(args.config)
        except Exception as exc:  # bad TOML, unknown field, missing file: one message
            raise ValueError(f"config {args.config!r}: {exc}") from exc
    if cfg.grid is None:
        raise ValueError(
            f"config {args.config!r} uses positions=; training scenes need a grid config"
        )
    scenes = make_training_scenes(cfg, n, seed)
    weights, history = train(
        cfg,
        scenes,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        noise=noise,
        island_weight=island,
        contrastive_weight=contrastive,
        targets=args.targets,
        seed=seed,
        progress=bool(args.progress),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    path = weights.save(out)
    first, last = float(history.total[0]), float(history.total[-1])
    print(f"wrote {path} ({n} scenes, {epochs} epochs; loss {first:.4g} -> {last:.4g})")
    return 0
