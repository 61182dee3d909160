"""Compile every kernel variant a run may need, once, into numba's cache
(:func:`glomsim.warmup` and ``glomsim warmup``)."""

from __future__ import annotations

__all__ = ["VARIANT_RUNS", "compile_all"]

#: The config options that select each variant of the fused step
#: (:func:`glomsim._kernels.step.variant_of`): "lean" (GELU nets, no contrastive kernel:
#: most runs) and "full" (every activation and kernel).
VARIANT_RUNS = {"lean": {}, "full": {"bottom_up_activation": "relu"}}


def compile_all(dtypes, say=None) -> None:
    """Compile (or load from the cache) both variants for each of ``dtypes``: the in-numba
    run, the step by step (settling, summaries, progress bars) and the custom-rule path,
    by one tiny run of each; ``say(message)`` hears before each variant."""
    import numpy as np

    from ..config import Attention, GlomConfig
    from ..simulation import simulate
    from ..weights import random_weights

    jobs = [(dtype, name) for dtype in dtypes for name in VARIANT_RUNS]
    for i, (dtype, name) in enumerate(jobs, 1):
        if say is not None:
            say(f"compiling the {dtype} {name} kernels ({i}/{len(jobs)})")
        cfg = GlomConfig(levels=2, dim=4, grid=(2, 2), steps=1, dtype=dtype,
                         attention=Attention(radius=1.5), **VARIANT_RUNS[name])  # fmt: skip
        w = random_weights(cfg, seed=0)
        simulate(cfg, w, inputs=np.ones((4, 4)))
        simulate(cfg, w, inputs=np.ones((4, 4)), summaries_only=True)
        simulate(cfg, w, rule=lambda p, b, t, a, m: p)
