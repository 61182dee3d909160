"""ONE registry of every variable glomsim writes or reads: runs, sweeps, training history
and analysis outputs.

Each entry gives the name, the dims (beyond any leading ``member``, ``seed`` or sweep-axis
dims), the dtype, a ``long_name``, ``units`` and a one-line description. Writers take
their attrs from here (:func:`attrs`), so datasets label themselves and plots read their
labels; readers check their inputs against it (:func:`check_dataset`), so a Dataset that
lacks what a function needs is refused in one line naming the variable.

``dtype`` "float" means the run's own float dtype (float32 or float64).

Each analysis returns a Dataset of its own, so its outputs are registered under the
function's name, ``"<function>.<variable>"`` (``"convergence.residual"`` is the
``residual(time, level)`` of :func:`analysis.convergence`; ``"residual"`` alone is the
sweep's per-run ``residual(level)``): names need only be unique within one Dataset.
:func:`annotate` labels such a Dataset from its function's entries.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Variable",
    "VARIABLES",
    "COORDS",
    "attrs",
    "register",
    "annotate",
    "check_dataset",
]


@dataclass(frozen=True)
class Variable:
    """One registered variable; ``name`` may be qualified, ``"<function>.<variable>"``."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    long_name: str
    units: str
    description: str

    @property
    def short_name(self) -> str:
        """The name in the Dataset: ``name`` without its ``"<function>."`` qualifier."""
        return self.name.rpartition(".")[2]

    def attrs(self, *, description: bool = True) -> dict:
        """``long_name``, ``units`` and (unless ``description=False``) ``description``."""
        out = {"long_name": self.long_name, "units": self.units}
        if description:
            out["description"] = self.description
        return out


VARIABLES: dict[str, Variable] = {}


def register(*variables: Variable) -> None:
    """Add variables to the registry (a name is registered once)."""
    for v in variables:
        if v.name in VARIABLES and VARIABLES[v.name] != v:
            raise ValueError(f"variable {v.name!r} is registered twice, differently")
        VARIABLES[v.name] = v


def attrs(name: str, *, description: bool = True) -> dict:
    """``long_name``, ``units`` and ``description`` of a registered variable.

    Coordinates carry ``long_name`` and ``units`` only (``description=False``), as every
    Dataset glomsim has written does.
    """
    return VARIABLES[name].attrs(description=description)


def annotate(ds, function: str):
    """Set the attrs of every variable of ``ds`` registered as ``"<function>.<name>"``
    (coordinates get ``long_name`` and ``units``, data variables also ``description``);
    others are left as they are. Returns ``ds``, changed in place."""
    for name in ds.variables:
        v = VARIABLES.get(f"{function}.{name}")
        if v is not None:
            ds[name].attrs.update(v.attrs(description=name not in ds.coords))
    return ds


V = Variable
# ----- coordinates -----------------------------------------------------------------------
COORDS = (
    "time",
    "step",
    "level",
    "column",
    "feature",
    "y",
    "x",
    "member",
    "seed",
    "point",
    "lag",
    "frame",
)
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
    V("point", ("point",), "int64", "point", "1", "index of a point of a zip or random sweep"),
    V(
        "lag",
        ("lag",),
        "int64",
        "steps before the last",
        "step",
        "how many steps before the run's last state a delay_history state is",
    ),
    V(
        "frame",
        ("time",),
        "int64",
        "frame",
        "1",
        "the frame of the input that the step recorded at this time read (frame 0 at step 0)",
    ),
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
    V(
        "input",
        ("column", "feature"),
        "float",
        "input token",
        "1",
        "level-0 input u[i] (per frame, input(frame, column, feature), for frames runs)",
    ),
    V(
        "label",
        ("level", "column"),
        "int64",
        "ground-truth label",
        "1",
        "true part-whole label of each column per level (scenes only)",
    ),
    V(
        "rms",
        ("step", "level"),
        "float64",
        "RMS embedding size",
        "1",
        "RMS over (column, feature) of E[t, l] at every step, thinned runs included",
    ),
    V(
        "change",
        ("step", "level"),
        "float64",
        "RMS change per step",
        "1",
        "RMS over (column, feature) of E[t, l] - E[t-1, l] at every step, thinned runs "
        "included, NaN at step 0 (the quantity stop_when_settled tests)",
    ),
    V(
        "delay_history",
        ("lag", "level", "column", "feature"),
        "float",
        "top-down delay history",
        "1",
        "the states 1 .. top_down_delay - 1 steps before the last, which a continued "
        "run's top-down delay reads (kept by runs whose records lack them)",
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
        "ari_objects",
        ("level",),
        "float64",
        "adjusted Rand index of the objects",
        "1",
        "analysis.agreement ari with objects_only=True: the background left out",
    ),
    V(
        "boundary_leak",
        ("level",),
        "float64",
        "boundary leak",
        "1",
        "analysis.agreement boundary_leak at the last step: true-boundary neighbour pairs "
        "that agree",
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
    # a sweep keeps a run's trajectory and labels under the run's names, described apart
    V(
        "sweep.embedding",
        ("time", "level", "column", "feature"),
        "float",
        "embedding",
        "1",
        "the run's trajectory, thinned with keep.record_every",
    ),
    V(
        "sweep.label",
        ("level", "column"),
        "int64",
        "ground-truth label",
        "1",
        "the run's scene labels per level (-1 where not run)",
    ),
)
del V


# ----- analysis outputs: "<function>.<variable>" ---------------------------------------------
def _outputs(function: str, rows) -> None:
    """Register one analysis function's outputs from (name, dims, dtype, long_name, units,
    description) rows; dims are written space-separated."""
    register(
        *(Variable(f"{function}.{n}", tuple(d.split()), t, ln, u, desc)
          for n, d, t, ln, u, desc in rows)
    )  # fmt: skip


_TL = "time level"
_TLI = "time level island"
_EACH_ISLAND = "columns in each island; 0 pads islands beyond count"
_SHUFFLED = "after permuting the columns' embeddings over positions"
_TRANSVERSE = "leading eigenvalues by modulus once the neutral subspace is factored out"
# fmt: off
_outputs("train", (
    ("epoch", "epoch", "int64", "epoch", "1", "training epoch, from 1"),
    ("net", "net", "str", "net", "1",
     "which net made the prediction: bottom_up or top_down"),
    ("reconstruction", "epoch level net", "float64", "reconstruction loss", "1",
     "mean squared distance of the prediction to the level's target state"),
    ("island", "epoch level net", "float64", "island loss", "1",
     "mean squared distance of the prediction to its island's consensus"),
    ("contrastive", "epoch level net", "float64", "contrastive loss", "1",
     "mean squared hinge on cosine similarity to other islands' consensus"),
    ("total", "epoch", "float64", "total loss", "1",
     "weighted sum of all terms over levels and nets, mean over scenes"),
))
# analysis.tracking: islands over time
_TL_TRACK = "time level"
_LI_TRACK = "level identity"
_outputs("track", (
        ("track", "time level column", "int64", "island identity", "1",
         "identity of each column's island, persisting while the island is matched to one "
         "at the previous recorded step; numbered 0, 1, ... per level in order of birth"),
        ("islands", _TL_TRACK, "int64", "number of islands", "1",
         "islands (= identities present) at each recorded step"),
        ("births", _TL_TRACK, "int64", "new identities", "1",
         "islands not matched to one at the previous recorded step (all at the first)"),
        ("deaths", _TL_TRACK, "int64", "ended identities", "1",
         "islands of the previous recorded step not matched to one at this step; 0 at the "
         "first"),
        ("kept_fraction", _TL_TRACK, "float64", "columns keeping their identity", "1",
         "fraction of columns whose island identity equals their identity at the previous "
         "recorded step; NaN at the first"),
        ("lifetime", _LI_TRACK, "int64", "lifetime", "step",
         "steps from an identity's first to its last recorded step (0: seen once); -1 pads "
         "identities a level does not have"),
        ("first_time", _LI_TRACK, "int64", "first step", "step",
         "recorded step at which the identity first appears; -1 for padding"),
        ("last_time", _LI_TRACK, "int64", "last step", "step",
         "recorded step at which the identity last appears; -1 for padding"),
        ("alive_at_end", _LI_TRACK, "bool", "alive at the last step", "1",
         "whether the identity is present at the last recorded step (its lifetime is then "
         "a lower bound)"),
        ("identity", "identity", "int64", "island identity", "1",
         "identity index, per level"),
))
_outputs("tracking_lag", (
        ("ari", _TL_TRACK, "float64", "adjusted Rand index against the current frame", "1",
         "adjusted Rand index of the islands against the labels of the frame that the step "
         "read (scored columns only); NaN where no column is scored"),
        ("settled_ari", "frame level", "float64", "settled adjusted Rand index", "1",
         "ari at the last recorded step that read this frame; NaN if none was recorded"),
        ("lag", "frame level", "float64", "tracking lag", "step",
         "steps from the first recorded step that read this frame to the first one whose "
         "ari reaches fraction times settled_ari; NaN for frame 0, for frames never "
         "recorded, and where settled_ari is not > 0"),
        ("mean_lag", "level", "float64", "mean tracking lag", "step",
         "mean of lag over the frames where it is defined"),
        ("change_time", "frame", "int64", "frame change step", "step",
         "first recorded step that read this frame; -1 if none"),
        ("frame", "frame", "int64", "frame", "1", "index of an input frame"),
))
_outputs("islands", (
    ("labels", "time level column", "int64", "island", "1",
     "island of each column at each step and level, numbered 0, 1, ... in order of the "
     "first column of each island"),
    ("count", _TL, "int64", "number of islands", "1",
     "number of islands at each step and level"),
    ("largest_fraction", _TL, "float64", "largest island fraction", "1",
     "columns in the largest island divided by all columns"),
    ("spread", _TL, "float64", "within-island spread", "1",
     "RMS over columns of the distance of each column's embedding to its island's mean "
     "(same units as the embedding)"),
    ("sizes", _TLI, "int64", "island size", "1", _EACH_ISLAND),
    ("baseline_count", _TL, "int64", "number of islands, shuffled baseline", "1",
     f"number of islands {_SHUFFLED}"),
    ("baseline_largest_fraction", _TL, "float64", "largest island fraction, shuffled baseline",
     "1", f"largest island fraction {_SHUFFLED}"),
    ("island", "island", "int64", "island", "1", "island index at one step and level"),
))
_outputs("hierarchy", (
    ("parse_score", "time", "float64", "parse-tree score", "1",
     "mean over level pairs (l, l+1) of the fraction of columns whose island at level l "
     "lies inside one island at level l+1; 1 is a perfect parse tree"),
    ("column_nesting", _TL, "float64", "nested column fraction", "1",
     "fraction of columns whose island at this level lies inside one island at the "
     "level above; NaN at the top level"),
    ("island_nesting", _TL, "float64", "nested island fraction", "1",
     "fraction of this level's islands that lie inside one island at the level above; "
     "NaN at the top level"),
    ("parent", _TLI, "int64", "parent island", "1",
     "island at the level above that contains this island; -1 when it spans several, "
     "at the top level, and for padding islands (sizes == 0)"),
    ("n_parents", _TLI, "int64", "number of parent islands", "1",
     "islands at the level above that this island overlaps; 0 at the top level and "
     "for padding islands"),
))
_outputs("parse_truth", (
    ("parent_score", _TL, "float64", "parent score", "1",
     "share of columns whose island at level l lies inside the island at level l+1 "
     "matched to their true parent"),
    ("parse_truth_score", "time", "float64", "parse truth score", "1",
     "mean of parent_score over the level pairs"),
    ("baseline_parent_score", "baseline level", "float64", "baseline parent score", "1",
     "parent_score of trivial parses"),
    ("columns_scored", "level", "int64", "columns scored", "columns",
     "columns scored for the level pair (l, l+1)"),
))
_SCORED = "over the scored columns (attr scored_columns)"
_BASE = "of the trivial partitions (background one island, others alone; the finer truth)"
_outputs("agreement", (
    ("ari", _TL, "float64", "adjusted Rand index", "1",
     "adjusted Rand index of the islands against the ground-truth labels (1 = same "
     f"partition, about 0 = chance) {_SCORED}; NaN where the level has none"),
    ("purity", _TL, "float64", "purity", "1",
     "fraction of columns whose island's most common true label is their own "
     f"(1 when every island holds one true label) {_SCORED}"),
    ("inverse_purity", _TL, "float64", "inverse purity", "1",
     "purity of the true labels against the islands (1 when every true region lies "
     f"in one island) {_SCORED}"),
    ("baseline", "baseline", "str", "trivial partition", "1",
     "background_and_singletons: the background one island, every other column alone; "
     "finer_truth: the true labels of the level below"),
    ("baseline_ari", "baseline level", "float64", "adjusted Rand index, trivial baseline",
     "1", f"ari {_BASE}; a score says little unless it is above these"),
    ("baseline_purity", "baseline level", "float64", "purity, trivial baseline", "1",
     f"purity {_BASE}"),
    ("baseline_inverse_purity", "baseline level", "float64",
     "inverse purity, trivial baseline", "1", f"inverse_purity {_BASE}"),
    ("columns_scored", "level", "int64", "columns scored", "1",
     "columns with a known true label that the scores count (the background left out "
     "with objects_only)"),
    ("boundary_leak", _TL, "float64", "boundary leak", "1",
     "share of 4-neighbour pairs across a true boundary whose embeddings agree at the "
     "island threshold (0 = islands follow the boundaries, 1 = none holds)"),
    ("boundary_pairs", "level", "int64", "boundary pairs", "1",
     "4-neighbour pairs of scored columns across a true boundary"),
    ("cosine_contrast", _TL, "float64", "cosine contrast", "1",
     "mean cosine of pairs within a true label minus mean cosine of pairs across labels "
     "(threshold-free, in [-2, 2]; 1 = labels orthogonal and each one direction, 0 = no relation)"),
))
_outputs("convergence", (
    ("residual", _TL, "float64", "RMS change per step", "1",
     "RMS over (column, feature) of one step's change: the run's change(step, level) at "
     "every step when recorded, else E_t - E_prev divided by the steps between them (an "
     "average over the gap); NaN at the first step"),
    ("settled_step", "level", "int64", "settling step", "step",
     "first recorded step after which the residual stays <= tolerance; -1 if never"),
    ("rate", "level", "float64", "geometric convergence rate", "1",
     "exp(slope) of log residual vs step fitted over the tail of the longest stretch above "
     "the float floor; NaN if too few points or finite-time convergence"),
    ("tolerance", "level", "float64", "settling tolerance", "1",
     "rtol times the level's RMS embedding size at the last recorded step"),
    ("final_rms", "level", "float64", "final RMS embedding size", "1",
     "RMS over (column, feature) of the embedding at the last recorded step"),
    ("finite_time", "level", "bool", "converged in finitely many steps", "1",
     "True when the residual fell to the float floor in one recorded step from well above "
     "it (e.g. Hegselmann-Krause)"),
))
_outputs("critical", (
    # glomsim.sweep.critical: dims are the sweep's other axes (and level), not listed here
    ("critical", "", "float64", "critical value", "1",
     "first crossing of the seed-mean measure along the refined axis, linearly "
     "interpolated inside its final bracket; NaN where no crossing was bracketed"),
    ("ci_low", "", "float64", "critical value, interval low", "1",
     "lower bootstrap quantile over seeds (seeds resampled, the crossing recomputed)"),
    ("ci_high", "", "float64", "critical value, interval high", "1",
     "upper bootstrap quantile over seeds (seeds resampled, the crossing recomputed)"),
    ("bracket_low", "", "float64", "bracket low end", "1",
     "the lower end of the final bracket: an evaluated value of the refined axis"),
    ("bracket_high", "", "float64", "bracket high end", "1",
     "the upper end of the final bracket: an evaluated value of the refined axis"),
))
_outputs("stability", (
    ("spectral_radius", "", "float64", "spectral radius", "1",
     "largest |eigenvalue| of the step map's Jacobian at the last recorded state"),
    ("spectral_radius_transverse", "", "float64", "transverse spectral radius", "1",
     "largest |eigenvalue| once the neutral subspace (common shifts of islands) is "
     "factored out; < 1 means the islands are linearly stable; NaN if nothing is left"),
    ("neutral_dimension", "", "int64", "neutral dimension", "1",
     "dimension of the checked neutral subspace of common shifts of islands"),
    ("neutral_defect", "", "float64", "neutral defect", "1",
     "|J v - v| for unit v in the accepted neutral subspace (a random combination, or "
     "the largest singular value of J - I accepted on the candidates' span)"),
    ("island_count", "level", "int64", "islands", "1",
     "islands at the last state: columns agreeing within island_tol and linked through "
     "attention neighbourhoods"),
    ("fixed_point_residual", "", "float64", "fixed-point residual", "1",
     "RMS of G(z) - z over the state, relative to max(RMS of z, 1); the spectrum is a "
     "stability statement only when this is small"),
    ("eigenvalues_real", "mode", "float64", "eigenvalue (real part)", "1",
     "leading eigenvalues by modulus"),
    ("eigenvalues_imag", "mode", "float64", "eigenvalue (imaginary part)", "1",
     "leading eigenvalues by modulus"),
    ("transverse_eigenvalues_real", "mode", "float64", "transverse eigenvalue (real part)",
     "1", _TRANSVERSE),
    ("transverse_eigenvalues_imag", "mode", "float64",
     "transverse eigenvalue (imaginary part)", "1", _TRANSVERSE),
    ("mode", "mode", "int64", "eigenvalue rank by modulus", "1",
     "rank of an eigenvalue by modulus, 0 = largest"),
))
_outputs("perturbation_recovery", (
    ("distance", "time", "float64", "distance to the unperturbed run", "1",
     "RMS over (level, column, feature) of perturbed minus unperturbed state"),
    ("distance_level", _TL, "float64", "distance to the unperturbed run per level", "1",
     "RMS over (column, feature) of perturbed minus unperturbed state"),
    ("growth_factor", "time", "float64", "growth factor per step", "1",
     "distance_t / distance_{t-1}; NaN at the first step"),
    ("mean_growth_factor", "", "float64", "mean growth factor per step", "1",
     "(distance at the end / distance at the start) ** (1 / steps)"),
    ("time", "time", "int64", "step", "1", "step of the original run"),
))
_outputs("lyapunov", (
    ("exponent", "", "float64", "largest Lyapunov exponent", "1",
     "mean log stretch of a tangent vector per step (natural log)"),
    ("multiplier", "", "float64", "Lyapunov multiplier", "1",
     "exp(exponent): mean stretch per step"),
    ("local_exponent", "time", "float64", "log stretch", "1",
     "log of the tangent vector's stretch"),
    ("running_exponent", "time", "float64", "running exponent", "1",
     "mean log stretch so far"),
    ("time", "time", "int64", "step", "1", "the step computed"),
))
_outputs("energy", (
    ("log_energy", _TL, "float64", "log interaction energy", "1",
     "log sum over attended pairs (i, j) of exp(beta <x_i, x_j>), log-sum-exp"),
    ("energy", _TL, "float64", "interaction energy", "1",
     "sum over attended pairs (i, j) of exp(beta <x_i, x_j>); inf past float64"),
    ("pairs", "level", "int64", "attended pairs", "1", "number of (i, j) terms in the sum"),
    ("beta", "level", "float64", "inverse temperature", "1",
     "beta of the level's dot kernel"),
))
# fmt: on


def check_dataset(ds, names, func: str, *, optional_dims=()) -> None:
    """Refuse ``ds`` unless it is an ``xarray.Dataset`` holding every variable in ``names``
    with (at least) its registered dims: a TypeError or one-line ValueError naming
    ``func``, what is missing and what it needs.

    ``names`` may be qualified (``"islands.labels"`` is ``labels`` as
    :func:`analysis.islands` writes it). Dims in ``optional_dims`` may be missing (e.g.
    ``("time",)`` for a function that also takes ``ds.isel(time=-1)``).

    Examples
    --------
    >>> import xarray as xr
    >>> check_dataset(xr.Dataset(), ["embedding"], "islands")
    Traceback (most recent call last):
    ...
    ValueError: islands: ds has no embedding; it needs embedding (a Dataset from glomsim.simulate)
    """
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{func}: ds must be an xarray.Dataset, got {type(ds).__name__}")
    short = [n.rpartition(".")[2] for n in names]
    missing = [n for n in short if n not in ds.variables]
    if missing:
        raise ValueError(
            f"{func}: ds has no {', '.join(missing)}; it needs {', '.join(short)} "
            f"({_source(names)})"
        )
    for name, n in zip(names, short, strict=True):
        v = VARIABLES.get(name)
        if v is None:
            continue
        lacking = [d for d in v.dims if d not in ds[n].dims and d not in optional_dims]
        if lacking:
            raise ValueError(
                f"{func}: ds.{n} has dims {ds[n].dims}, without {', '.join(lacking)}; "
                f"it needs {v.dims} ({_source(names)})"
            )


def _source(names) -> str:
    """Where a Dataset with these variables comes from, for an error message."""
    functions = sorted({n.partition(".")[0] for n in names if "." in n})
    if functions:
        return "a Dataset from " + " or ".join(f"analysis.{f}" for f in functions)
    return "a Dataset from glomsim.simulate"
