"""ONE registry of every variable glomsim writes or reads: runs, sweeps, training history
and analysis outputs.

Each entry gives the name, the dims (beyond any leading ``member``, ``seed`` or sweep-axis
dims), the dtype, a ``long_name``, ``units`` and a one-line description. Writers take
their attrs from here (:func:`attrs`), so datasets label themselves and plots read their
labels; readers check their inputs against it (:func:`check_dataset`), so a Dataset that
lacks what a function needs is refused in one line naming the variable.

``dtype`` "float" means the run's own float dtype (float32 or float64).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Variable", "VARIABLES", "COORDS", "attrs", "register", "check_dataset"]


@dataclass(frozen=True)
class Variable:
    name: str
    dims: tuple[str, ...]
    dtype: str
    long_name: str
    units: str
    description: str

    def attrs(self) -> dict:
        return {"long_name": self.long_name, "units": self.units, "description": self.description}


VARIABLES: dict[str, Variable] = {}


def register(*variables: Variable) -> None:
    """Add variables to the registry (a name is registered once)."""
    for v in variables:
        if v.name in VARIABLES and VARIABLES[v.name] != v:
            raise ValueError(f"variable {v.name!r} is registered twice, differently")
        VARIABLES[v.name] = v


def attrs(name: str) -> dict:
    """``long_name``, ``units`` and ``description`` of a registered variable."""
    return VARIABLES[name].attrs()


V = Variable
# ----- coordinates -----------------------------------------------------------------------
COORDS = ("time", "step", "level", "column", "feature", "y", "x", "member", "seed")
register(
    V("time", ("time",), "int64", "step", "1", "step index; 0 is the initial state"),
    V(
        "step",
        ("step",),
        "int64",
        "step",
        "1",
        "step index of the per-step summaries; 0 is the initial state",
    ),
    V("level", ("level",), "int64", "level", "1", "level of the part-whole hierarchy, 0 = lowest"),
    V("column", ("column",), "int64", "column", "1", "column index, row-major on grids"),
    V("feature", ("feature",), "int64", "feature", "1", "embedding feature index"),
    V("y", ("column",), "float64", "y position", "grid units", "row position of each column"),
    V("x", ("column",), "float64", "x position", "grid units", "column position of each column"),
    V("member", ("member",), "int64", "ensemble member", "1", "index of an ensemble member"),
    V("seed", ("seed",), "int64", "seed", "1", "the run's config and weights seed"),
)
# ----- a run (simulate) ----------------------------------------------------------------------
register(
    V(
        "embedding",
        ("time", "level", "column", "feature"),
        "float",
        "embedding",
        "1",
        "state E[t, l, i, :] of every level of every column at each recorded step",
    ),
    V("input", ("column", "feature"), "float", "input token", "1", "level-0 input u[i]"),
    V(
        "label",
        ("level", "column"),
        "int64",
        "ground-truth label",
        "1",
        "true part-whole label of each column per level (scenes only; -1 where unknown)",
    ),
    V(
        "rms",
        ("step", "level"),
        "float64",
        "RMS embedding size",
        "1",
        "RMS over (column, feature) of E[t, l] at every step (summaries_only runs)",
    ),
    V(
        "change",
        ("step", "level"),
        "float64",
        "RMS change per step",
        "1",
        "RMS over (column, feature) of E[t, l] - E[t-1, l] at every step, NaN at step 0 "
        "(the quantity stop_when_settled tests)",
    ),
)
# ----- a sweep's per-run results (after the sweep's own dims) ----------------------------
register(
    V(
        "status",
        (),
        "int8",
        "run status",
        "1",
        "0 pending, 1 done, 2 failed; set only after the run's data is written",
    ),
    V("error", (), "str", "error message", "1", "why the run failed ('' if it did not)"),
    V(
        "island_count",
        ("level",),
        "int64",
        "islands at the last step",
        "1",
        "analysis.islands count at the last recorded step (-1 where not run)",
    ),
    V(
        "ari",
        ("level",),
        "float64",
        "adjusted Rand index vs ground truth",
        "1",
        "analysis.agreement ari of the last step's islands against the scene's labels",
    ),
    V(
        "residual",
        ("level",),
        "float64",
        "final RMS change per step",
        "1",
        "analysis.convergence residual at the last recorded step",
    ),
    V(
        "settled_step",
        ("level",),
        "int64",
        "settling step",
        "step",
        "analysis.convergence settled_step (-1 never settled or not run)",
    ),
    V(
        "rate",
        ("level",),
        "float64",
        "geometric convergence rate",
        "1",
        "analysis.convergence rate (NaN when it cannot be fitted)",
    ),
    V(
        "spectral_radius",
        (),
        "float64",
        "spectral radius",
        "1",
        "analysis.stability spectral_radius of the step map at the last state",
    ),
    V(
        "spectral_radius_transverse",
        (),
        "float64",
        "spectral radius off the neutral subspace",
        "1",
        "analysis.stability spectral_radius_transverse (common shifts left out)",
    ),
)
del V


def check_dataset(ds, names, func: str) -> None:
    """Refuse ``ds`` unless it is an ``xarray.Dataset`` holding every variable in ``names``
    with (at least) its registered dims: a TypeError or one-line ValueError naming
    ``func``, what is missing and what it needs."""
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{func}: ds must be an xarray.Dataset, got {type(ds).__name__}")
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(
            f"{func}: ds has no {', '.join(missing)}; it needs {', '.join(names)} "
            "(a Dataset from glomsim.simulate)"
        )
    for n in names:
        v = VARIABLES.get(n)
        if v is None:
            continue
        lacking = [d for d in v.dims if d not in ds[n].dims]
        if lacking:
            raise ValueError(
                f"{func}: ds.{n} has dims {ds[n].dims}, without {', '.join(lacking)}; "
                f"it needs {v.dims} (a Dataset from glomsim.simulate)"
            )
