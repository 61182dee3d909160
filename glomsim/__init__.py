"""glomsim: simulate and analyse the consensus dynamics of GLOM (Hinton 2021).

``import glomsim`` is light: it compiles nothing and imports numba, xarray and scipy
only when a function that needs them is first called.
"""

from __future__ import annotations

import os as _os

# Idle OpenMP threads (numba's layer, torch's) spin by default; on a shared 2-core machine
# that made small parallel steps 50-100x slower. A short spin (GOMP_SPINCOUNT, which libgomp
# lets override the policy) still lets a thread catch the next of a step's back-to-back
# parallel loops without a futex wake-up: a dim-64, 8x8 step took 0.43 instead of 0.75 ms
# on 2 threads, and with the other core busy it behaved as passive waiting does (10000
# spins made that case 2.5x slower). libgomp reads these once, when it is first loaded, so
# they are set at import; values the user already set win.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from ._version import __version__
from .config import Attention, GlomConfig, Mix

# eager, and after the submodule import, so that ``glomsim.simulate`` is the function;
# the module itself imports numba and xarray only inside functions
from .simulation import SimulationDiverged, simulate, simulate_ensemble
from .weights import GlomWeights, identity_weights, load_weights, random_weights

__all__ = [
    "Attention",
    "GlomConfig",
    "Mix",
    "GlomWeights",
    "identity_weights",
    "load_weights",
    "random_weights",
    "simulate",
    "simulate_ensemble",
    "SimulationDiverged",
    "save",
    "open_dataset",
    "load_run",
    "rerun",
    "warmup",
    "from_glom_pytorch",
    "to_glom_pytorch",
    "__version__",
]

_LAZY = {
    "save": ("dataset", "save"),
    "open_dataset": ("dataset", "open_dataset"),
    "load_run": ("dataset", "load_run"),
    "rerun": ("runs", "rerun"),
    "warmup": ("runs", "warmup"),
    "from_glom_pytorch": ("interop", "from_glom_pytorch"),
    "to_glom_pytorch": ("interop", "to_glom_pytorch"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    if name in ("reference", "testing", "scenes", "dataset", "sweep", "train", "interop"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'glomsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
