"""Re-running saved results, and compiling every kernel ahead of time."""

from __future__ import annotations

import time


def rerun(ds, weights, **kwargs):
    """Run again the simulation that produced ``ds`` (same config, inputs and initial
    state); with the same weights the result is bit-identical. A ``summaries_only`` run is
    re-run in that mode (``summaries_only=False`` in ``kwargs`` gives the full trajectory).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=3)
    >>> w = gs.random_weights(cfg, seed=1)
    >>> ds = gs.simulate(cfg, w)
    >>> bool((gs.rerun(ds, w).embedding == ds.embedding).all())
    True
    """
    from .config import GlomConfig
    from .simulation import simulate

    cfg = GlomConfig.from_dataset(ds)
    weights.check_hash(ds.attrs.get("weights_hash"))
    steps = int(ds.time.values[-1])
    kwargs.setdefault("summaries_only", bool(ds.attrs.get("summaries_only", 0)))
    return simulate(
        cfg,
        weights,
        inputs=ds["input"].values,
        init=ds["embedding"].isel(time=0).values,
        steps=steps,
        **kwargs,
    )


def warmup(verbose: bool = False) -> float:
    """Compile (or load from the cache) every kernel for float32 and float64: the
    in-numba run, the step by step (settling, summaries, progress bars) and the
    custom-rule path; returns seconds. The kernels take one signature per dtype (kernel
    ids and sizes are values, not types), so one small run of each kind compiles them."""
    import numpy as np

    from .config import Attention, GlomConfig
    from .simulation import simulate
    from .weights import random_weights

    t0 = time.perf_counter()
    for dtype in ("float32", "float64"):
        cfg = GlomConfig(levels=2, dim=4, grid=(2, 2), steps=1, dtype=dtype,
                         attention=Attention(radius=1.5))  # fmt: skip
        w = random_weights(cfg, seed=0)
        simulate(cfg, w, inputs=np.ones((4, 4)))
        simulate(cfg, w, inputs=np.ones((4, 4)), summaries_only=True)
        simulate(cfg, w, rule=lambda p, b, t, a, m: p)
        if verbose:
            print(f"compiled {dtype} kernels")
    return time.perf_counter() - t0
