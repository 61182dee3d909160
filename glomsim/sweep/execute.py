"""The sweep's driver: :func:`run` hands the spec's batches to Dask and collects them.

The client is the caller's (a ``distributed.Client`` or a scheduler address, used as it is
and never shut down here), ``"sync"`` (this process, no Dask), or by default an embedded
local cluster that is closed when the sweep ends. Results never pass through the driver:
each task writes its runs into the store (:mod:`glomsim.sweep.store`) itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .._validate import is_int, not_allowed, one_line
from . import store as st
from .runs import run_batch
from .spec import load_spec

__all__ = ["run"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _start_cluster(workers):
    from distributed import Client, LocalCluster

    n = _cores() if workers is None else workers
    if not is_int(n) or n < 1:
        raise not_allowed("workers", workers, "an integer >= 1 or None (all cores)")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # one numba thread per worker process: N workers use N cores, not N x cores
        env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
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
        can reach (shared on a cluster); URLs are not supported.
    client : distributed.Client, str or "sync", optional
        A client, or a scheduler address (``tcp://host:port``), used as it is and never
        shut down here. ``"sync"`` runs the batches one after another in this process (for
        debugging and small tests). Default: an embedded ``LocalCluster`` of ``workers``
        single-threaded worker processes, closed when done.
    resume : bool
        Skip runs already recorded in ``store`` (done, or failed unless
        ``retry_failed``). ``False`` starts over, replacing a previous sweep's store.
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
        ``embedding``. Attrs ``sweep_done``, ``sweep_failed``, ``sweep_failures`` (JSON
        reasons with counts), the spec as TOML and its hash.

    Raises
    ------
    ValueError
        A bad spec, or a store that holds something else (a different sweep, not a sweep).

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
    spec = load_spec(spec)
    store = str(Path(store).expanduser().resolve())
    layout = st.Layout(spec)
    t0 = time.perf_counter()
    status = st.prepare(store, spec, layout, resume=resume)
    todo = status == st.PENDING
    if retry_failed:
        todo |= status == st.FAILED
    n_before = int((~todo).sum())
    batches = []
    for batch in spec.batches():
        left = tuple(i for i in batch if todo.flat[i])
        if left:
            batches.append(left)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.n_runs, initial=n_before, desc=f"sweep {spec.name}", unit="run")
    try:
        if client == "sync":
            for batch in batches:
                run_batch(spec, store, batch)
                if bar is not None:
                    bar.update(len(batch))
        elif batches:
            _run_distributed(spec, store, layout, batches, client, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    st.finish(store, layout, seconds=time.perf_counter() - t0, skipped=n_before)
    return st.open_sweep(store)


def _connect(client, workers):
    """(client, the client to close, the cluster to close) for ``run``'s ``client``."""
    from distributed import Client

    if client is None:
        cluster, client = _start_cluster(workers)
        return client, client, cluster
    if isinstance(client, str):
        client = Client(client)
        return client, client, None
    if not hasattr(client, "submit"):
        raise TypeError(
            f"client={client!r} must be a distributed.Client, a scheduler address, 'sync' or None"
        )
    return client, None, None


def _run_distributed(spec, store, layout, batches, client, workers, bar):
    import uuid

    from distributed import as_completed

    client, own, cluster = _connect(client, workers)
    token = uuid.uuid4().hex[:8]
    futures = {}
    try:
        # the spec is shipped once and shared by every task
        spec_future = client.scatter(spec, broadcast=True)
        for k, batch in enumerate(batches):
            fut = client.submit(
                run_batch, spec_future, store, batch, key=f"glomsim-sweep-{token}-{k}", pure=False
            )
            futures[fut] = batch
        for fut in as_completed(futures):
            batch = futures.pop(fut)
            if fut.status == "error":
                _fail_task(store, layout, batch, fut.exception())
            if bar is not None:
                bar.update(len(batch))
            fut.release()
    except BaseException:
        for fut in list(futures):
            fut.cancel()
        raise
    finally:
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()


def _fail_task(store, layout, batch, exc) -> None:
    # the whole task died (e.g. its worker was killed): its unfinished runs fail
    msg = one_line(f"task failed: {type(exc).__name__}: {exc}")
    for index in batch:
        if st.read_status(store, layout, index) == st.PENDING:
            st.write_run(store, layout, index, None, msg)
