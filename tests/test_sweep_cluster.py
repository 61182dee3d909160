"""Sweeps on real Dask processes: a separate scheduler and worker, and a SIGKILL mid-sweep.

Both checks compare with the embedded default (``run`` with no client), computed once.
Every process is started here, on loopback addresses only, and killed by its own id (or
its own process group) in a ``finally``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from glomsim.sweep import load_spec, run

from .processes import group_gone, kill_group, wait_for

pytestmark = pytest.mark.slow

#: 12 runs of about a fifth of a second each on one core: slow enough to kill partway.
SPEC = {
    "sweep": {"name": "cluster", "seeds": 2, "batch_size": 1},
    "base": {"levels": 3, "dim": 8, "grid": [10, 10], "steps": 120, "normalize": "l2"},
    "aliases": {"beta": "attention.beta", "radius": "attention[2].radius"},
    "axes": {"beta": [1.0, 6.0], "radius": [1.5, 3.0, "inf"]},
    "scene": {"n_objects": 2, "parts_per_object": 2, "textures_per_part": 1},
    "keep": {"islands": {"threshold": 0.98}},
}


def data(ds):
    return ds.drop_attrs(deep=False).load()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    path = tmp_path_factory.mktemp("embedded") / "ref.zarr"
    ds = run(SPEC, path, progress=False)
    assert ds.attrs["sweep_done"] == 12
    return data(ds)


def test_separate_scheduler_and_worker_give_the_embedded_result(embedded, tmp_path):
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "worker")]  # noqa: SIM115
    scheduler = worker = None
    try:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
            stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(sched_file.exists, 60, "the scheduler file")
        wait_for(lambda: json.loads(sched_file.read_text() or "{}").get("address"), 10, "address")
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
             str(sched_file), "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            ds = run(SPEC, tmp_path / "cluster.zarr", client=address, progress=False)
            assert ds.attrs["sweep_done"] == 12 and ds.attrs["sweep_failed"] == 0
            xr.testing.assert_identical(data(ds), embedded)
            # the scheduler and its worker were used as they are, not shut down
            assert len(client.scheduler_info()["workers"]) == 1
            # a Client object works too, and stays open
            again = run(SPEC, tmp_path / "client.zarr", client=client, progress=False)
            xr.testing.assert_identical(data(again), embedded)
            assert client.status == "running"
    finally:
        kill_group(worker)
        kill_group(scheduler)
        for f in logs:
            f.close()


def test_sigkill_mid_sweep_then_resume_loses_and_duplicates_nothing(embedded, tmp_path):
    import zarr

    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(load_spec(SPEC).to_toml())
    store = tmp_path / "killed.zarr"
    n = 12

    def status():
        try:
            if not zarr.open_group(str(store), mode="r").attrs.get("sweep_ready"):
                return None
            return np.asarray(zarr.open_array(str(store), path="status", mode="r")[...])
        except Exception:  # noqa: BLE001 - the store is being created
            return None

    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glomsim.sweep", str(spec_path), "-o", str(store),
             "--workers", "1", "-q"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: (s := status()) is not None and (s == 1).sum() >= 2, 180, "2 done runs")
    finally:
        # the driver, its nanny and its worker process: all in the group of the driver
        kill_group(proc)
        log.close()
    # the group's processes are gone, so nothing writes any more
    wait_for(lambda: group_gone(proc.pid), 10, "the killed processes to exit")

    before = status()
    n_done = int((before == 1).sum())
    assert 2 <= n_done < n, f"killed too late to test anything: {n_done} of {n} done"
    assert not (before == 2).any()

    resumed = run(SPEC, store, client="sync", progress=False)
    assert resumed.attrs["sweep_skipped"] == n_done  # the runs done before were not redone
    assert resumed.attrs["sweep_done"] == n and resumed.attrs["sweep_pending"] == 0
    assert (resumed.status == 1).all() and (resumed.error == "").all()
    assert not list(store.rglob("*.partial"))
    xr.testing.assert_identical(data(resumed), embedded)
