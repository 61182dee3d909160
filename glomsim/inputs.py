"""Inputs of a run: level-0 tokens (from tokens, images or scenes, with the scenes'
labels) and initial states, checked and in the config's dtype."""

from __future__ import annotations

import math

import numpy as np

from .config import GlomConfig
from .reference import patch_tokens
from .weights import GlomWeights

__all__ = ["prepare_inputs", "prepare_init", "initial_state", "ensemble_inputs"]


def _image_to_tokens(image, weights, cfg):
    if weights.patch_w is None:
        raise ValueError(
            f"inputs has shape {image.shape}: an image (channels, height, width) needs weights "
            "with a patch embedding; pass tokens of shape (columns, dim) instead"
        )
    c, h, w = image.shape
    p = weights.patch_size
    if c != weights.channels:
        raise ValueError(
            f"inputs image has {c} channels but the patch embedding expects {weights.channels}"
        )
    if cfg.grid is None or h != cfg.grid[0] * p or w != cfg.grid[1] * p:
        raise ValueError(
            f"inputs image is {h}x{w}; with patch_size {p} the grid {cfg.grid} needs "
            f"{None if cfg.grid is None else (cfg.grid[0] * p, cfg.grid[1] * p)}"
        )
    return patch_tokens(image.astype(cfg.np_dtype), weights)


def prepare_inputs(cfg: GlomConfig, weights: GlomWeights, inputs):
    """Level-0 tokens (N, D) in the config's dtype, and scene labels if the input has them."""
    labels = None
    if inputs is not None and hasattr(inputs, "tokens") and hasattr(inputs, "labels"):
        scene = inputs
        labels = np.asarray(scene.labels)
        if weights.patch_w is not None and getattr(scene, "image", None) is not None:
            inputs = scene.image
        else:
            inputs = scene.tokens
        if labels.shape != (cfg.levels, cfg.n_columns):
            # scenes know fewer or more levels than the config: keep the rows that exist
            fixed = np.full((cfg.levels, cfg.n_columns), -1, dtype=np.int64)
            k = min(cfg.levels, labels.shape[0])
            if labels.shape[1] != cfg.n_columns:
                raise ValueError(
                    f"inputs scene has {labels.shape[1]} columns but the config has {cfg.n_columns}"
                )
            fixed[:k] = labels[:k]
            if labels.shape[0] < cfg.levels:
                fixed[k:] = labels[-1]
            labels = fixed
    dtype = cfg.np_dtype
    N, D = cfg.n_columns, cfg.dim
    if inputs is None:
        return np.zeros((N, D), dtype=dtype), labels
    arr = np.asarray(inputs)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"inputs must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 3:
        tokens = _image_to_tokens(arr, weights, cfg)
    elif arr.shape == (N, D):
        tokens = arr.astype(dtype)
    else:
        raise ValueError(
            f"inputs has shape {arr.shape}; expected tokens ({N}, {D}) = (columns, dim) or an "
            "image (channels, height, width) for weights with a patch embedding"
        )
    # one sum first (no boolean temporary; finite unless an entry is not, or it overflows:
    # an overflow is not an error here, whatever np.seterr says)
    with np.errstate(over="ignore", invalid="ignore"):
        total = tokens.sum()
    if not math.isfinite(total) and not np.all(np.isfinite(tokens)):
        raise ValueError("inputs contains NaN or inf")
    return np.ascontiguousarray(tokens, dtype=dtype), labels


def prepare_init(cfg: GlomConfig, weights: GlomWeights, init):
    """Initial state (L, N, D): ``init`` as given (or (L, D) broadcast to all columns);
    by default the weights' initial levels, zeros when they have none."""
    return np.ascontiguousarray(initial_state(cfg, weights, init))


def initial_state(cfg: GlomConfig, weights: GlomWeights, init):
    """:func:`prepare_init` without the copy where it is not needed: the default start is a
    read-only broadcast view of the (L, D) initial levels (runs copy it into their first
    record anyway; the extra copy was ~40 us of a small run)."""
    L, N, D = cfg.levels, cfg.n_columns, cfg.dim
    dtype = cfg.np_dtype
    if init is None:
        base = weights.init_levels if weights.init_levels is not None else np.zeros((L, D))
        return np.broadcast_to(base.astype(dtype)[:, None, :], (L, N, D))
    arr = np.asarray(init)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"init must be a numeric array, got dtype {arr.dtype}")
    if arr.shape == (L, D):
        arr = np.broadcast_to(arr[:, None, :], (L, N, D))
    if arr.shape != (L, N, D):
        raise ValueError(
            f"init has shape {arr.shape}; expected ({L}, {N}, {D}) = (levels, columns, dim) "
            f"or ({L}, {D}) for the same start in every column"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"init contains NaN or inf (first at level {bad[0]}, column {bad[1]}, feature {bad[2]})"
        )
    return np.ascontiguousarray(arr, dtype=dtype)


def ensemble_inputs(cfg: GlomConfig, wlist: list, members: int, inputs, init):
    """Tokens (M, N, D), labels (M, L, N) or None, and starts (M, L, N, D) of an
    ensemble's members (``wlist``: one set of weights shared, or one per member)."""
    per = [wlist[m] if len(wlist) > 1 else wlist[0] for m in range(members)]
    tokens, labels = [], []
    for m in range(members):
        t, lab = prepare_inputs(cfg, per[m], None if inputs is None else inputs[m])
        tokens.append(t)
        labels.append(lab)
    labels = None if any(lab is None for lab in labels) else np.stack(labels)
    state0 = np.stack(  # one copy: np.stack copies the members' (broadcast) starts
        [initial_state(cfg, per[m], None if init is None else init[m]) for m in range(members)]
    )
    return np.stack(tokens), labels, state0
