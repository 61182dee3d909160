"""The entry points: simulate() and simulate_ensemble() check their arguments, prepare
the inputs and run through one internal ``_run`` on the engine (:mod:`glomsim._engine`)."""

from __future__ import annotations

import numpy as np

from ._validate import check_bool, check_int, check_real, not_allowed
from .config import GlomConfig
from .inputs import (
    ensemble_inputs,
    initial_state,
    prepare_init,  # noqa: F401 - its old home; it lives in glomsim.inputs
    prepare_inputs,
)
from .weights import GlomWeights, random_weights

__all__ = ["simulate", "simulate_ensemble", "SimulationDiverged"]


class SimulationDiverged(FloatingPointError):
    """The state became non-finite. ``step`` and ``level`` say where; ``partial`` holds the
    Dataset of what was kept of the steps computed before it."""

    def __init__(self, message, *, step, level, partial=None):
        super().__init__(message)
        self.step = step
        self.level = level
        self.partial = partial


def _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only):
    """Validate the run options shared by simulate and simulate_ensemble; the step count."""
    steps = check_int("steps", cfg.steps if steps is None else steps, lo=0)
    check_int("record_every", record_every, lo=1)
    if stop_when_settled is not None:
        check_real("stop_when_settled", stop_when_settled, lo=0, lo_open=True, finite=False)
    if check_bool("summaries_only", summaries_only) and record_every != 1:
        raise ValueError(
            f"record_every={record_every!r} with summaries_only=True: a summaries-only run "
            "keeps only the first and last states and summarises every step; leave "
            "record_every at 1"
        )
    return steps


def _progress(progress, steps):
    """The progress meter: None, the given object, or tqdm's bar for ``True``."""
    if not progress:
        return None
    if hasattr(progress, "update") and hasattr(progress, "close"):
        return progress
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="simulate", unit="step")


def _run(cfg, weights, state0, tokens, labels, steps, recorder, *, progress, rule=None,
         settle=None):  # fmt: skip
    """Run and build the Dataset: one simulation (``state0`` (L, N, D)) or an ensemble
    (``state0`` (M, L, N, D), ``weights`` shared or one per member)."""
    from ._engine import Diverged, integrate, planned

    members = state0.shape[0] if state0.ndim == 4 else 1
    meter = _progress(progress, steps)

    def dataset(states, times, summaries, **attrs):
        return _dataset(cfg, weights, states, times, tokens, labels, attrs, summaries,
                        member=state0.ndim == 4)  # fmt: skip

    try:
        with planned(cfg, weights, members) as plan:
            states, times, last, summaries = integrate(plan, state0, tokens, steps, recorder,
                                                       rule=rule, settle=settle,
                                                       progress=meter)  # fmt: skip
    except Diverged as e:
        where = "" if e.member is None else f", member {e.member}"
        partial = dataset(e.states, e.times, e.summaries, partial_until_step=e.times[-1])
        raise SimulationDiverged(
            f"the state became non-finite at step {e.step}, level {e.level}{where}; "
            f"{e.what} are in .partial "
            "(try smaller mixing weights, normalize='l2' or a smaller beta)",
            step=e.step,
            level=e.level,
            partial=partial,
        ) from None
    attrs = {"stopped_early_at": last} if last < steps else {}
    return dataset(states, times, summaries, **attrs)


def _dataset(cfg, weights, emb, times, tokens, labels, attrs, summaries, member):
    from .dataset import create_dataset

    if member:
        # (time, member, ...) -> (member, time, ...), and (step, member, level) likewise
        emb = np.moveaxis(emb, 1, 0)
        if summaries is not None:
            summaries = {k: np.moveaxis(v, 1, 0) for k, v in summaries.items()}
    return create_dataset(
        cfg, weights, emb, times, tokens, labels=labels, extra_attrs=attrs, summaries=summaries
    )


def _recorder(record_every, summaries_only):
    from ._engine import EveryKth, SummariesOnly

    return SummariesOnly() if summaries_only else EveryKth(int(record_every))


def simulate(
    cfg: GlomConfig,
    weights: GlomWeights | None = None,
    *,
    inputs=None,
    init=None,
    steps: int | None = None,
    record_every: int = 1,
    progress: bool = False,
    rule=None,
    stop_when_settled: float | None = None,
    summaries_only: bool = False,
):
    """Run the GLOM update and return the trajectory as an ``xarray.Dataset``.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights, optional
        Default ``random_weights(cfg, cfg.seed)``.
    inputs : array or scene, optional
        Tokens (columns, dim), an image (channels, height, width) for weights with a patch
        embedding, or a scene from :func:`glomsim.scenes.make_scene` (its labels are
        copied into the Dataset). Default zeros.
    init : array, optional
        Initial state (levels, columns, dim) (or (levels, dim) for all columns alike);
        default the weights' initial levels.
    steps : int, optional
        Default ``cfg.steps``.
    record_every : int
        Keep every k-th step (and always the last).
    progress : bool or progress meter
        True shows a progress bar (tqdm); or an object with ``update(n)`` and
        ``close()``, told of every step.
    rule : callable, optional
        ``rule(previous, bottom_up, top_down, attention, mix) -> new`` replaces the weighted
        average, per level, with (columns, dim) arrays; ``top_down`` is None at the top
        level and ``mix`` is the (4,) float64 weights (bottom_up, top_down, previous,
        attention) of that level and step. All contributions are evaluated; the config's
        normalisation is applied to what the rule returns.
    stop_when_settled : float, optional
        End early once the RMS change of every level in one step is below this.
    summaries_only : bool
        Keep the state only at step 0 and at the last step computed, and summarise every
        step instead: memory is O(steps x levels) plus a constant, never
        O(steps x columns x dim). The Dataset then holds ``embedding`` at those two steps
        and, on the ``step`` dimension (0 ... last), ``rms(step, level)`` (RMS over column
        and feature of E_t) and ``change(step, level)`` (RMS of E_t - E_{t-1}, the quantity
        ``stop_when_settled`` tests; NaN at step 0), both float64, and
        ``attrs["summaries_only"] = 1``. ``record_every`` must then be 1 (a ValueError
        otherwise). The final state, and so :func:`analysis.islands` on
        ``ds.isel(time=-1)``, is bit-identical to a full run's;
        :func:`analysis.convergence` reads ``change``.

    Returns
    -------
    xarray.Dataset
        ``embedding(time, level, column, feature)``, ``input(column, feature)``, coords
        ``y``/``x`` and the config, weights hash and seed in ``attrs``; with
        ``summaries_only``, ``rms(step, level)`` and ``change(step, level)`` as well.

    Raises
    ------
    SimulationDiverged
        When the state becomes non-finite; names the step and level and carries the
        steps computed so far in ``.partial`` (with ``summaries_only``: the summaries of
        every step before it and the state at step 0 and the step before it).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(4, 4), steps=5)
    >>> ds = gs.simulate(cfg, gs.random_weights(cfg, seed=0))
    >>> ds.embedding.shape
    (6, 3, 16, 8)
    >>> small = gs.simulate(cfg, gs.random_weights(cfg, seed=0), summaries_only=True)
    >>> small.embedding.shape, small.change.shape
    ((2, 3, 16, 8), (6, 3))
    >>> bool((small.embedding[-1] == ds.embedding[-1]).all())
    True
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    if weights is None:
        weights = random_weights(cfg, cfg.seed)
    if not isinstance(weights, GlomWeights):
        raise TypeError(f"weights must be GlomWeights or None, got {type(weights).__name__}")
    weights.check(cfg)
    steps = _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only)
    if rule is not None and not callable(rule):
        raise not_allowed(
            "rule",
            rule,
            "a callable rule(previous, bottom_up, top_down, attention, mix)",
            TypeError,
        )
    tokens, labels = prepare_inputs(cfg, weights, inputs)
    state0 = initial_state(cfg, weights, init)
    return _run(cfg, weights, state0, tokens, labels, steps,
                _recorder(record_every, summaries_only), progress=progress, rule=rule,
                settle=stop_when_settled)  # fmt: skip


def simulate_ensemble(
    cfg: GlomConfig,
    weights=None,
    *,
    members: int | None = None,
    inputs=None,
    init=None,
    steps: int | None = None,
    record_every: int = 1,
    progress: bool = False,
    stop_when_settled: float | None = None,
    summaries_only: bool = False,
):
    """Run many simulations of the same config in one batched call.

    Every member shares the config; each has its own inputs and initial state, and its own
    weights or weights shared by all. All members advance together through one parallel
    kernel per step, so an ensemble of small runs is not dominated by per-call overhead.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights or sequence of GlomWeights, optional
        One set shared by all members, or one per member. Default: one
        ``random_weights(cfg, cfg.seed)`` shared by all.
    members : int, optional
        Number of members; needed only when neither a weights sequence, ``inputs`` nor
        ``init`` says it.
    inputs : sequence or array, optional
        Per member: tokens (columns, dim), images or scenes; or one array
        (members, columns, dim). Default zeros.
    init : array, optional
        (members, levels, columns, dim); default each member's weights' initial levels.
    steps, record_every, progress, stop_when_settled, summaries_only
        As in :func:`simulate` (settling waits for every member).

    Returns
    -------
    xarray.Dataset
        ``embedding(member, time, level, column, feature)``, ``input(member, column,
        feature)`` and, for scenes, ``label(member, level, column)``; with
        ``summaries_only``, ``rms(member, step, level)`` and ``change(member, step, level)``
        as well. Member m equals ``simulate(cfg, weights[m], inputs=inputs[m],
        init=init[m])`` to round-off (float32) or exactly (float64 use the same arithmetic).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=5)
    >>> ds = gs.simulate_ensemble(cfg, members=8)
    >>> ds.embedding.dims
    ('member', 'time', 'level', 'column', 'feature')
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    M = _ensemble_size(weights, members, inputs, init)
    if weights is None:
        weights = random_weights(cfg, cfg.seed)
    wlist = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    for i, w in enumerate(wlist):
        if not isinstance(w, GlomWeights):
            raise TypeError(f"weights[{i}] must be GlomWeights, got {type(w).__name__}")
        w.check(cfg)
    if len({w.identity for w in wlist}) > 1:
        raise ValueError("weights: mix of identity and non-identity weights in one ensemble")
    steps = _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only)
    tokens, labels, state0 = ensemble_inputs(cfg, wlist, M, inputs, init)
    shared = wlist if len(wlist) > 1 else wlist[0]
    return _run(cfg, shared, state0, tokens, labels, steps,
                _recorder(record_every, summaries_only), progress=progress,
                settle=stop_when_settled)  # fmt: skip


def _ensemble_size(weights, members, inputs, init) -> int:
    """The member count, from whichever of the arguments says it (all must agree)."""
    sizes = {}
    if isinstance(weights, (list, tuple)):
        sizes["weights"] = len(weights)
    if inputs is not None and not (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
        sizes["inputs"] = len(inputs)
    if init is not None:
        sizes["init"] = len(init)
    if members is not None:
        sizes["members"] = check_int("members", members, lo=1)
    if not sizes:
        raise ValueError("members: give members=M, or per-member weights, inputs or init")
    if len(set(sizes.values())) > 1:
        raise ValueError(
            "members: the number of members differs between "
            + ", ".join(f"{k} ({v})" for k, v in sizes.items())
        )
    return next(iter(sizes.values()))
