"""The training loss of one minibatch and its exact gradients.

For each level, both nets' predictions are scored by three terms (reconstruction of the
level's target state, attraction to the consensus of the column's island, and a
contrastive hinge against the other islands of the same scene); the gradient flows back
through each net by hand, with the exact derivative of its activation (GELU, ReLU or
sine: :data:`ACTIVATION_GRADS`). The nets' forward is the
reference's (:func:`glomsim.reference.net_forward`), so training and simulation evaluate
the same function. See ``docs/training.md`` for the maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..reference import net_forward

#: The arrays training changes; the positional code and initial levels stay as given.
TRAINED = ("bu_w1", "bu_b1", "bu_w2", "bu_b2", "td_w1", "td_b1", "td_w2", "td_b2")
#: Loss terms, as named in the history and the weights' metadata.
TERMS = ("reconstruction", "island", "contrastive")
#: Which net made a prediction.
NETS = ("bottom_up", "top_down")

# Keeps cosines differentiable at a zero prediction without changing them elsewhere.
_NORM_EPS = 1e-12
_NET_ARRAYS = ("w1", "b1", "w2", "b2")


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


def _gelu_grad(z):
    """GELU'(z) = Phi(z) + z phi(z), exact (erf)."""
    from scipy.special import erf

    cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return cdf + z * pdf


def _relu_grad(z):
    """ReLU'(z): 1 for z > 0, else 0 (0 at the kink, as autograd frameworks take it)."""
    return (z > 0).astype(z.dtype)


#: The derivative of each activation (``GlomConfig.bottom_up_activation``) at the hidden
#: pre-activation z.
ACTIVATION_GRADS = {"gelu": _gelu_grad, "relu": _relu_grad, "sin": np.cos}


def _net_backward(kept, w2, g_out, activation="gelu"):
    """Gradients of (w1, b1, w2, b2) given dLoss/dOutput ``g_out`` (rows, D), from the
    ``(x, z, h)`` that :func:`glomsim.reference.net_forward` kept."""
    x, z, h = kept
    g_w2 = h.T @ g_out
    g_b2 = g_out.sum(axis=0)
    g_z = (g_out @ w2.T) * ACTIVATION_GRADS[activation](z)
    g_w1 = x.T @ g_z
    g_b1 = g_z.sum(axis=0)
    return g_w1, g_b1, g_w2, g_b2


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


def _island_term(pred, consensus, island):
    """Mean squared distance of the labelled rows to their island's consensus, and its
    gradient (NaN and zero without labelled rows)."""
    known = island >= 0
    grad = np.zeros_like(pred)
    if not known.any():
        return math.nan, grad
    d = pred[known] - consensus[island[known]]
    grad[known] = 2.0 * d / known.sum()
    return float((d * d).sum() / known.sum()), grad


def _contrastive_term(pred, consensus, negatives, margin):
    """Mean over rows with negatives of mean_k relu(cos(pred_i, c_k) - margin)^2, and its
    gradient (NaN and zero when no row has a negative)."""
    n_neg = negatives.sum(axis=1)
    has = n_neg > 0
    if not has.any():
        return math.nan, np.zeros_like(pred)
    c_norm = np.sqrt((consensus * consensus).sum(axis=1))
    c_unit = consensus / np.where(c_norm > 0, c_norm, 1.0)[:, None]
    p_norm = np.sqrt((pred * pred).sum(axis=1) + _NORM_EPS)
    cos = (pred @ c_unit.T) / p_norm[:, None]
    excess = np.where(negatives, np.maximum(cos - margin, 0.0), 0.0)
    per_row = (excess * excess).sum(axis=1) / np.maximum(n_neg, 1)
    m = has.sum()
    # d cos_ik / d pred_i = c_unit_k / |p_i| - cos_ik p_i / |p_i|^2
    a = 2.0 * excess / np.maximum(n_neg, 1)[:, None] / m
    grad = (a @ c_unit) / p_norm[:, None] - (a * cos).sum(axis=1)[:, None] * pred / (
        p_norm * p_norm
    )[:, None]
    return float(per_row[has].sum() / m), grad


def _term_losses(pred, target, consensus, island, negatives, margin):
    """(losses, gradients wrt ``pred``) of the three terms for one net at one level.

    reconstruction = mean_i |pred_i - target_i|^2
    island         = mean over labelled i of |pred_i - c_{island(i)}|^2
    contrastive    = mean over rows with negatives of
                     mean_{k in neg(i)} relu(cos(pred_i, c_k) - margin)^2
    A term with no rows to average over is NaN, with zero gradient.
    """
    diff = pred - target
    rows = pred.shape[0]
    out, grads = {}, {}
    out["reconstruction"] = float((diff * diff).sum() / rows)
    grads["reconstruction"] = 2.0 * diff / rows
    out["island"], grads["island"] = _island_term(pred, consensus, island)
    out["contrastive"], grads["contrastive"] = _contrastive_term(pred, consensus, negatives, margin)
    return out, grads


def _negatives(island, island_scene, scene):
    """(rows, islands) mask: the islands of each labelled row's own scene but its own."""
    negatives = (island_scene[None, :] == scene[:, None]) & (
        np.arange(len(island_scene))[None, :] != island[:, None]
    )
    return negatives & (island >= 0)[:, None]


def loss_and_grads(
    params: dict,
    batch: TrainingBatch,
    *,
    reconstruction_weight: float = 1.0,
    island_weight: float = 1.0,
    contrastive_weight: float = 3.0,
    margin: float = 0.0,
    activations: tuple[str, str] = ("gelu", "gelu"),
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
    activations : (str, str)
        Hidden activations of the bottom-up and the top-down nets (the config's
        ``bottom_up_activation`` and ``top_down_activation``).

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
        negatives = _negatives(island, island_scene, batch.scene)
        nets = [("bu", 0, batch.below[level])]
        if level < L - 1:
            nets.append(("td", 1, batch.above[level]))
        for prefix, col, x in nets:
            w1, b1, w2, b2 = (params[f"{prefix}_{n}"][level] for n in _NET_ARRAYS)
            act = activations[col]
            pred, kept = net_forward(x, w1, b1, w2, b2, keep=True, activation=act)
            losses, g_pred = _term_losses(
                pred, batch.target[level], consensus, island, negatives, margin
            )
            g_out = np.zeros_like(pred)
            for term in TERMS:
                parts[term][level, col] = losses[term]
                if weights[term] != 0 and not math.isnan(losses[term]):
                    total += weights[term] * losses[term]
                    g_out += weights[term] * g_pred[term]
            for name, g in zip(_NET_ARRAYS, _net_backward(kept, w2, g_out, act), strict=True):
                grads[f"{prefix}_{name}"][level] += g
    return total, parts, grads
