"""Inputs of a run: level-0 tokens (from tokens, images or scenes, with the scenes'
labels), frame sequences (tokens, images or movies, with the movies' labels), initial
states and the start of a continued run, checked and in the config's dtype."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import NamedTuple

import numpy as np

from .config import GlomConfig
from .reference import patch_tokens
from .weights import GlomWeights

__all__ = ["prepare_inputs", "prepare_frames", "prepare_init", "initial_state",
           "ensemble_inputs", "ensemble_frames", "frame_at", "frames_of_times", "Start",
           "continuation", "fresh_history", "is_dataset"]  # fmt: skip


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


def _fit_labels(labels, cfg: GlomConfig, where: str):
    """Scene labels (levels, columns) with one row per config level: a scene that knows
    fewer levels repeats its last row, one that knows more keeps the rows that exist."""
    labels = np.asarray(labels)
    if labels.shape[-1] != cfg.n_columns:
        raise ValueError(
            f"{where} has {labels.shape[-1]} columns but the config has {cfg.n_columns}"
        )
    if labels.shape[-2] == cfg.levels:
        return labels
    fixed = np.full(labels.shape[:-2] + (cfg.levels, cfg.n_columns), -1, dtype=np.int64)
    k = min(cfg.levels, labels.shape[-2])
    fixed[..., :k, :] = labels[..., :k, :]
    if labels.shape[-2] < cfg.levels:
        fixed[..., k:, :] = labels[..., -1:, :]
    return fixed


def _check_finite(tokens, name: str) -> None:
    # one sum first (no boolean temporary; finite unless an entry is not, or it overflows:
    # an overflow is not an error here, whatever np.seterr says)
    with np.errstate(over="ignore", invalid="ignore"):
        total = tokens.sum()
    if not math.isfinite(total) and not np.all(np.isfinite(tokens)):
        raise ValueError(f"{name} contains NaN or inf")


def prepare_inputs(cfg: GlomConfig, weights: GlomWeights, inputs):
    """Level-0 tokens (N, D) in the config's dtype, and scene labels if the input has them."""
    labels = None
    if inputs is not None and hasattr(inputs, "tokens") and hasattr(inputs, "labels"):
        scene = inputs
        labels = _fit_labels(scene.labels, cfg, "inputs scene")
        if weights.patch_w is not None and getattr(scene, "image", None) is not None:
            inputs = scene.image
        else:
            inputs = scene.tokens
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
    _check_finite(tokens, "inputs")
    return np.ascontiguousarray(tokens, dtype=dtype), labels


def frame_at(t, steps_per_frame: int, n_frames: int):
    """The frame step ``t`` >= 1 feeds level 0: ``min((t - 1) // k, n_frames - 1)``
    (frame 0 for t = 0, the initial state); ``t`` an int or an integer array."""
    t = np.asarray(t)
    return np.minimum(np.maximum(t - 1, 0) // steps_per_frame, n_frames - 1)


def frames_of_times(times, steps_per_frame: int, n_frames: int) -> np.ndarray:
    """The ``frame(time)`` coordinate: the frame each recorded step read."""
    return frame_at(np.asarray(times, dtype=np.int64), steps_per_frame, n_frames).astype(np.int64)


def prepare_frames(cfg: GlomConfig, weights: GlomWeights, frames):
    """Level-0 tokens of every frame (F, N, D) in the config's dtype, and a movie's labels
    (F, L, N) or None. ``frames``: tokens (frames, columns, dim), images (frames, channels,
    height, width) for weights with a patch embedding, or a movie: an object with
    ``tokens`` (or ``frames``) (frames, columns, dim) and ``labels`` (frames, levels,
    columns), and optionally ``images`` (frames, channels, height, width)."""
    labels = None
    if not isinstance(frames, np.ndarray) and hasattr(frames, "labels"):
        movie = frames
        images = getattr(movie, "images", None)
        if images is None:
            images = getattr(movie, "image", None)
        tokens = getattr(movie, "tokens", None)
        if tokens is None:
            tokens = getattr(movie, "frames", None)
        frames = images if (weights.patch_w is not None and images is not None) else tokens
        if frames is None:
            raise TypeError("frames: a movie needs tokens (frames, columns, dim)")
        labels = np.asarray(movie.labels)
        if labels.ndim != 3:
            raise ValueError(
                f"frames: the movie's labels have shape {labels.shape}; expected "
                "(frames, levels, columns)"
            )
        labels = _fit_labels(labels, cfg, "frames movie")
    arr = np.asarray(frames)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"frames must be a numeric array, got dtype {arr.dtype}")
    N, D = cfg.n_columns, cfg.dim
    if arr.ndim == 4:
        tokens = np.stack([_image_to_tokens(image, weights, cfg) for image in arr])
    elif arr.ndim == 3 and arr.shape[1:] == (N, D):
        tokens = arr.astype(cfg.np_dtype)
    else:
        raise ValueError(
            f"frames has shape {arr.shape}; expected tokens (frames, {N}, {D}) or images "
            "(frames, channels, height, width) for weights with a patch embedding"
        )
    if tokens.shape[0] < 1:
        raise ValueError("frames has no frame; give at least one")
    if labels is not None and labels.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"frames: the movie has {tokens.shape[0]} frames but labels for {labels.shape[0]}"
        )
    _check_finite(tokens, "frames")
    return np.ascontiguousarray(tokens, dtype=cfg.np_dtype), labels


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
    # checked after the cast: 1e39 is finite in float64 and inf in float32
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(cast)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(cast))[0])
        value = float(arr[bad])
        where = f"level {bad[0]}, column {bad[1]}, feature {bad[2]}"
        if math.isfinite(value):
            raise ValueError(
                f"init contains {value:.3g} at {where}, which overflows {dtype} (its "
                f"largest value is {float(np.finfo(dtype).max):.3g}); allowed: finite values"
            )
        raise ValueError(f"init contains NaN or inf (first at {where})")
    return cast


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


class Start(NamedTuple):
    """Where a run starts: E[t0] (``state0`` (L, N, D)), the states the top-down delay
    reads before it, ``history`` (d - 1, L, N, D) = E[t0 - 1], ..., E[t0 - d + 1]
    (E[0] for steps before 0), the step ``t0``, and a continued run's level-0 input:
    ``inputs`` (N, D) or frames (F, N, D) with ``steps_per_frame``, and ``labels``."""

    state0: np.ndarray
    history: np.ndarray
    t0: int = 0
    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    steps_per_frame: int | None = None


def is_dataset(obj) -> bool:
    """Whether ``obj`` is an xarray Dataset (without importing xarray)."""
    return hasattr(obj, "data_vars") and hasattr(obj, "attrs")


def fresh_history(state0, delay: int) -> np.ndarray:
    """The delay's history of a run from step 0: E[0] for every step before it."""
    return np.broadcast_to(state0, (delay - 1,) + state0.shape)


def continuation(cfg: GlomConfig, weights: GlomWeights, ds) -> Start:
    """The start of a run that continues ``ds`` (a Dataset from :func:`glomsim.simulate`
    of ``cfg`` and ``weights``) from its last state: ValueErrors name what differs or what
    is missing."""
    from .config import GlomConfig as _Config

    if "member" in ds.dims:
        raise ValueError(
            "init: a Dataset of an ensemble cannot be continued by simulate; pass one "
            "member's Dataset (ds.isel(member=m))"
        )
    if "embedding" not in ds.data_vars or "glomsim_config" not in ds.attrs:
        raise ValueError("init: the Dataset is not a run of glomsim.simulate (no embedding "
                         "or glomsim_config)")  # fmt: skip
    theirs = _Config.from_dataset(ds)
    differ = [f.name for f in fields(cfg)
              if f.name != "steps" and getattr(cfg, f.name) != getattr(theirs, f.name)]  # fmt: skip
    if differ:
        shown = ", ".join(f"{k} ({getattr(theirs, k)!r} there, {getattr(cfg, k)!r} here)"
                          for k in differ)  # fmt: skip
        raise ValueError(f"init: the Dataset was run with another config: {shown}")
    if ds.attrs.get("weights_hash") != weights.content_hash():
        raise ValueError(
            f"init: the Dataset was run with other weights (hash "
            f"{str(ds.attrs.get('weights_hash'))[:12]}..., these are "
            f"{weights.content_hash()[:12]}...); pass the weights it was simulated with"
        )
    times = [int(t) for t in ds["time"].values]
    last = times[-1]
    d = cfg.top_down_delay
    need = [max(last - j, 0) for j in range(d)]  # E[T], E[T-1], ..., E[T-d+1]
    held = {}
    if "delay_history" in ds.data_vars:
        for lag, state in zip(ds["lag"].values, ds["delay_history"].values, strict=True):
            held[max(last - int(lag), 0)] = state
    index = {t: i for i, t in enumerate(times)}
    missing = [t for t in need if t not in index and t not in held]
    if missing:
        raise ValueError(
            f"init: continuing with top_down_delay={d} needs the states at steps "
            f"{', '.join(map(str, sorted(set(need))))}, and the Dataset lacks step(s) "
            f"{', '.join(map(str, sorted(set(missing))))} (it records steps "
            f"{_span(times)} and no delay_history); continue from a run that recorded "
            "its last steps, or from an unthinned copy of it"
        )
    emb = ds["embedding"]
    dt = cfg.np_dtype

    def state(t):
        got = emb.isel(time=index[t]).values if t in index else held[t]
        return np.ascontiguousarray(got, dtype=dt)

    states = [state(t) for t in need]
    history = np.stack(states[1:]) if d > 1 else np.empty((0,) + states[0].shape, dt)
    per_frame = ds.attrs.get("steps_per_frame")
    label = ds["label"].values if "label" in ds.data_vars else None
    return Start(states[0], history, last, np.ascontiguousarray(ds["input"].values, dtype=dt),
                 label, None if per_frame is None else int(per_frame))  # fmt: skip


def _span(times) -> str:
    if len(times) <= 4:
        return ", ".join(map(str, times))
    return f"{times[0]}, {times[1]}, ..., {times[-2]}, {times[-1]}"


def ensemble_frames(cfg: GlomConfig, wlist: list, members: int, frames):
    """Frames (M, F, N, D) and movie labels (M, F, L, N) or None of an ensemble's
    members; every member needs the same number of frames."""
    per = [wlist[m] if len(wlist) > 1 else wlist[0] for m in range(members)]
    got = [prepare_frames(cfg, per[m], frames[m]) for m in range(members)]
    counts = sorted({t.shape[0] for t, _ in got})
    if len(counts) > 1:
        raise ValueError(f"frames: the members have different numbers of frames {counts}; "
                         "give every member as many")  # fmt: skip
    labels = [lab for _, lab in got]
    labels = None if any(lab is None for lab in labels) else np.stack(labels)
    return np.stack([t for t, _ in got]), labels
