"""glomsim: simulate and analyse the consensus dynamics of GLOM (Hinton 2021).

``import glomsim`` is light: it compiles nothing, imports numba, xarray and scipy only
when a function that needs them is first called, and writes nothing into the
environment (the thread policy, :mod:`glomsim.runtime`, applies when a run first steps).
"""

from __future__ import annotations

from ._version import __version__
from .config import Attention, GlomConfig, Mix

# the entry points' module is glomsim.simulation, so the function glomsim.simulate shadows
# no submodule; it imports numba and xarray only inside functions
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
    if name in ("reference", "testing", "scenes", "dataset", "sweep", "train", "interop",
                "inputs", "runtime"):  # fmt: skip
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'glomsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
