"""The entry points: simulate() and simulate_ensemble() check their arguments, prepare
the inputs and run through one internal ``_run`` on the engine (:mod:`glomsim._engine`)."""

from __future__ import annotations

import numpy as np

from ._validate import check_bool, check_int, check_real, not_allowed
from .config import GlomConfig
from .inputs import (
    Start,
    continuation,
    ensemble_frames,
    ensemble_inputs,
    frames_of_times,
    fresh_history,
    initial_state,
    is_dataset,
    prepare_frames,
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


def _run(cfg, weights, start, tokens, labels, steps, recorder, *, progress, rule=None,
         settle=None, per_frame=None):  # fmt: skip
    """Run and build the Dataset: one simulation (``start.state0`` (L, N, D)) or an
    ensemble ((M, L, N, D), ``weights`` shared or one per member). ``tokens`` as the
    Dataset holds them: (N, D) or (M, N, D), or with ``per_frame`` (steps per frame)
    frames (F, N, D) or (M, F, N, D)."""
    from ._engine import Diverged, integrate, planned

    member = start.state0.ndim == 4
    meter = _progress(progress, steps)
    # the engine takes frames first: (F, N, D) or (F, M, N, D), one frame when static
    if per_frame is None:
        frames = tokens[None]
    else:
        frames = np.ascontiguousarray(np.moveaxis(tokens, 1, 0)) if member else tokens

    def dataset(kept, **attrs):
        if start.t0 > 0:
            attrs["continued_from_step"] = start.t0
        return _dataset(cfg, weights, kept, tokens, labels, attrs, member, per_frame)

    try:
        with planned(cfg, weights, start.state0.shape[0] if member else 1) as plan:
            kept = integrate(plan, start, frames, steps, recorder, per_frame=per_frame or 1,
                             rule=rule, settle=settle, progress=meter)  # fmt: skip
    except Diverged as e:
        where = "" if e.member is None else f", member {e.member}"
        partial = dataset(e.kept, partial_until_step=e.kept.times[-1])
        raise SimulationDiverged(
            f"the state became non-finite at step {e.step}, level {e.level}{where}; "
            f"{e.what} are in .partial "
            "(try smaller mixing weights, normalize='l2' or a smaller beta)",
            step=e.step,
            level=e.level,
            partial=partial,
        ) from None
    attrs = {"stopped_early_at": start.t0 + kept.last} if kept.last < steps else {}
    return dataset(kept, **attrs)


def _dataset(cfg, weights, kept, tokens, labels, attrs, member, per_frame):
    from .dataset import create_dataset

    emb, summaries, history = kept.states, kept.summaries, kept.history
    if member:
        # (time, member, ...) -> (member, time, ...), and (step, member, level) likewise
        emb = np.moveaxis(emb, 1, 0)
        summaries = {k: np.moveaxis(v, 1, 0) for k, v in summaries.items()}
        history = None if history is None else np.moveaxis(history, 1, 0)
    frame = None
    if per_frame is not None:
        frame = frames_of_times(kept.times, per_frame, tokens.shape[-3])
        attrs["steps_per_frame"] = per_frame
    return create_dataset(cfg, weights, emb, kept.times, tokens, labels=labels,
                          extra_attrs=attrs, summaries=summaries, frame=frame,
                          delay_history=history, summaries_only=kept.summaries_only)  # fmt: skip


def _level0(cfg, weights, inputs, frames, steps_per_frame, start=None):
    """(tokens, labels, steps per frame or None) of a run: its static input or its
    frames; a continued run (``start``) takes the Dataset's unless others are given."""
    k = _steps_per_frame(inputs, frames, steps_per_frame)
    if frames is not None:
        return (*prepare_frames(cfg, weights, frames), k)
    if inputs is None and start is not None and start.inputs is not None:
        return start.inputs, start.labels, start.steps_per_frame
    return (*prepare_inputs(cfg, weights, inputs), None)


def _steps_per_frame(inputs, frames, steps_per_frame):
    """The steps per frame of a run with frames (default 1), None without; refuses
    inputs and frames together, and steps_per_frame without frames."""
    if inputs is not None and frames is not None:
        raise ValueError("inputs and frames: give one of them (inputs: a static input, "
                         "frames: a sequence of them), not both")  # fmt: skip
    if frames is None:
        if steps_per_frame is not None:
            raise ValueError(f"steps_per_frame={steps_per_frame!r} without frames: it says "
                             "how many steps each frame is shown; pass frames too")  # fmt: skip
        return None
    return check_int("steps_per_frame", 1 if steps_per_frame is None else steps_per_frame, lo=1)


def _start(cfg, weights, init) -> Start:
    """Where a run starts: a continued Dataset's last state, or ``init`` at step 0."""
    if is_dataset(init):
        return continuation(cfg, weights, init)
    state0 = initial_state(cfg, weights, init)
    return Start(state0, fresh_history(state0, cfg.top_down_delay))


def _recorder(record_every, summaries_only):
    from ._engine import EveryKth, SummariesOnly

    return SummariesOnly() if summaries_only else EveryKth(int(record_every))


def simulate(
    cfg: GlomConfig,
    weights: GlomWeights | None = None,
    *,
    inputs=None,
    frames=None,
    steps_per_frame: int | None = None,
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
        copied into the Dataset). Default zeros. Not with ``frames``.
    frames : array or movie, optional
        A sequence of inputs: tokens (frames, columns, dim), images (frames, channels,
        height, width) for weights with a patch embedding, or a movie (an object with
        ``tokens`` (frames, columns, dim) and ``labels`` (frames, levels, columns), e.g.
        from :func:`glomsim.scenes.make_movie`; its labels are copied into the Dataset).
        Step t >= 1 feeds level 0 frame ``min((t - 1) // steps_per_frame, frames - 1)``,
        and level 0's bottom-up net runs again on every new frame.
    steps_per_frame : int, optional
        Steps each frame is shown (default 1); only with ``frames``.
    init : array or Dataset, optional
        Initial state (levels, columns, dim) (or (levels, dim) for all columns alike);
        default the weights' initial levels. Or a Dataset from :func:`simulate` of the same
        config and weights (a ValueError names what differs): the run continues it from
        its last state, with the states the top-down delay needs before it (the records,
        or the ``delay_history`` that thinned and summaries-only runs keep), its inputs
        or frames unless others are given, and ``time`` going on from its last step;
        ``steps`` more steps then equal the rest of one longer run bit for bit.
    steps : int, optional
        Default ``cfg.steps``; for a continued run, the steps added.
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
        ``embedding(time, level, column, feature)``, ``input(column, feature)``,
        ``change(step, level)`` (the RMS change of every step, thinned runs included),
        coords ``y``/``x`` and the config, weights hash and seed in ``attrs``; with
        ``summaries_only``, ``rms(step, level)`` as well. With ``frames``:
        ``input(frame, column, feature)``, the coordinate ``frame(time)`` (the frame the
        recorded step read, 0 at step 0) and ``attrs["steps_per_frame"]``. A thinned or
        summaries-only run with ``top_down_delay`` d > 1 keeps ``delay_history(lag, level,
        column, feature)``: the states lag = 1 .. d-1 steps before the last, which
        continuing it needs.

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
    >>> more = gs.simulate(cfg, gs.random_weights(cfg, seed=0), init=ds, steps=3)
    >>> [int(t) for t in more.time]
    [5, 6, 7, 8]
    >>> movie = np.random.default_rng(0).normal(size=(3, 16, 8))  # 3 frames
    >>> seen = gs.simulate(cfg, gs.random_weights(cfg, seed=0), frames=movie, steps_per_frame=2)
    >>> seen.input.dims, [int(f) for f in seen.frame]
    (('frame', 'column', 'feature'), [0, 0, 0, 1, 1, 2])
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
    start = _start(cfg, weights, init)
    tokens, labels, per_frame = _level0(cfg, weights, inputs, frames, steps_per_frame, start)
    return _run(cfg, weights, start, tokens, labels, steps,
                _recorder(record_every, summaries_only), progress=progress, rule=rule,
                settle=stop_when_settled, per_frame=per_frame)  # fmt: skip


def simulate_ensemble(
    cfg: GlomConfig,
    weights=None,
    *,
    members: int | None = None,
    inputs=None,
    frames=None,
    steps_per_frame: int | None = None,
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
    frames : sequence or array, optional
        Per member: frames as :func:`simulate` takes them (tokens, images or movies, the
        same number of frames for every member); or one array (members, frames,
        columns, dim). Not with ``inputs``.
    steps_per_frame : int, optional
        As in :func:`simulate`.
    init : array, optional
        (members, levels, columns, dim); default each member's weights' initial levels.
    steps, record_every, progress, stop_when_settled, summaries_only
        As in :func:`simulate` (settling waits for every member).

    Returns
    -------
    xarray.Dataset
        ``embedding(member, time, level, column, feature)``, ``input(member, column,
        feature)`` (``input(member, frame, column, feature)`` with frames),
        ``change(member, step, level)`` and, for scenes, ``label(member, level, column)``
        (movies: ``label(member, frame, level, column)``); with ``summaries_only``,
        ``rms(member, step, level)`` as well. Member m equals ``simulate(cfg, weights[m], inputs=inputs[m],
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
    if is_dataset(init):
        raise ValueError("init: a Dataset continues one run; continue each member with "
                         "simulate(cfg, w, init=ds.isel(member=m))")  # fmt: skip
    M = _ensemble_size(weights, members, frames if inputs is None else inputs, init)
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
    per_frame = _steps_per_frame(inputs, frames, steps_per_frame)
    tokens, labels, state0 = ensemble_inputs(cfg, wlist, M, inputs, init)
    if frames is not None:
        tokens, labels = ensemble_frames(cfg, wlist, M, frames)
    shared = wlist if len(wlist) > 1 else wlist[0]
    start = Start(state0, fresh_history(state0, cfg.top_down_delay))
    return _run(cfg, shared, start, tokens, labels, steps,
                _recorder(record_every, summaries_only), progress=progress,
                settle=stop_when_settled, per_frame=per_frame)  # fmt: skip


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
