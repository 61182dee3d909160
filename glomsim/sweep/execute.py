"""The sweep's driver: :func:`run` hands the spec's batches to Dask and collects them.

The client is the caller's (a ``distributed.Client`` or a scheduler address, used as it is
and never shut down here), ``"sync"`` (this process, no Dask), or by default an embedded
local cluster that is closed when the sweep ends. Results never pass through the driver:
each task writes its runs into the store (:mod:`glomsim.sweep.store`) itself.

What the driver guarantees: one writer per store (it holds the store's lock from start
to end); tasks that carry the spec itself, so Dask reschedules a lost worker's tasks on the
workers that remain or join; runs still pending after that read back from the store and
resubmitted, up to ``_ROUNDS`` times; and an end that says what is left: a
:class:`~glomsim.sweep.SweepIncomplete` error while runs are pending, a
:class:`~glomsim.sweep.SweepRunsFailed` warning when runs failed.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from .._validate import is_int, not_allowed, one_line
from . import store as st
from ._errors import FIRST_FEW, SweepDamaged, SweepIncomplete, SweepRunsFailed
from ._lock import store_lock
from .refine import run_refined
from .runs import run_batch, run_task
from .spec import load_spec

#: Submissions of the runs still pending: the first, and resubmissions of runs whose
#: tasks were lost (Dask itself reschedules the tasks of a lost worker; this is for tasks
#: it gave up on, e.g. cancelled when their worker left).
_ROUNDS = 3
#: Seconds to wait for a scheduler given by address before saying it did not answer.
CONNECT_TIMEOUT = 5

__all__ = ["run"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


#: What a script that starts a sweep needs, said by both sides of the failure below.
_GUARD = (
    "every worker process of the embedded cluster imports the script that started the "
    "sweep, so a script must call glomsim.sweep.run under `if __name__ == '__main__':` "
    "(or pass client='sync')"
)


def _refuse_while_a_worker_imports_main() -> None:
    """Raise when ``run`` is called from the top level of the main script while a
    process started by multiprocessing (a Dask worker of the embedded cluster) runs that
    script as ``__mp_main__``: without the ``__main__`` guard, every worker would start
    the sweep again (and find its store locked by the first). A call from a function the
    worker runs later is left alone."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            where = frame.f_globals.get("__file__") or "the main script"
            raise RuntimeError(
                f"glomsim.sweep.run was called while a worker process imported {where}: {_GUARD}"
            )
        frame = frame.f_back


def _start_cluster(workers):
    from distributed import Client, LocalCluster

    n = _cores() if workers is None else workers
    if not is_int(n) or n < 1:
        raise not_allowed("workers", workers, "an integer >= 1 or None (all cores)")
    try:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # no dashboard, and the scheduler's small HTTP server on a free loopback port:
            # dashboard_address=None would still bind 8787, and warn when another sweep has it
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            # one numba thread per worker process: N workers use N cores, not N x cores
            env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
    except RuntimeError as exc:  # distributed: "Nanny failed to start."
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        hint = f"; {_GUARD}" if script else ""
        raise RuntimeError(
            f"the embedded Dask cluster's {n} worker process(es) did not start ({exc}){hint}"
        ) from exc
    return cluster, Client(cluster)


def run(
    spec,
    store,
    *,
    client=None,
    resume: bool = True,
    workers: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
):
    """Run a sweep on Dask and return its results, one Zarr store, as a Dataset.

    Parameters
    ----------
    spec : SweepSpec, dict or path
        Anything :func:`load_spec` takes; validated before any work.
    store : path
        The Zarr store (a folder, ``.zarr`` by convention) on a filesystem every worker
        can reach (shared on a cluster); URLs are not supported. The sweep holds the lock
        file ``<store>.lock`` while it runs: one sweep per store at a time.
    client : distributed.Client, str or "sync", optional
        A client, or a scheduler address (``tcp://host:port``), used as it is and never
        shut down here; an address that does not answer within ``CONNECT_TIMEOUT``
        seconds is refused before the store is touched. ``"sync"`` runs the batches one
        after another in this process (for debugging and small tests). Default: an
        embedded ``LocalCluster`` of ``workers`` single-threaded worker processes, closed
        when done.
    resume : bool
        Skip runs already recorded in ``store`` (done, or failed unless
        ``retry_failed``); runs found damaged are redone. ``False`` starts over,
        replacing a previous sweep's store.
    workers : int, optional
        Worker processes of the embedded cluster; default the number of cores.
    progress : bool
        A tqdm bar over runs as they finish.
    retry_failed : bool
        On resume, run again the runs that failed before.

    Returns
    -------
    xarray.Dataset
        Dims: the sweep axes (grid mode) or ``point`` (zip, random), ``seed``, ``member``
        (ensembles), ``level``; coords the axis values, so ``ds.sel(beta=2.0)`` works
        (through a multi-index on ``point`` in zip and random modes). Variables per run:
        ``status`` (0 pending, 1 done, 2 failed), ``error``, ``island_count``, ``ari``,
        ``residual``, ``settled_step``, ``rate``, optional ``spectral_radius``,
        ``embedding``. Attrs ``sweep_done``, ``sweep_failed``, ``sweep_pending``,
        ``sweep_failures`` (JSON reasons with counts), the spec as TOML and its hash.

    Raises
    ------
    ValueError
        A bad spec, a store that holds something else (a different sweep, not a sweep),
        or a scheduler address that does not answer.
    StoreLocked
        Another sweep is writing ``store`` (the message names it: host, pid, since).
    SweepIncomplete
        Runs are still pending at the end (their workers were lost and no worker took
        them up); ``.dataset`` is the store as it is. Running the sweep again resumes them.

    Warns
    -----
    SweepRunsFailed
        Some runs (or all) failed; their ``error`` says why.
    SweepDamaged
        On resume: recorded runs whose chunks were missing or cut short (they are redone).

    Examples
    --------
    >>> import tempfile, os
    >>> spec = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 4},
    ...         "axes": {"top_down_delay": [1, 2]}, "scene": False}
    >>> ds = run(spec, os.path.join(tempfile.mkdtemp(), "s.zarr"), client="sync",
    ...          progress=False)
    >>> ds.attrs["sweep_done"], ds.residual.dims
    (2, ('top_down_delay', 'seed', 'level'))
    """
    _refuse_while_a_worker_imports_main()
    spec = load_spec(spec)
    store = str(Path(store).expanduser().resolve())
    layout = st.Layout(spec)
    client, own = _connect(client)
    try:
        with store_lock(store):
            if spec.refine is not None:  # an adaptive sweep: the grid, then rounds
                opts = dict(
                    workers=workers, progress=progress, resume=resume, retry_failed=retry_failed
                )
                return run_refined(spec, store, client=client, options=opts, sweep=_sweep,
                                   start_cluster=_start_cluster)  # fmt: skip
            ds = _sweep(spec, store, layout, client, workers, progress, resume, retry_failed)
    finally:
        if own is not None:
            own.close()
    _report(spec, ds, store)
    return ds


def _sweep(spec, store, layout, client, workers, progress, resume, retry_failed):
    t0 = time.perf_counter()
    status, damaged = st.prepare(store, spec, layout, resume=resume)
    if damaged:
        first = "; ".join(
            f"{run_label(spec, i)}: {why}" for i, why in list(damaged.items())[:FIRST_FEW]
        )
        warnings.warn(
            SweepDamaged(
                f"sweep store {store!r}: {len(damaged)} recorded run(s) were damaged "
                f"({first}); they are redone"
            ),
            stacklevel=3,
        )
    todo = status == st.PENDING
    if retry_failed:
        todo |= status == st.FAILED
    n_before = int((~todo).sum())
    batches = _batches(spec, todo)
    if batches:
        _compile_first(spec, batches, progress)
    bar = None
    if progress and batches:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.n_runs, initial=n_before, desc=f"sweep {spec.name}", unit="run")
    try:
        if client == "sync":
            for batch in batches:
                run_batch(spec, store, batch, layout=layout)
                if bar is not None:
                    bar.update(len(batch))
        elif batches:
            _run_distributed(spec, store, layout, batches, client, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    # a resume with nothing left to do keeps the time of the invocation that did the work
    seconds = time.perf_counter() - t0 if batches else None
    st.finish(store, layout, seconds=seconds, skipped=n_before)
    return st.open_sweep(store, check=False)


def _compile_first(spec, batches, progress) -> None:
    """Compile the kernels the runs need here, once, before any worker starts (and before
    the progress bar, so that its ETA does not count compiling): workers then load them
    from numba's cache instead of each compiling the same. One two-step run per dtype and
    kernel variant (:func:`_variant`) the batches use, for the variants that are neither
    compiled nor cached."""
    from ..runtime import kernels_cold, say_compiling

    firsts = {}
    for index in (i for batch in batches for i in batch):
        try:  # an invalid combination of axis values is recorded as failed, not run
            cfg = spec.settings(spec.unravel(index)[0])["config"]
        except ValueError:
            continue
        firsts.setdefault((cfg.dtype, _variant(cfg)), index)
    cold = {variant for variant in {v for _, v in firsts} if kernels_cold(variant)}
    if not cold:
        return
    if progress:
        say_compiling()
    from ..simulation import simulate
    from .runs import input_args, prepare_run

    for (_, variant), index in firsts.items():
        if variant not in cold:
            continue
        cfg, w, scene, init = prepare_run(spec, index)
        given = input_args(spec, spec.unravel(index)[0], scene)
        try:  # compiled once it starts stepping; a run that diverges has compiled too
            simulate(cfg, w, init=init, steps=min(cfg.steps, 2),
                     record_every=spec.keep["record_every"], **given)  # fmt: skip
        except Exception:  # noqa: BLE001 - the run itself reports its failure later
            continue


def _variant(cfg) -> str:
    """The fused step's variant a config's runs use (:func:`glomsim._kernels.step.variant_of`
    from the config alone): "lean" with GELU nets and no contrastive level, else "full"
    (identity nets would need only "lean"; compiling "full" for them is merely slower)."""
    gelu = cfg.bottom_up_activation == "gelu" and cfg.top_down_activation == "gelu"
    contrastive = any(cfg.attention_at(lv).kernel == "contrastive" for lv in range(cfg.levels))
    return "lean" if gelu and not contrastive else "full"


def _batches(spec, todo) -> list[tuple[int, ...]]:
    """The spec's batches, each cut down to its runs in ``todo`` (flat over the runs)."""
    flat = todo.reshape(-1)
    out = []
    for batch in spec.batches():
        left = tuple(i for i in batch if flat[i])
        if left:
            out.append(left)
    return out


def run_label(spec, index: int) -> str:
    """``beta=2.0, radius=inf, seed=1`` for run ``index`` of ``spec``."""
    point, seed, member = spec.unravel(index)
    values = spec.points[point]
    parts = [f"{a.name}={a.label_of(values[a.name])}" for a in spec.axes]
    parts.append(f"seed={seed}")
    if member is not None:
        parts.append(f"member={member}")
    return ", ".join(parts)


def _first_runs(spec, indices) -> str:
    shown = "; ".join(run_label(spec, int(i)) for i in indices[:FIRST_FEW])
    return shown + ("; ..." if len(indices) > FIRST_FEW else "")


def _report(spec, ds, store) -> None:
    """Raise or warn when the sweep's end leaves runs pending or failed."""
    import numpy as np

    status = ds["status"].values.reshape(-1)
    pending = np.flatnonzero(status == st.PENDING)
    failed = np.flatnonzero(status == st.FAILED)
    n = spec.n_runs
    if len(pending):
        raise SweepIncomplete(
            f"sweep {spec.name!r}: {len(pending)} of {n} runs are still pending "
            f"({_first_runs(spec, pending)}) and {len(failed)} failed: their workers were "
            f"lost; run the sweep again on {store!r} to resume them",
            dataset=ds,
            pending=pending.tolist(),
            failed=failed.tolist(),
        )
    if len(failed):
        errors = ds["error"].values.reshape(-1)
        first = f"{run_label(spec, int(failed[0]))}: {errors[failed[0]]}"
        what = (
            f"every run ({n}) failed" if len(failed) == n else f"{len(failed)} of {n} runs failed"
        )
        warnings.warn(
            SweepRunsFailed(
                f"sweep {spec.name!r}: {what}, e.g. {one_line(first, 300)}; the store's "
                "error variable says why for each (retry_failed=True, --retry-failed, "
                "runs them again)"
            ),
            stacklevel=3,
        )


def _connect(client):
    """(the client to use, the client to close here) for ``run``'s ``client``; an address
    is connected to now, so that one that does not answer fails before any work."""
    if client is None or client == "sync":
        return client, None
    if isinstance(client, str):
        from distributed import Client

        try:
            own = Client(client, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(
                f"client={client!r}: no Dask scheduler answered there within "
                f"{CONNECT_TIMEOUT} s ({type(exc).__name__}); start one (dask scheduler) "
                "or check the address"
            ) from None
        return own, own
    if not hasattr(client, "submit"):
        raise TypeError(
            f"client={client!r} must be a distributed.Client, a scheduler address, 'sync' or None"
        )
    return client, None


def _run_distributed(spec, store, layout, batches, client, workers, bar):
    cluster = None
    if client is None:
        cluster, client = _start_cluster(workers)
    try:
        text, digest = spec.to_toml(), spec.content_hash()
        for _ in range(_ROUNDS):
            _submit(client, (text, digest, store), layout, batches, bar)
            # what is still pending (a task lost, not merely failed) goes round again
            status = st.read_all_status(store, layout).reshape(-1)
            batches = [b for b in batches if any(status[i] == st.PENDING for i in b)]
            batches = [tuple(i for i in b if status[i] == st.PENDING) for b in batches]
            if not batches:
                break
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def _submit(client, args, layout, batches, bar) -> None:
    """One round: every batch as one task; wait for all of them."""
    import uuid

    from distributed import as_completed

    text, digest, store = args
    token = uuid.uuid4().hex[:8]
    futures = {}
    try:
        for k, batch in enumerate(batches):
            fut = client.submit(
                run_task, text, digest, store, batch, key=f"glomsim-sweep-{token}-{k}", pure=False
            )
            futures[fut] = batch
        for fut in as_completed(futures):
            batch = futures.pop(fut)
            done = 0
            if fut.status == "finished":
                done = len(fut.result())
            elif fut.status == "error":
                done = _fail_task(store, layout, batch, fut.exception())
            # anything else (cancelled, lost) leaves its runs pending for the next round
            if bar is not None and done:
                bar.update(done)
            fut.release()
    except BaseException:
        for fut in list(futures):
            fut.cancel()
        raise


def _fail_task(store, layout, batch, exc) -> int:
    """The whole task raised (e.g. its runs killed their workers again and again, so Dask
    gave up: KilledWorker): its unfinished runs fail, with why; how many."""
    msg = one_line(f"task failed: {type(exc).__name__}: {exc}")
    n = 0
    for index in batch:
        if st.read_status(store, layout, index) == st.PENDING:
            st.write_run(store, layout, index, None, msg)
            n += 1
    return n
