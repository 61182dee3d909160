"""The ids the kernels dispatch on and the slots of a level's parameter row, derived in
this one place from :mod:`glomsim.config`'s names.

Append only: the kernels compile these ids in as constants, and numba's cache does not
see a change made here, so an id must never change meaning (a new kernel, normalisation
or activation takes the next id).

A level's attention scalars arrive as one row ``params[level]`` in the state's dtype: in
numba a float32 plus a Python number is a float64, and one such constant made whole
loops run in float64. The slots are named below; :func:`level_params` fills a row.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ACTIVATIONS, KERNELS, NORMALIZATIONS

__all__ = [
    "KERNEL_IDS",
    "NORM_IDS",
    "ACTIVATIONS",
    "ACTIVATION_IDS",
    "PARAM_SLOTS",
    "level_params",
]

KERNEL_IDS = {name: i for i, name in enumerate(KERNELS)}
DOT = KERNEL_IDS["dot"]
COSINE = KERNEL_IDS["cosine"]
GAUSSIAN = KERNEL_IDS["gaussian"]
BOUNDED = KERNEL_IDS["bounded"]
GLOM_PYTORCH = KERNEL_IDS["glom_pytorch"]
CONTRASTIVE = KERNEL_IDS["contrastive"]

NORM_IDS = {name: i for i, name in enumerate(NORMALIZATIONS)}
NONE = NORM_IDS["none"]
L2 = NORM_IDS["l2"]
LAYERNORM = NORM_IDS["layernorm"]

#: The nets' activations, by the config's names (``Nets.act`` holds one per net kind).
ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
GELU = ACTIVATION_IDS["gelu"]
RELU = ACTIVATION_IDS["relu"]
SIN = ACTIVATION_IDS["sin"]

#: Slots of ``params[level]``: the kernel's beta, the bounded kernel's threshold
#: epsilon (1 + tol), 1/sqrt(D), glom-pytorch's self score, the 1e-12 floor of key norms,
#: then the constants 1, 2, the largest bound shift of a softmax row, the contrastive
#: kernel's threshold and repulsion, and inf last (new slots go before it: only the
#: attention primitives, which name every slot they read, use it).
PARAM_SLOTS = ("beta", "bound", "inv_sqrt_d", "self_score", "tiny", "one", "two",
               "shift_max", "threshold", "repulsion", "inf")  # fmt: skip
(BETA, BOUND, INV_SQRT_D, SELF_SCORE, TINY, ONE, TWO, SHIFT_MAX, THRESHOLD, REPULSION,
 INF) = range(len(PARAM_SLOTS))  # fmt: skip

#: Largest shift of a softmax row taken from a bound on its scores instead of their
#: maximum: the row's terms are then >= e^-60 times its largest, far above underflow.
BOUND_SHIFT_MAX = 30.0
#: Floor of a key's norm in the glom_pytorch kernel (glom-pytorch's own).
KEY_NORM_FLOOR = 1e-12


def level_params(dtype, dim: int, beta: float, bound: float, self_score: float, *,
                 threshold: float = 0.0, repulsion: float = 1.0) -> np.ndarray:  # fmt: skip
    """One level's parameter row (see ``PARAM_SLOTS``) in ``dtype``; ``threshold`` and
    ``repulsion`` are the contrastive kernel's (``Attention``'s defaults)."""
    values = dict(beta=beta, bound=bound, inv_sqrt_d=1 / math.sqrt(dim), self_score=self_score,
                  tiny=KEY_NORM_FLOOR, one=1.0, two=2.0, shift_max=BOUND_SHIFT_MAX,
                  threshold=threshold, repulsion=repulsion, inf=math.inf)  # fmt: skip
    return np.array([values[name] for name in PARAM_SLOTS], dtype=dtype)
