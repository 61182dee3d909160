"""analysis: measurements on glomsim Datasets (islands, hierarchy, convergence, stability).

Every function takes xarray objects and returns xarray objects with ``long_name`` and
``units``, works on dask-backed data and never modifies its input.
"""

from __future__ import annotations

from .convergence import convergence
from .energy import energy
from .hierarchy import adjusted_rand_index, agreement, hierarchy, parse_truth, purity

# Eager imports after each submodule, so that ``analysis.islands`` is the function, not
# the module of the same name. Submodules import scipy/matplotlib inside functions.
from .islands import islands
from .stability import lyapunov, perturbation_recovery, stability
from .summary import analyze_run, summarize

__all__ = [
    "islands",
    "hierarchy",
    "parse_truth",
    "agreement",
    "adjusted_rand_index",
    "purity",
    "convergence",
    "stability",
    "perturbation_recovery",
    "lyapunov",
    "energy",
    "summarize",
    "analyze_run",
    "plot",
]


def __getattr__(name):
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


# islands over time (issue 13): identities that persist, and tracking lag behind a movie
from .tracking import match_islands, track, tracking_lag  # noqa: E402

__all__ += ["track", "tracking_lag", "match_islands"]
