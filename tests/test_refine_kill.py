"""A refining sweep killed with SIGKILL in the middle of its rounds resumes to the same
answer: the same evaluated points, the same results, the same critical values, every run
once. The process is started here and killed by its own process group."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from glomsim.sweep import critical, load_spec, run
from glomsim.sweep.refine import _rounds

from .processes import group_gone, kill_group, wait_for
from .test_refine import N_AGENTS, SPACING, hk_spec

pytestmark = pytest.mark.slow


def test_sigkill_mid_refinement_then_resume_gives_the_same_answer(tmp_path):
    start = tmp_path / "start.npy"
    np.save(start, (SPACING * np.arange(N_AGENTS)).reshape(1, N_AGENTS, 1))
    spec = hk_spec(start, tolerance=0.005)
    reference = run(spec, tmp_path / "ref.zarr", client="sync", progress=False)
    n_rounds = reference.attrs["refine_rounds"]
    assert n_rounds >= 5

    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(load_spec(spec).to_toml())
    store = tmp_path / "killed.zarr"
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glomsim.sweep", str(spec_path), "-o", str(store),
             "--workers", "1", "-q"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: len(_rounds(store)) >= 2, 240, "the second refinement round")
    finally:
        kill_group(proc)
        log.close()
    wait_for(lambda: group_gone(proc.pid), 10, "the killed processes to exit")
    killed_at = len(_rounds(store))
    assert 2 <= killed_at < n_rounds, f"killed too late to test anything: round {killed_at}"
    before = sum(
        json.loads((p / "zarr.json").read_text())["attributes"].get("sweep_done", 0)
        for p in _rounds(store)[:-1]
    )

    resumed = run(spec, store, client="sync", progress=False)
    assert resumed.attrs["refine_rounds"] == n_rounds
    assert resumed.attrs["sweep_skipped"] >= 12 + before  # the grid and whole rounds kept
    assert (resumed.status != 0).all() and (resumed.error == "").all()
    assert not list(store.rglob("*.partial"))
    xr.testing.assert_identical(resumed.drop_attrs(deep=False), reference.drop_attrs(deep=False))
    xr.testing.assert_identical(critical(resumed), critical(reference))
    found = critical(resumed).sel(level=0).critical
    assert (abs(found - SPACING) <= 0.005).all()
