"""Sweeps that lose their Dask worker mid-way, on real processes on 127.0.0.1.

A separate ``dask scheduler`` and a ``dask worker`` (no nanny, so a SIGKILL loses it for
good): the worker is killed mid-sweep, a new one joins, and the sweep finishes every run,
identical to an uninterrupted one. The embedded cluster with ``--workers 1``: its worker
process is killed and the sweep still finishes every run. Every process is started in its
own session by the ``procs`` fixture, which SIGKILLs each group at teardown.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from glomsim.sweep import load_spec, open_sweep, run

from .processes import kill_group, session_processes, wait_for

pytestmark = pytest.mark.slow

#: 12 runs of about a third of a second each: slow enough to kill a worker mid-way.
SPEC = {
    "sweep": {"name": "lost", "seeds": 3, "batch_size": 1},
    "base": {"levels": 3, "dim": 8, "grid": [10, 10], "steps": 150, "normalize": "l2"},
    "aliases": {"beta": "attention.beta"},
    "axes": {"beta": [0.5, 2.0, 4.0, 8.0]},
    "scene": {"n_objects": 1, "parts_per_object": 2, "textures_per_part": 1},
}


def data(ds):
    return ds.drop_attrs(deep=False).load()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ds = run(SPEC, tmp_path_factory.mktemp("ref") / "ref.zarr", client="sync", progress=False)
    assert ds.attrs["sweep_done"] == 12
    return data(ds)


@pytest.fixture
def procs():
    yield from session_processes()


def _done(store) -> int:
    try:
        return int(
            (np.asarray(zarr.open_array(str(store), path="status", mode="r")[...]) == 1).sum()
        )
    except Exception:  # noqa: BLE001 - not made yet
        return 0


def _sweep_cmd(tmp_path, store, *extra):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(load_spec(SPEC).to_toml())
    return [sys.executable, "-m", "glomsim.sweep", str(spec_path), "-o", str(store), "-q",
            *extra]  # fmt: skip


def _worker_cmd(sched_file):
    return [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
            str(sched_file), "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
            "--no-nanny"]  # fmt: skip


def test_a_worker_killed_mid_sweep_and_a_new_one_finish_every_run(reference, tmp_path, procs):
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")  # noqa: SIM115
    try:
        procs([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        wait_for(lambda: sched_file.exists() and sched_file.read_text(), 60, "the scheduler")
        wait_for(lambda: json.loads(sched_file.read_text()).get("address"), 10, "its address")
        address = json.loads(sched_file.read_text())["address"]
        worker = procs(_worker_cmd(sched_file), stdout=log, stderr=subprocess.STDOUT)
        store = tmp_path / "lost.zarr"
        driver = procs(_sweep_cmd(tmp_path, store, "--scheduler", address),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for(lambda: _done(store) >= 2, 180, "2 done runs")
        kill_group(worker)
        killed_at = _done(store)
        assert killed_at < 12, "killed too late to test anything"
        procs(_worker_cmd(sched_file), stdout=log, stderr=subprocess.STDOUT)
        out, err = driver.communicate(timeout=300)
    finally:
        log.close()
    assert driver.returncode == 0, err
    assert "done 12, failed 0, pending 0" in out
    ds = open_sweep(store)
    assert (ds.status == 1).all() and (ds.error == "").all()
    xr.testing.assert_identical(data(ds), reference)


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append((int(entry), cmd))
    return out


def test_the_embedded_clusters_killed_worker_loses_no_run(reference, tmp_path, procs):
    store = tmp_path / "embedded.zarr"
    driver = procs(_sweep_cmd(tmp_path, store, "--workers", "1"),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: _done(store) >= 2, 180, "2 done runs")
    workers = [pid for pid, cmd in _children(driver.pid) if "spawn_main" in cmd]
    assert len(workers) == 1, _children(driver.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert _done(store) < 12, "killed too late to test anything"
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert "done 12, failed 0, pending 0" in out
    xr.testing.assert_identical(data(open_sweep(store)), reference)


def test_the_embedded_cluster_opens_no_dashboard_on_8787():
    from glomsim.sweep.execute import _start_cluster

    held = socket.socket()
    try:
        try:
            held.bind(("127.0.0.1", 8787))
            held.listen()
        except OSError:
            pass  # someone else has it: just as good a test
        # the scheduler runs in this process: its "Port 8787 is already in use" would be here
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cluster, client = _start_cluster(1)
            try:
                services = client.scheduler_info()["services"]
                assert 8787 not in services.values()
                # nothing listens beyond loopback
                for sock in cluster.scheduler.http_server._sockets.values():
                    assert sock.getsockname()[0] == "127.0.0.1"
            finally:
                client.close()
                cluster.close()
        assert not [w for w in caught if "8787" in str(w.message)]
    finally:
        held.close()
