"""The training loop: settings, epochs of Adam steps over minibatches, the history and the
learned weights' metadata."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

from .._validate import check_choice, check_int, check_real, not_allowed
from ..config import GlomConfig
from ..variables import attrs
from ..weights import GlomWeights, random_weights
from .data import TARGETS, level_states, make_batch, to_examples
from .losses import NETS, TERMS, TRAINED, loss_and_grads
from .optim import Adam

__all__ = ["train"]

_TERM_WEIGHTS = ("reconstruction_weight", "island_weight", "contrastive_weight")

_HISTORY_DIMS = ("epoch", "level", "net")


@dataclass(frozen=True)
class _Settings:
    """The keyword settings of :func:`train`, each checked and made a plain int or float
    (so that they record as JSON)."""

    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 4
    noise: float = 0.1
    reconstruction_weight: float = 1.0
    island_weight: float = 1.0
    contrastive_weight: float = 3.0
    margin: float = 0.0
    targets: str = "bottom_up"
    settle_steps: int | None = None
    seed: int = 0

    def __post_init__(self):
        checked = {
            "epochs": check_int("epochs", self.epochs, lo=1),
            "batch_size": check_int("batch_size", self.batch_size, lo=1),
            "lr": check_real("lr", self.lr, lo=0, lo_open=True),
            "noise": check_real("noise", self.noise, lo=0),
        }
        checked |= {name: check_real(name, getattr(self, name), lo=0) for name in _TERM_WEIGHTS}
        checked["margin"] = check_real("margin", self.margin, lo=-1, hi=1, hi_open=True)
        checked["targets"] = check_choice("targets", self.targets, TARGETS)
        if self.settle_steps is not None:
            checked["settle_steps"] = check_int("settle_steps", self.settle_steps, lo=1)
        checked["seed"] = check_int("seed", self.seed, lo=0)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_keywords(cls, keywords: dict) -> _Settings:
        """The settings from ``train``'s keywords; a TypeError names unknown ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(keywords) - set(known))
        if unknown:
            raise TypeError(
                f"train() got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"allowed: weights, progress, {', '.join(known)}"
            )
        return cls(**keywords)

    @property
    def term_weights(self) -> dict:
        return {name: getattr(self, name) for name in _TERM_WEIGHTS}

    def record(self, cfg: GlomConfig, n_scenes: int, optimizer: dict) -> dict:
        """Every setting as the learned weights' metadata and the history's attrs."""
        fields = dataclasses.asdict(self)
        # only the settled targets simulate; None says so in the metadata
        if self.targets != "settled":
            fields["settle_steps"] = None
        elif self.settle_steps is None:
            fields["settle_steps"] = cfg.steps
        return fields | {"n_scenes": n_scenes, "optimizer": optimizer}


def _weights_from(params, base: GlomWeights, meta=None) -> GlomWeights:
    """``base`` with the trained arrays from ``params`` (everything else kept)."""
    return dataclasses.replace(
        base, meta=dict(meta or {}), **{k: np.array(params[k]) for k in TRAINED}
    )


def _start_weights(cfg, weights, seed) -> GlomWeights:
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
    return weights


def _epoch(cfg, examples, weights, opt, s: _Settings, rng, epoch):
    """Epoch ``epoch`` (from 0): one pass over ``examples`` in random order, an Adam step
    per minibatch of scenes. Returns the means per scene of each term, per (level, net),
    and of the total."""
    L = cfg.levels
    sums = {t: np.zeros((L, 2)) for t in TERMS}
    counts = {t: np.zeros((L, 2)) for t in TERMS}
    total_sum = 0.0
    order = rng.permutation(len(examples))
    for start in range(0, len(order), s.batch_size):
        chosen = [examples[i] for i in order[start : start + s.batch_size]]
        current = _weights_from(opt.params, weights)
        states = [
            level_states(cfg, current, ex.tokens, targets=s.targets, steps=s.settle_steps)
            for ex in chosen
        ]
        batch = make_batch(cfg, weights, chosen, states, noise=s.noise, rng=rng)
        acts = (cfg.bottom_up_activation, cfg.top_down_activation)
        total, parts, grads = loss_and_grads(
            opt.params, batch, **s.term_weights, margin=s.margin, activations=acts
        )
        if not math.isfinite(total):
            raise FloatingPointError(
                f"the training loss became {total} at epoch {epoch + 1}; try a smaller "
                f"lr (now {s.lr})"
            )
        opt.step(grads)
        # weight each minibatch by its scenes so the epoch mean is per scene
        for t in TERMS:
            ok = ~np.isnan(parts[t])
            sums[t][ok] += parts[t][ok] * len(chosen)
            counts[t][ok] += len(chosen)
        total_sum += total * len(chosen)
    means = {
        t: np.divide(sums[t], counts[t], out=np.full((L, 2), np.nan), where=counts[t] > 0)
        for t in TERMS
    }
    return means, total_sum / len(examples)


def _history(hist, total_hist, settings, levels):
    import xarray as xr

    epochs = len(total_hist)
    ds = xr.Dataset(
        {t: (_HISTORY_DIMS, hist[t]) for t in TERMS} | {"total": (("epoch",), total_hist)},
        coords={
            "epoch": np.arange(1, epochs + 1),
            "level": np.arange(levels),
            "net": list(NETS),
        },
    )
    # the loss terms get long_name, units and description from the registry, as before;
    # the coordinates are left as they were (no attrs)
    for name in (*TERMS, "total"):
        ds[name].attrs.update(attrs(f"train.{name}"))
    ds.attrs.update(title="glomsim training history", training=json.dumps(settings))
    return ds


def _metadata(cfg, start, settings, hist, total_hist) -> dict:
    """The learned weights' ``meta``: every setting, the config, where training started
    and the last epoch's losses (finite ones only: strict JSON)."""
    from .._version import __version__

    final = {
        t: {
            net: {
                str(lv): float(hist[t][-1, lv, j])
                for lv in range(cfg.levels)
                if np.isfinite(hist[t][-1, lv, j])
            }
            for j, net in enumerate(NETS)
        }
        for t in TERMS
    }
    return {
        "kind": "learned",
        "training": settings,
        "config": json.loads(cfg.to_json()),
        "start_weights": {
            "kind": str(start.meta.get("kind", "custom")),
            "hash": start.content_hash(),
        },
        "final_losses": final,
        "final_total": float(total_hist[-1]),
        "glomsim_version": __version__,
    }


def _check_data(examples, s: _Settings) -> None:
    if any(ex.labels is None for ex in examples) and (
        s.island_weight > 0 or s.contrastive_weight > 0
    ):
        raise ValueError(
            "island_weight/contrastive_weight > 0 need labels, but some token sets have none; "
            "give scenes or (tokens, labels) pairs, or set both weights to 0"
        )


def train(cfg: GlomConfig, scenes_or_token_sets, *, weights=None, progress=False, **settings):
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
    progress : bool
        Show a tqdm bar over epochs.
    epochs : int, default 30
        Passes over the scenes (>= 1).
    lr : float, default 3e-3
        Adam's step size (> 0).
    batch_size : int, default 4
        Scenes per gradient step (>= 1); islands and negatives never mix scenes.
    noise : float, default 0.1
        Denoising corruption: the nets' inputs get Gaussian noise of std ``noise`` times
        each input row's RMS entry (>= 0).
    reconstruction_weight, island_weight, contrastive_weight : float, default 1, 1, 3
        Weights of the three loss terms (>= 0, not all 0).
    margin : float, default 0
        The contrastive hinge pushes a prediction whose cosine similarity to another
        island's consensus is above ``margin`` (in [-1, 1)).
    targets : {"bottom_up", "settled"}, default "bottom_up"
        States to predict: one bottom-up pass (cheap, ignores attention and top-down), or
        the current weights' settled simulation of each scene.
    settle_steps : int, optional
        Steps of the simulation that makes ``settled`` targets; default ``cfg.steps``.
    seed : int, default 0
        Seeds the starting weights (when not given), scene order and corruption noise.

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
    >>> from glomsim.train import make_training_scenes
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(8, 8), steps=5, normalize="l2")
    >>> scenes = make_training_scenes(cfg, 2, seed=0, n_objects=2)
    >>> w, hist = train(cfg, scenes, epochs=2, targets="bottom_up")
    >>> w.meta["kind"], hist.island.dims
    ('learned', ('epoch', 'level', 'net'))
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    s = _Settings.from_keywords(settings)
    if not isinstance(progress, (bool, np.bool_)):
        raise not_allowed("progress", progress, "True or False")
    if sum(s.term_weights.values()) == 0:
        raise ValueError(
            "reconstruction_weight, island_weight and contrastive_weight are all 0: at least "
            "one loss term must have a weight > 0"
        )
    examples = to_examples(cfg, scenes_or_token_sets)
    _check_data(examples, s)
    weights = _start_weights(cfg, weights, s.seed)

    rng = np.random.default_rng(s.seed)
    opt = Adam({k: np.array(getattr(weights, k), dtype=np.float64) for k in TRAINED}, s.lr)
    hist = {t: np.full((s.epochs, cfg.levels, 2), np.nan) for t in TERMS}
    total_hist = np.full(s.epochs, np.nan)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.epochs, desc="train", unit="epoch")
    try:
        for epoch in range(s.epochs):
            means, total_hist[epoch] = _epoch(cfg, examples, weights, opt, s, rng, epoch)
            for t in TERMS:
                hist[t][epoch] = means[t]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_hist[epoch]:.4g}")
    finally:
        if bar is not None:
            bar.close()

    record = s.record(cfg, len(examples), opt.settings())
    meta = _metadata(cfg, weights, record, hist, total_hist)
    learned = _weights_from(opt.params, weights, meta=meta)
    return learned, _history(hist, total_hist, record, cfg.levels)
