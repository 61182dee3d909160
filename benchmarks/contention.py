"""The thread policy under contention: glomsim's default against one thread, with another
process busy and with torch imported first.

A competing process (two-thread torch matrix products; numpy's when torch is absent) is
started by this script and stopped in a ``finally``. Each case runs in a fresh process, so
"torch first" really is torch's OpenMP runtime loaded before numba's, and interleaves
``default`` (glomsim's policy) with ``one_thread`` (``numba.set_num_threads(1)``), then
``two_fixed`` (numba's threads with the policy off, ``GLOMSIM_ADAPT_THREADS=0``: what the
policy avoids) with one thread again, each pair alternating its order every round (a
sample right after two fixed threads costs more: rotating three peers had put the
default after them twice as often as one thread). The table is default / one thread
(at most 1.1 is the target) for {quiet, busy} x {plain, torch first} x {small, local}.

Beside a busy process a single short call's time is mostly which scheduler slices it got
(one-thread times of the same config moved 1.1-2.4 ms an iteration between runs), so a
sample is several calls (about 0.3 s), each peer gets 30 samples by default, and each
ratio is the ratio of the medians with a 95% bootstrap interval over rounds; CPU time
(``time.process_time``, all of the process's threads) is recorded beside wall time.

    python benchmarks/contention.py              # or: glomsim bench --contention
    python benchmarks/contention.py --rounds 60 --only small

Never run as a test: timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The competing process: small two-thread products, as in the issue's measurement. It
#: runs while its parent (argv[1]) lives: a benchmark killed without running its
#: ``finally`` (SIGTERM, SIGKILL) had left one spinning on both cores for an hour.
COMPETITOR = """
import os, sys
parent = int(sys.argv[1])
try:
    import torch
    torch.set_num_threads(2)
    a = torch.randn(256, 256)
    mm = lambda: a @ a
except ImportError:
    from threadpoolctl import threadpool_limits
    import numpy as np
    threadpool_limits(2)
    b = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    mm = lambda: b @ b
while os.getppid() == parent:  # re-parented once the benchmark is gone
    for _ in range(100):  # ~30 ms between looks
        mm()
"""

WORKER = r"""
import json, os, sys, time
config, torch_first, rounds, here = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
sample_seconds = float(sys.argv[5])
if torch_first:
    import torch  # noqa: F401 - its OpenMP runtime first, as glom-pytorch users have it
sys.path.insert(0, here)
import numba
import numpy as np
import bench
import glomsim as gs
from glomsim import runtime

dim, levels, side, radius, iters = bench.CONFIGS[config]
cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(side, side), steps=iters,
                    attention=gs.Attention(kernel="glom_pytorch", radius=radius,
                                           include_self=False))
w = gs.random_weights(cfg, seed=0, patch_size=2)
img = np.random.default_rng(0).standard_normal((3, side * 2, side * 2)).astype(np.float32)
threads = numba.get_num_threads()
gs.simulate(cfg, w, inputs=img)  # compile or load outside the timings
t0 = time.perf_counter()
gs.simulate(cfg, w, inputs=img)
# a sample is several calls (about sample_seconds): beside the competitor, samples of
# 50 ms took either ~1.05 or ~2.1 ms an iteration (a whole core or half of one, at random),
# and the ratio's interval was [0.84, 1.57]; samples of 0.3 s average over that ([0.92, 1.07])
calls = max(1, round(sample_seconds / (time.perf_counter() - t0)))
chosen = []

def run(n, adapt):
    def fn():
        numba.set_num_threads(n)
        os.environ["GLOMSIM_ADAPT_THREADS"] = "1" if adapt else "0"
        try:
            for _ in range(calls):
                if adapt:
                    chosen.append(runtime.usable_threads(n))
                gs.simulate(cfg, w, inputs=img)
        finally:
            numba.set_num_threads(threads)
    return fn

fns = {"default": run(threads, True), "one_thread": run(1, False),
       "two_fixed": run(threads, False)}
wall = {k: [] for k in fns}
cpu = {k: [] for k in fns}


def alternate(first, second, n):
    # n rounds of the pair (each a (record, peer) of fns), the order swapped every round:
    # each follows the other as often as itself
    for r in range(n):
        for record, peer in ((first, second) if r % 2 == 0 else (second, first)):
            c0, t0 = time.process_time(), time.perf_counter()
            fns[peer]()
            wall[record].append(1e3 * (time.perf_counter() - t0) / (calls * iters))
            cpu[record].append(1e3 * (time.process_time() - c0) / (calls * iters))


# default against one thread on their own: a sample right after two fixed threads cost
# 20-40% more CPU time (the other OpenMP thread's aftermath), and rotating three peers
# put default after them twice as often as one thread
alternate(("default", "default"), ("one_thread", "one_thread"), rounds)
# then what the policy avoids, two fixed threads, against the same one thread
if threads > 1:
    wall["one_thread_beside_fixed"], cpu["one_thread_beside_fixed"] = [], []
    alternate(("two_fixed", "two_fixed"), ("one_thread_beside_fixed", "one_thread"),
              max(3, rounds // 3))
else:
    del wall["two_fixed"], cpu["two_fixed"]
print(json.dumps(dict(wall_ms=wall, cpu_ms=cpu, calls_per_sample=calls,
                      threading_layer=numba.threading_layer(), numba_threads=threads,
                      default_threads_chosen=sorted(set(chosen)),
                      default_threads_mean=sum(chosen) / max(len(chosen), 1))))
"""


def _case(config, torch_first, rounds, sample_seconds):
    env = {k: v for k, v in os.environ.items() if k != "GLOMSIM_ADAPT_THREADS"}
    out = subprocess.run([sys.executable, "-c", WORKER, config, "1" if torch_first else "0",
                          str(rounds), str(HERE), str(sample_seconds)], capture_output=True,
                         text=True, env=env, check=True, timeout=3600)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratio_of_medians(a, b, resamples=2000, seed=0):
    """median(a) / median(b) for paired samples (round r of a beside round r of b) and a
    95% bootstrap interval over rounds (the rounds resampled together, so both peers keep
    the conditions they shared)."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    ratio = float(np.median(a) / np.median(b))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    boot = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return ratio, float(lo), float(hi)


def summarise(r):
    """Medians per peer (wall and CPU ms per iteration) and the ratios to one thread, each
    with its interval, added to a worker's result ``r``."""
    import statistics

    r["ms_per_iteration"] = {k: statistics.median(v) for k, v in r["wall_ms"].items()}
    r["cpu_ms_per_iteration"] = {k: statistics.median(v) for k, v in r["cpu_ms"].items()}
    for peer, one in (("default", "one_thread"), ("two_fixed", "one_thread_beside_fixed")):
        if peer in r["wall_ms"]:
            ratio, lo, hi = ratio_of_medians(r["wall_ms"][peer], r["wall_ms"][one])
            r[f"{peer}_over_one_thread"], r[f"{peer}_over_one_thread_interval"] = ratio, [lo, hi]
    r["default_over_one_thread_cpu"] = (r["cpu_ms_per_iteration"]["default"]
                                        / r["cpu_ms_per_iteration"]["one_thread"])  # fmt: skip
    return r


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run_contention(
    configs=("small", "local"), rounds=30, loads=("quiet", "busy"), sample_seconds=0.3
):
    """The contention table: one row per (load, torch first or not, config), each with
    ms per iteration of every peer (medians of ``rounds`` interleaved samples of about
    ``sample_seconds`` each, wall and CPU time) and ``default_over_one_thread`` with its
    95% bootstrap interval."""
    rows = []
    modes = (False, True) if _has_torch() else (False,)
    for load in loads:
        competitor = None
        try:
            if load == "busy":
                competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(os.getpid())])
                run_contention.competitor_pid = competitor.pid  # for the tests
                time.sleep(1.0)  # it imports torch and starts its threads
            for torch_first in modes:
                for config in configs:
                    r = summarise(_case(config, torch_first, rounds, sample_seconds))
                    r.update(config=config, load=load, torch_first=torch_first)
                    rows.append(r)
                    print(format_row(r), flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    return rows


def format_row(r) -> str:
    ms = r["ms_per_iteration"]
    fixed = r.get("two_fixed_over_one_thread")
    lo, hi = r["default_over_one_thread_interval"]
    return (f"contention {r['load']:>5} {'torch first' if r['torch_first'] else 'plain':>11} "
            f"{r['config']:>5}: default {ms['default']:.2f} ms/it, one thread "
            f"{ms['one_thread']:.2f}, default/one x{r['default_over_one_thread']:.2f} "
            f"[{lo:.2f}, {hi:.2f}] (CPU time x{r['default_over_one_thread_cpu']:.2f})"
            + (f", fixed {r['numba_threads']} threads/one x{fixed:.2f}" if fixed else "")
            + f" (layer {r['threading_layer']}, default ran on "
            f"{r['default_threads_mean']:.1f} threads on average)")  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30, help="interleaved samples per peer")
    p.add_argument(
        "--sample-seconds",
        type=float,
        default=0.3,
        help="about how long one sample runs (several calls)",
    )
    p.add_argument("--only", nargs="*", default=["small", "local"], help="configs of bench.py")
    p.add_argument("--loads", nargs="*", default=["quiet", "busy"])
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    rows = run_contention(tuple(args.only), args.rounds, tuple(args.loads), args.sample_seconds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "contention.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out / 'contention.json'}")
    return rows


if __name__ == "__main__":
    main()
