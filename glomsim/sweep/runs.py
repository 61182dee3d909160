"""The work of a sweep's workers: prepare a run, simulate it, measure it, write it.

Everything a run needs comes from its spec and its index, never from scheduling, so a run
redone on resume or on another worker is bit-identical. Measuring is the one place in the
simulation core, beside :mod:`glomsim.cli`, that imports :mod:`analysis` (inside
:func:`measure`, so that importing the sweep does not).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .._validate import one_line
from . import store as st
from ._fields import split_movie, start_state
from .spec import SweepSpec

__all__ = [
    "prepare_run",
    "input_args",
    "measure",
    "simulate_run",
    "simulate_runs",
    "run_batch",
    "run_task",
]


def prepare_run(spec: SweepSpec, index: int):
    """(config, weights, scene, init) of run ``index``: from the spec and index alone.

    ``scene`` is the run's :class:`~glomsim.scenes.Scene`, or its
    :class:`~glomsim.scenes.Movie` when the spec has a ``[movie]``, or None."""
    from ..inputs import prepare_init
    from ..weights import identity_weights, random_weights

    point, seed, member = spec.unravel(index)
    s = spec.settings(point)
    cfg = s["config"].replace(seed=seed)
    wkw = {k: v for k, v in s["weights"].items() if k != "kind"}
    if s["weights"]["kind"] == "identity":
        w = identity_weights(cfg)
    elif member is not None and spec.member_varies == "weights":
        w = random_weights(cfg, np.random.default_rng([seed, member, 0]), **wkw)
    else:
        w = random_weights(cfg, seed, **wkw)
    scene = None
    shape = dict(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=seed)
    if s["scene"] is not None:
        from ..scenes import make_scene

        scene = make_scene(**shape, **s["scene"])
    elif s["movie"] is not None:
        from ..scenes import make_movie

        scene = make_movie(**shape, **split_movie(s["movie"])[0])
    start, noise = s["init"]["start"], s["init"]["noise"]
    if start == "weights":
        init = prepare_init(cfg, w, None).astype(np.float64)
    elif start == "tokens":
        # a movie's first frame: the tokens that step 1 reads
        tokens = scene.tokens if s["movie"] is None else scene.tokens[0]
        init = np.repeat(np.asarray(tokens, dtype=np.float64)[None], cfg.levels, axis=0)
    elif start == "zeros":
        init = np.zeros((cfg.levels, cfg.n_columns, cfg.dim))
    else:  # a start file, [init] start = "path.npy"
        init = start_state(s["init"], cfg)
    if noise > 0:
        rng = np.random.default_rng([seed, 0 if member is None else member, 1])
        init = init + noise * rng.standard_normal(init.shape)
    return cfg, w, scene, init


def input_args(spec: SweepSpec, point: int, scenes) -> dict:
    """The input keywords of ``simulate`` (``simulate_ensemble``) for runs at ``point``:
    ``inputs=`` a scene (or None), or ``frames=`` a movie with its ``steps_per_frame``.
    ``scenes``: what :func:`prepare_run` made (a list of them for an ensemble)."""
    movie = spec.settings(point)["movie"]
    if movie is None:
        return {"inputs": scenes}
    return {"frames": scenes, "steps_per_frame": split_movie(movie)[1]}


def last_frame(ds):
    """A frames run as the measures read it: ``input`` and ``label`` of the frame that the
    last recorded step read (``frame`` at ``time=-1``), so that ``label(level, column)``,
    the ARIs and the linearisation are those of a static run on that frame. A static run
    is returned as it is."""
    if "frame" not in ds.coords:
        return ds
    f = int(ds["frame"].values[-1])
    out = ds.drop_vars("frame")
    for name in ("input", "label"):
        if name in ds.data_vars:
            out[name] = ds[name].variable.isel(frame=f)
    return out


def measure(spec: SweepSpec, cfg, w, ds, scene) -> dict:
    """The kept summaries (and trajectories) of one simulated run.

    With a scene: ``ari`` over every column, ``ari_objects`` without the background (which
    covers about half the grid and inflates the first) and the ``boundary_leak``, all at
    the last recorded step (:func:`analysis.agreement`). With a movie, the labels are those
    of the frame that the last recorded step read (:func:`last_frame`); so is the kept
    ``label``.
    """
    import analysis as an

    keep = spec.keep
    ds = last_frame(ds)
    isl = an.islands(ds, time=-1, **keep["islands"])
    out = {"island_count": isl["count"].values[-1].astype(np.int64)}
    if scene is not None:
        score = an.agreement(ds, islands=isl)
        out["ari"] = score["ari"].values[-1].astype(np.float64)
        out["boundary_leak"] = score["boundary_leak"].values[-1].astype(np.float64)
        objects = an.agreement(ds, islands=isl, objects_only=True)
        out["ari_objects"] = objects["ari"].values[-1].astype(np.float64)
    conv = an.convergence(ds)
    out["residual"] = conv["residual"].values[-1].astype(np.float64)
    out["settled_step"] = conv["settled_step"].values.astype(np.int64)
    out["rate"] = conv["rate"].values.astype(np.float64)
    if keep["spectral_radius"]:
        stab = an.stability(cfg, w, ds)
        out["spectral_radius"] = np.float64(stab["spectral_radius"].values)
        out["spectral_radius_transverse"] = np.float64(stab["spectral_radius_transverse"].values)
    if keep["trajectories"]:
        out["embedding"] = ds["embedding"].values
        if scene is not None:
            out["label"] = np.asarray(ds["label"].values, dtype=np.int64)
    return out


def simulate_run(spec: SweepSpec, index: int) -> dict:
    """Simulate run ``index`` and measure it: arrays keyed by result variable name.

    Deterministic: depends on the spec and ``index`` alone, never on scheduling.

    Examples
    --------
    >>> from glomsim.sweep import load_spec
    >>> spec = load_spec({"base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
    ...                   "scene": False})
    >>> sorted(simulate_run(spec, 0))
    ['island_count', 'rate', 'residual', 'settled_step']
    """
    from ..simulation import simulate

    cfg, w, scene, init = prepare_run(spec, index)
    given = input_args(spec, spec.unravel(index)[0], scene)
    ds = simulate(cfg, w, init=init, record_every=spec.keep["record_every"], **given)
    return measure(spec, cfg, w, ds, scene)


def simulate_runs(spec: SweepSpec, indices) -> dict:
    """Runs that share one sweep point (they differ by seed or member only), simulated as
    one batched ensemble; {index: values}. Each member's trajectory is bit-identical to
    its own :func:`simulate_run`, so batching never changes a result."""
    from ..simulation import simulate_ensemble

    prepared = [prepare_run(spec, i) for i in indices]
    cfg = prepared[0][0]
    scenes = [p[2] for p in prepared]
    given = input_args(spec, spec.unravel(indices[0])[0], None if scenes[0] is None else scenes)
    ens = simulate_ensemble(
        cfg,
        [p[1] for p in prepared],
        init=np.stack([p[3] for p in prepared]),
        record_every=spec.keep["record_every"],
        **given,
    )
    out = {}
    for m, (index, (cfg_m, w, scene, _)) in enumerate(zip(indices, prepared, strict=True)):
        ds = ens.isel(member=m, drop=True)
        ds.attrs["glomsim_config"] = cfg_m.to_json()
        ds.attrs["weights_hash"] = w.content_hash()
        out[index] = measure(spec, cfg_m, w, ds, scene)
    return out


def _quietly(func, *args):
    # a run's result must not depend on the caller's warning filters (pytest turns some
    # into errors; workers do not): floating-point trouble is judged by simulate's
    # finite check
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args)


def _reason(exc: Exception) -> str:
    """A failed run's ``error``: one line. A divergence is told by its step and level, as
    the sweep keeps none of its steps (simulate's message points at ``.partial``)."""
    from ..simulation import SimulationDiverged

    if isinstance(exc, SimulationDiverged):
        return (
            f"SimulationDiverged: the state became non-finite at step {exc.step}, level "
            f"{exc.level} (try smaller mixing weights, normalize='l2' or a smaller beta)"
        )
    return one_line(f"{type(exc).__name__}: {exc}")


def _run_group(spec: SweepSpec, store: str, layout, group: list[int]) -> list:
    """Runs of one sweep point: one ensemble, or one by one when the ensemble fails, so
    that each failure is attributed to its own run."""
    batched = {}
    if len(group) > 1:
        try:
            batched = _quietly(simulate_runs, spec, group)
        except Exception:  # noqa: BLE001 - redo one by one to attribute the error
            batched = {}
    results = []
    for index in group:
        if index in batched:
            values, error = batched[index], ""
        else:
            try:
                values, error = _quietly(simulate_run, spec, index), ""
            except Exception as exc:  # noqa: BLE001 - every failure is a result
                values, error = None, _reason(exc)
        status = st.write_run(store, layout, index, values, error)
        results.append((int(index), status, error))
    return results


def run_batch(spec: SweepSpec, store: str, indices, *, layout=None) -> list[tuple[int, int, str]]:
    """Run and write the runs ``indices`` that are not done yet; the task of one batch.

    Each run's data is written to its own region, then its status: a run killed
    between the two stays pending and is redone, identically, on resume. A run that
    raises is recorded as failed with its error; the batch goes on.

    Returns
    -------
    list of (index, status, error)
        status 1 = done, 2 = failed (runs already done are skipped and not listed;
        failed ones are run again, as ``run(..., retry_failed=True)`` asks).
    """
    import numba

    layout = st.Layout(spec) if layout is None else layout
    threads = numba.get_num_threads()
    # one numba thread per task: the sweep is parallel over runs, and numba's threads
    # beside other workers' made small runs 50x slower on 2 cores (set_num_threads is
    # per calling thread, so this does not leak into other tasks)
    numba.set_num_threads(1)
    results = []
    try:
        pending = [int(i) for i in indices if st.read_status(store, layout, i) != st.DONE]
        # runs at the same sweep point share a config: simulate them as one ensemble
        groups: dict = {}
        for index in pending:
            groups.setdefault(spec.unravel(index)[0], []).append(index)
        for group in groups.values():
            results.extend(_run_group(spec, store, layout, group))
    finally:
        numba.set_num_threads(threads)
    return results


@functools.lru_cache(maxsize=4)
def _spec_of(text: str, content_hash: str):
    """The spec and layout that the TOML ``text`` describes, once per worker process."""
    import tomllib

    from .spec import load_spec

    spec = load_spec(tomllib.loads(text))
    if spec.content_hash() != content_hash:
        raise RuntimeError(
            "the sweep spec changed on its way to the worker (its content hash differs); "
            "is the worker's glomsim the driver's version?"
        )
    return spec, st.Layout(spec)


def run_task(spec_toml: str, content_hash: str, store: str, indices):
    """The Dask task of one batch: :func:`run_batch` with the spec given as its TOML.

    Every task carries the spec's text itself (a few kB), never a reference to data held
    by a worker, so a task whose worker is lost is rescheduled on any other worker with
    nothing missing; each worker parses a spec once.
    """
    spec, layout = _spec_of(spec_toml, content_hash)
    return run_batch(spec, store, indices, layout=layout)
