"""The thread and BLAS policy (glomsim.runtime) and the kernels' build rules: import
writes nothing into the environment, plans survive a thread-count change, the BLAS limit
is counted across concurrent runs, and no kernel hard-codes its fastmath flags."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import glomsim as gs
from glomsim import runtime

KERNELS_DIR = Path(__file__).resolve().parents[1] / "glomsim" / "_kernels"


def _without_wait_policy():
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


def test_import_leaves_the_environment_unchanged():
    code = (
        "import os\n"
        "before = dict(os.environ)\n"
        "import glomsim, glomsim.simulation, glomsim.inputs, glomsim.runtime\n"
        "print(dict(os.environ) == before)\n"
    )
    env = _without_wait_policy()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, env=env)  # fmt: skip
    assert out.stdout.strip() == "True"


def test_the_wait_policy_is_set_when_a_run_first_steps_and_a_user_value_wins():
    code = (
        "import os, glomsim as gs\n"
        "assert 'OMP_WAIT_POLICY' not in os.environ\n"
        "cfg = gs.GlomConfig(levels=1, dim=2, grid=(2, 2), steps=1)\n"
        "gs.simulate(cfg)\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])\n"
    )
    env = _without_wait_policy()
    env["GOMP_SPINCOUNT"] = "77"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=600, env=env)  # fmt: skip
    assert out.stdout.split() == ["PASSIVE", "77"]


def test_a_plan_made_at_one_thread_runs_at_two():
    """Per-thread scratch is sized by NUMBA_NUM_THREADS, so a thread count raised after
    planning (or between two runs that share a pooled plan) is no error."""
    import numba

    from glomsim._engine import Plan, idle_plans

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba can run only one thread here")
    cfg = gs.GlomConfig(levels=3, dim=64, grid=(8, 8), steps=3, dtype="float64")
    w = gs.random_weights(cfg, seed=0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        plan = Plan(cfg, w)
        one = gs.simulate(cfg, w).embedding.values
        assert any(key[0] == cfg for key in idle_plans())
        numba.set_num_threads(2)
        two = gs.simulate(cfg, w).embedding.values  # the pooled plan from one thread
        state = two[0].copy()
        out = np.empty_like(state)
        assert plan.step(state, state, np.zeros((64, 64)), 1, out)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(out, two[1])


class _FakeBlas:
    """A BLAS library handle as threadpoolctl gives it."""

    def __init__(self, filepath, threads):
        self.filepath, self.threads, self.calls = filepath, threads, []

    def get_num_threads(self):
        return self.threads

    def set_num_threads(self, n):
        self.calls.append(n)
        self.threads = n


def test_the_blas_limit_is_counted_across_concurrent_runs():
    """Runs on several Python threads at once: the first lowers the count to one, the
    others find it lowered, and only the last one to finish restores it."""
    lib = _FakeBlas("/fake/libopenblas.so", 4)
    limit = runtime._BlasLimit()
    entered, leave = threading.Barrier(5), threading.Event()
    seen = []

    def run():
        limit.acquire([lib])
        seen.append(lib.get_num_threads())
        entered.wait()
        leave.wait()
        limit.release([lib])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    entered.wait()
    assert seen == [1, 1, 1, 1] and lib.calls == [1]
    leave.set()
    for t in threads:
        t.join()
    assert lib.threads == 4 and lib.calls == [1, 4]


def test_concurrent_runs_restore_the_blas_threads():
    from concurrent.futures import ThreadPoolExecutor

    libs = runtime._numba_blas()
    before = [lib.get_num_threads() for lib in libs]
    cfg = gs.GlomConfig(levels=2, dim=8, grid=(4, 4), steps=3)
    w = gs.random_weights(cfg, seed=0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: gs.simulate(cfg, w).embedding.values, range(8)))
    assert [lib.get_num_threads() for lib in libs] == before
    for r in results:
        np.testing.assert_array_equal(r, results[0])


def test_no_kernel_hard_codes_fastmath_flags():
    """Kernels pick a named set of glomsim._kernels.jit (stumpy's test.sh habit)."""
    named = {"EXACT", "FMA", "REASSOC"}
    for path in sorted(KERNELS_DIR.glob("*.py")):
        if path.name == "jit.py":
            continue
        text = path.read_text()
        for value in re.findall(r"fastmath\s*=\s*([^,)\s]+)", text):
            assert value in named, f"{path.name}: fastmath={value}"
        assert not re.search(r"numba\.njit|from numba import[^\n]*\bnjit\b", text), path.name


def test_compiling_is_announced_only_when_the_kernels_are_cold(capsys, monkeypatch):
    from glomsim import runtime

    cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=2)
    gs.simulate(cfg)  # compiled (or loaded) in this process: nothing to say
    assert not runtime.kernels_cold()
    assert runtime.say_compiling() is False and capsys.readouterr().err == ""
    monkeypatch.setattr(runtime, "kernels_cold", lambda: True)
    assert runtime.say_compiling() is True
    assert capsys.readouterr().err.startswith("compiling kernels (first run only")


def test_a_cold_progress_bar_restarts_its_clock_after_the_first_step(monkeypatch):
    from glomsim import runtime, simulation

    monkeypatch.setattr(runtime, "kernels_cold", lambda: True)
    meter = simulation._progress(True, 5)
    try:
        start = meter.bar.start_t
        time.sleep(0.05)  # the first step's compiling
        meter.update(1)
        assert meter.bar.start_t > start and meter.bar.n == 1
        meter.update(1)
        assert meter.bar.n == 2
    finally:
        meter.close()


class _Counters:
    """Fake core and process CPU counters for runtime._Load, advanced by hand."""

    def __init__(self, ncpu=2):
        self.now, self.busy, self.own, self.ncpu, self.reads = 0.0, 0.0, 0.0, ncpu, 0

    def sample(self):
        self.reads += 1
        return self.busy, self.own, self.ncpu

    def advance(self, seconds, others, own):
        """``seconds`` pass with ``others`` cores busy elsewhere and ``own`` here."""
        self.now += seconds
        self.busy += seconds * (others + own)
        self.own += seconds * own


def test_the_load_counts_other_processes_not_this_one():
    c = _Counters()
    load = runtime._Load(sample=c.sample, clock=lambda: c.now)
    load.others()  # the first reading: nothing to difference yet
    c.advance(0.5, others=1.5, own=2.0)  # this process's own threads do not count
    assert load.others() == (pytest.approx(1.5), 2)
    reads = c.reads
    c.advance(runtime.LOAD_WINDOW / 4, others=0.0, own=0.0)
    assert load.others()[0] == pytest.approx(1.5)  # too soon: the last value, no reading
    assert c.reads == reads
    c.advance(1.0, others=0.2, own=1.0)  # the window runs from the last reading
    assert load.others()[0] == pytest.approx(0.2 / (1 + runtime.LOAD_WINDOW / 4))


def test_unreadable_counters_mean_no_adapting():
    load = runtime._Load(sample=lambda: (None, 0.0, 2), clock=time.monotonic)
    assert load.others() == (0.0, 2)


@pytest.mark.parametrize(
    ("others", "ncpu", "threads", "expected"),
    [(0.0, 2, 2, 2), (0.3, 2, 2, 2), (0.8, 2, 2, 1), (1.9, 2, 2, 1), (5.0, 2, 2, 1),
     (1.0, 8, 8, 7), (0.0, 8, 4, 4), (3.0, 4, 1, 1)],
)  # fmt: skip
def test_usable_threads_leave_the_cores_others_hold(monkeypatch, others, ncpu, threads, expected):
    monkeypatch.delenv("GLOMSIM_ADAPT_THREADS", raising=False)
    monkeypatch.setattr(runtime._LOAD, "others", lambda: (others, ncpu))
    assert runtime.usable_threads(threads) == expected
    monkeypatch.setenv("GLOMSIM_ADAPT_THREADS", "0")
    assert runtime.usable_threads(threads) == threads


def test_a_run_steps_on_the_threads_left_and_restores_the_count(monkeypatch):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba can run only one thread here")
    monkeypatch.delenv("GLOMSIM_ADAPT_THREADS", raising=False)
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    seen = []
    try:
        for others in (1.5, 0.0):
            monkeypatch.setattr(runtime._LOAD, "others", lambda o=others: (o, 2))
            with runtime.stepping(10 * runtime.SERIAL_BELOW):
                seen.append(numba.get_num_threads())
            assert numba.get_num_threads() == 2
        with runtime.stepping(runtime.SERIAL_BELOW / 10):  # tiny: one thread, load or not
            seen.append(numba.get_num_threads())
    finally:
        numba.set_num_threads(before)
    assert seen == [1, 2, 1]


def test_busy_processes_on_every_core_leave_one_thread():
    """The real counters: with a spinning process on each core, a reading over a window
    finds them (their CPU time is not this process's) and leaves one thread."""
    if runtime._cpu_busy_seconds(runtime._cpus()) is None:
        pytest.skip("no /proc/stat here")
    ncpu = len(runtime._cpus())
    spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 20: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(ncpu)]
    try:
        load = runtime._Load()
        time.sleep(0.5)  # the spinners start
        load.others()
        time.sleep(0.6)
        others, n = load.others()
        assert n == ncpu and others > ncpu - 0.5
    finally:
        for p in procs:
            p.kill()
            p.wait()
