"""A sweep's guarantees under faults: damaged stores, two writers, work left undone, memory.

Real processes (``python -m glomsim.sweep``) are started in their own session by the
``procs`` fixture, which SIGKILLs each one's process group at teardown, whatever happened.
Dask clusters are in ``test_sweep_faults_cluster.py``.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from glomsim import sweep
from glomsim.sweep import _lock as lock
from glomsim.sweep import _memory as memory
from glomsim.sweep import execute, load_spec, open_sweep, run

from .processes import session_processes, wait_for

#: 8 runs of a few milliseconds each (in-process tests).
SPEC = {
    "sweep": {"name": "faults", "seeds": 2},
    "base": {"levels": 2, "dim": 4, "grid": [5, 5], "steps": 8, "dtype": "float64"},
    "aliases": {"beta": "attention.beta"},
    "axes": {"beta": [0.5, 2.0, 4.0, 8.0]},
    "scene": {"n_objects": 1, "parts_per_object": 2, "textures_per_part": 1},
    "keep": {"trajectories": True, "record_every": 2},
}
#: The same shape of sweep, slow enough (about 0.3 s a run, 12 runs) to act on mid-way.
SLOW = {
    **SPEC,
    "sweep": {"name": "slow", "seeds": 3, "batch_size": 1},
    "base": {"levels": 3, "dim": 8, "grid": [10, 10], "steps": 150, "normalize": "l2"},
    "keep": {},
}


def data(ds):
    return ds.drop_attrs(deep=False).load()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    ds = run(SPEC, path, client="sync", progress=False)
    assert ds.attrs["sweep_done"] == 8
    return data(ds), path


@pytest.fixture
def procs():
    """Start processes in their own sessions; all are killed (by group) at the end."""
    yield from session_processes()


def _sweep_cmd(spec_path, store, *extra):
    return [sys.executable, "-m", "glomsim.sweep", str(spec_path), "-o", str(store), "-q",
            *extra]  # fmt: skip


def _status(store):
    try:
        return np.asarray(zarr.open_array(str(store), path="status", mode="r")[...])
    except Exception:  # noqa: BLE001 - not made yet
        return None


# ----- damaged stores -------------------------------------------------------------------
def _damage(store, how):
    """Damage run (beta=2.0, seed=1)'s island_count chunk; the chunk's path in the store."""
    chunk = store / "island_count" / "c" / "1" / "1" / "0"
    assert chunk.is_file()
    if how == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:5])
    return "island_count/c/1/1/0"


@pytest.mark.parametrize("how", ["delete", "truncate"])
def test_a_damaged_chunk_is_found_on_open_and_redone_on_resume(reference, tmp_path, how):
    ref, path = reference
    store = tmp_path / "damaged.zarr"
    shutil.copytree(path, store)
    key = _damage(store, how)
    with pytest.warns(sweep.SweepDamaged, match=rf"beta=2.0, seed=1: {key} "):
        opened = open_sweep(store)
    # the damaged run reads as pending, the others as they were
    assert int(opened.status.sel(beta=2.0, seed=1)) == 0
    assert int((opened.status == 1).sum()) == 7
    with pytest.warns(sweep.SweepDamaged, match=r"1 recorded run\(s\) were damaged.*redone"):
        resumed = run(SPEC, store, client="sync", progress=False)
    assert resumed.attrs["sweep_skipped"] == 7 and resumed.attrs["sweep_done"] == 8
    xr.testing.assert_identical(data(resumed), ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.testing.assert_identical(data(open_sweep(store)), ref)


def test_a_damaged_trajectory_chunk_is_found(reference, tmp_path):
    ref, path = reference
    store = tmp_path / "traj.zarr"
    shutil.copytree(path, store)
    chunk = store / "embedding" / "c" / "3" / "0" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1])
    with pytest.warns(sweep.SweepDamaged, match="beta=8.0, seed=0: embedding/c/3/0/0/0/0/0 has"):
        resumed = run(SPEC, store, client="sync", progress=False)
    xr.testing.assert_identical(data(resumed), ref)


def test_a_truncated_status_chunk_is_redone_without_a_traceback(reference, tmp_path):
    ref, path = reference
    store = tmp_path / "status.zarr"
    shutil.copytree(path, store)
    chunk = store / "status" / "c" / "2" / "0"
    chunk.write_bytes(chunk.read_bytes()[:3])
    with pytest.warns(sweep.SweepDamaged, match="beta=4.0, seed=0: its status chunk"):
        assert int(open_sweep(store).status.sel(beta=4.0, seed=0)) == 0
    with pytest.warns(sweep.SweepDamaged, match="status chunk cannot be read"):
        resumed = run(SPEC, store, client="sync", progress=False)
    assert resumed.attrs["sweep_skipped"] == 7
    xr.testing.assert_identical(data(resumed), ref)


def test_plain_open_zarr_does_not_warn_and_skips_the_record(reference):
    ref, path = reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(path)
    assert set(plain.data_vars) == set(ref.data_vars)


def test_a_resume_with_nothing_to_do_keeps_the_sweep_time(reference, tmp_path):
    _, path = reference
    store = tmp_path / "again.zarr"
    shutil.copytree(path, store)
    zarr.open_group(str(store), mode="r+").attrs["sweep_seconds"] = 1234.5
    again = run(SPEC, store, client="sync", progress=False)
    assert again.attrs["sweep_seconds"] == 1234.5 and again.attrs["sweep_skipped"] == 8


# ----- one writer per store -------------------------------------------------------------
def test_two_sweeps_on_one_store_one_refuses_and_the_other_completes(tmp_path, procs):
    spec_path = tmp_path / "slow.toml"
    spec_path.write_text(load_spec(SLOW).to_toml())
    store = tmp_path / "shared.zarr"
    first = procs(_sweep_cmd(spec_path, store, "--sync"), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: os.path.exists(lock.lock_path(str(store))), 60, "the first sweep's lock")
    second = subprocess.run(
        _sweep_cmd(spec_path, store, "--sync"), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert str(store) in lines[0] and "being written by another sweep" in lines[0]
    assert f"pid {first.pid} on host" in lines[0]
    assert first.wait(timeout=300) == 0, first.stderr.read()
    ds = open_sweep(store)
    assert ds.attrs["sweep_done"] == 12 and not os.path.exists(lock.lock_path(str(store)))
    # later runs on the store work, starting over included
    for extra in ([], ["--no-resume"]):
        later = subprocess.run(_sweep_cmd(spec_path, store, "--sync", *extra), timeout=300)
        assert later.returncode == 0
    xr.testing.assert_identical(data(open_sweep(store)), data(ds))


def test_a_killed_writer_leaves_no_lock_that_blocks(tmp_path, procs):
    spec_path = tmp_path / "slow.toml"
    spec_path.write_text(load_spec(SLOW).to_toml())
    store = tmp_path / "killed.zarr"
    p = procs(_sweep_cmd(spec_path, store, "--sync"))
    wait_for(lambda: (s := _status(store)) is not None and (s == 1).sum() >= 1, 120, "a run")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert os.path.exists(lock.lock_path(str(store)))  # left behind, but not held
    resumed = run(SLOW, store, client="sync", progress=False)
    assert resumed.attrs["sweep_done"] == 12 and resumed.attrs["sweep_skipped"] >= 1


def test_without_flock_a_dead_holder_is_stale_and_a_live_one_refuses(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "_flock", lambda store, path: None)
    store = str(tmp_path / "s.zarr")
    path = lock.lock_path(store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = lock.socket.gethostname()
    with open(path, "w") as f:
        json.dump({"host": host, "pid": int(dead.stdout), "since": "earlier"}, f)
    with lock.store_lock(store):  # taken over
        with pytest.raises(sweep.StoreLocked, match=f"pid {os.getpid()} on host {host}"):
            with lock.store_lock(store):
                pass
    assert not os.path.exists(path)
    with open(path, "w") as f:  # another host: cannot be judged, so it holds
        json.dump({"host": host + "-elsewhere", "pid": 1, "since": "earlier"}, f)
    with pytest.raises(sweep.StoreLocked, match="elsewhere"):
        with lock.store_lock(store):
            pass


# ----- work left undone, runs failed ------------------------------------------------------
class _NoWorkers:
    """A client whose tasks are all lost: nothing ever runs."""

    def submit(self, *args, **kwargs):  # pragma: no cover - _submit is replaced
        raise AssertionError("not called")


def test_runs_still_pending_at_the_end_raise_and_a_resume_completes(
    reference, tmp_path, monkeypatch, capsys
):
    ref, _ = reference
    rounds = []
    monkeypatch.setattr(execute, "_submit", lambda *args: rounds.append(args[3]))
    store = tmp_path / "lost.zarr"
    with pytest.raises(
        sweep.SweepIncomplete, match=r"8 of 8 runs are still pending \(beta=0.5, seed=0; "
    ) as err:
        run(SPEC, store, client=_NoWorkers(), progress=False)
    assert len(rounds) == execute._ROUNDS  # resubmitted, then given up
    assert err.value.pending == tuple(range(8)) and err.value.dataset.attrs["sweep_pending"] == 8
    assert ".partial" not in str(err.value)
    # the command line says so on one line after the summary, exit code 1
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(load_spec(SPEC).to_toml())
    from glomsim.cli import sweep as cli

    def lost(spec, out, **kw):
        return run(spec, out, client=_NoWorkers(), progress=False)

    monkeypatch.setattr(cli, "run", lost)
    capsys.readouterr()
    assert cli.main([str(spec_path), "-o", str(store), "-q"]) == 1
    got = capsys.readouterr()
    assert "pending 8" in got.out
    assert got.err.count("\n") == 1 and "8 of 8 runs are still pending" in got.err
    resumed = run(SPEC, store, client="sync", progress=False)
    xr.testing.assert_identical(data(resumed), ref)


def test_a_sweep_whose_every_run_fails_exits_non_zero_on_one_line(tmp_path):
    spec = {**SPEC, "axes": {"weights.gain": [1e12]}, "sweep": {"seeds": 2}, "keep": {}}
    spec["base"] = {**SPEC["base"], "steps": 40}
    with pytest.warns(sweep.SweepRunsFailed, match=r"every run \(2\) failed"):
        ds = run(spec, tmp_path / "py.zarr", client="sync", progress=False)
    assert ds.attrs["sweep_failed"] == 2
    for e in ds.error.values.ravel():
        assert e.startswith("SimulationDiverged: the state became non-finite at step")
        assert ".partial" not in e
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(load_spec(spec).to_toml())
    got = subprocess.run(_sweep_cmd(spec_path, tmp_path / "cli.zarr", "--sync"),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert got.returncode == 1
    assert got.stderr.strip().count("\n") == 0 and "every run (2) failed" in got.stderr
    assert "done 0, failed 2" in got.stdout and ".partial" not in got.stdout + got.stderr


# ----- refused before any work ------------------------------------------------------------
def test_an_unreachable_scheduler_fails_fast_before_the_store(tmp_path):
    store = tmp_path / "never.zarr"
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="client='tcp://127.0.0.1:1': no Dask scheduler"):
        run(SPEC, store, client="tcp://127.0.0.1:1", progress=False)
    assert time.monotonic() - t0 < execute.CONNECT_TIMEOUT + 5
    assert not store.exists() and not os.path.exists(lock.lock_path(str(store)))
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(load_spec(SPEC).to_toml())
    got = subprocess.run(_sweep_cmd(spec_path, store, "--scheduler", "tcp://127.0.0.1:1"),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
    assert "no Dask scheduler answered" in got.stderr and not store.exists()


def _big(**keep):
    return {"sweep": {"seeds": 4, "batch_size": 4}, "scene": False, "keep": keep,
            "base": {"levels": 2, "dim": 8, "grid": [16, 16], "steps": 100}}  # fmt: skip


def test_memory_bound_refuses_what_cannot_fit_and_names_the_fixes():
    spec = load_spec(_big())
    need, parts = memory.task_bytes(spec)
    # 4 seeds of one point in one task: one ensemble of 4, plus a trajectory for measuring
    assert parts["runs"] == 4
    assert need == 101 * 2 * 256 * 8 * 4 * (4 + 1)
    memory.check_memory(spec, available=need)  # fits exactly
    with pytest.raises(sweep.SpecError, match="memory: a task needs at least") as err:
        memory.check_memory(spec, available=need - 1)
    msg = str(err.value)
    for field in ("keep.record_every", "base.steps", "sweep.batch_size"):
        assert field in msg
    # each fix named there does shrink the bound
    assert memory.task_bytes(load_spec(_big(record_every=10)))[0] < need
    thin = load_spec({**_big(), "sweep": {"seeds": 4, "batch_size": 1}})
    assert memory.task_bytes(thin)[0] < need
    kept, _ = memory.task_bytes(load_spec(_big(trajectories=True)))
    assert kept > need  # the trajectory's copy for the store
    assert memory.task_bytes(load_spec(_big()))[0] == need


def test_a_spec_far_beyond_the_machine_is_refused_at_spec_check(tmp_path):
    huge = {"base": {"levels": 5, "dim": 512, "grid": [400, 400], "steps": 20000}, "scene": False}
    with pytest.raises(sweep.SpecError, match=r"memory: .*GiB.*keep.record_every"):
        load_spec(huge)
    spec_path = tmp_path / "huge.json"
    spec_path.write_text(json.dumps(huge))
    got = subprocess.run(_sweep_cmd(spec_path, tmp_path / "h.zarr"), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert got.returncode == 2 and got.stderr.count("\n") == 1 and "memory:" in got.stderr
    assert not (tmp_path / "h.zarr").exists()
