"""Re-running saved results, and compiling every kernel ahead of time."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np


def _record_every(ds) -> int:
    """The ``record_every`` a Dataset was recorded with, read back from its times (every
    k-th step from 0, and the last): the step between the first two kept steps; a run
    that kept only its first and last step had a k of at least its length."""
    times = [int(t) for t in ds["time"].values]
    if "record_every" in ds.attrs:
        return int(ds.attrs["record_every"])
    if len(times) < 2 or bool(ds.attrs.get("summaries_only", 0)):
        return 1
    return max(times[1] - times[0], 1)


def _start(cfg, weights, ds):
    """The initial state to pass again: None (the default start) when the Dataset's is
    the weights' default, since the default is a broadcast view whose sums (the
    summaries at step 0) round differently from a copy's; else the recorded state."""
    from .inputs import initial_state

    first = ds["embedding"].isel(time=0).values
    if np.array_equal(first, initial_state(cfg, weights, None)):
        return None
    return first


def _inputs(ds) -> dict:
    """The inputs to pass again, as ``simulate``'s keyword arguments: the tokens (or the
    frames and steps per frame), with the scene's or movie's labels when the Dataset has
    them (so the rerun keeps ``label``)."""
    tokens = ds["input"].values
    if "label" in ds:
        tokens = SimpleNamespace(tokens=tokens, labels=ds["label"].values, image=None)
    if "frame" in ds["input"].dims:
        return {"frames": tokens, "steps_per_frame": int(ds.attrs["steps_per_frame"])}
    return {"inputs": tokens}


def rerun(ds, weights, **kwargs):
    """Run again the simulation that produced ``ds`` (same config, inputs, initial state,
    ``record_every`` and labels); with the same weights the result is bit-identical. A
    ``summaries_only`` run is re-run in that mode (``summaries_only=False`` in ``kwargs``
    gives the full trajectory); ``kwargs`` go to :func:`glomsim.simulate` and override
    what is read from ``ds``.

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=7)
    >>> w = gs.random_weights(cfg, seed=1)
    >>> ds = gs.simulate(cfg, w, record_every=3)
    >>> again = gs.rerun(ds, w)
    >>> [int(t) for t in again.time], bool((again.embedding == ds.embedding).all())
    ([0, 3, 6, 7], True)
    """
    from .config import GlomConfig
    from .simulation import simulate

    cfg = GlomConfig.from_dataset(ds)
    weights.check_hash(ds.attrs.get("weights_hash"))
    if "continued_from_step" in ds.attrs:
        raise ValueError(
            f"ds: a run continued from step {ds.attrs['continued_from_step']} does not hold "
            "its own start; rerun the run it continued, then continue that again "
            "(simulate(cfg, w, init=earlier, steps=n))"
        )
    steps = int(ds.time.values[-1])
    summaries_only = bool(ds.attrs.get("summaries_only", 0))
    kwargs.setdefault("summaries_only", summaries_only)
    if not kwargs["summaries_only"]:
        kwargs.setdefault("record_every", _record_every(ds))
    return simulate(cfg, weights, init=_start(cfg, weights, ds), steps=steps,
                    **(_inputs(ds) | kwargs))  # fmt: skip


def warmup(verbose: bool = False, dtypes=("float32", "float64")) -> float:
    """Compile (or load from the cache) every kernel for each of ``dtypes``: both
    variants of the fused step (lean: GELU nets and no contrastive kernel; full: every
    activation and kernel), each for the in-numba run, the step by step (settling,
    summaries, progress bars) and the custom-rule path; returns seconds. The kernels take
    one signature per dtype and variant (kernel ids and sizes are values, not types), so
    one small run of each kind compiles them; a dtype left out is compiled by its first
    run instead (about half the time of all).
    The cache is the one :mod:`glomsim._kernels.jit` chose (``glomsim info`` shows it;
    a read-only install's is per user).

    Examples
    --------
    >>> import glomsim as gs
    >>> gs.warmup(dtypes=("float32",)) >= 0  # doctest: +SKIP
    True
    """
    from ._engine.warm import compile_all
    from ._validate import check_choice

    dtypes = (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)
    for dtype in dtypes:
        check_choice("dtypes", dtype, ("float32", "float64"))
    t0 = time.perf_counter()
    compile_all(dtypes, say=(lambda msg: print(msg, flush=True)) if verbose else None)
    return time.perf_counter() - t0
