"""Two checkouts of glomsim against each other: per-iteration time and cold compile time.

A refactor must not cost speed. This script times the same configs (the main benchmark's
small, nets and local configs, through the public API only) in fresh processes that
alternate between the two checkouts, round after round, so a busy machine slows both
alike; it quotes the median over rounds of each round's median, and the ratio.

    python benchmarks/ab_checkouts.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 7] [--threads 1 2]
    python benchmarks/ab_checkouts.py OLD NEW --cold     # first-call time, empty kernel cache

Each process imports glomsim from its checkout (``PYTHONPATH``). Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name: (dim, levels, grid side, radius, iterations): benchmarks/bench.py's CONFIGS
CONFIGS = {
    "small": (64, 5, 8, "inf", 10),
    "nets": (256, 5, 16, "inf", 10),
    "local": (128, 5, 32, 2.0, 10),
}

WORKER = r"""
import json, math, os, statistics, sys, time
import numpy as np
import numba
import glomsim as gs

dim, levels, side, radius, iters, threads, cold = json.loads(sys.argv[1])
radius = float(radius)
numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
if hasattr(os, "sched_setaffinity"):
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass
cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(side, side), steps=iters,
                    attention=gs.Attention(kernel="glom_pytorch", radius=radius,
                                           include_self=False))
w = gs.random_weights(cfg, seed=0, patch_size=2)
img = np.random.default_rng(0).standard_normal((3, side * 2, side * 2)).astype(np.float32)
t0 = time.perf_counter()
gs.simulate(cfg, w, inputs=img)
first = time.perf_counter() - t0
if cold:
    print(json.dumps({"first_call_s": first, "glomsim": gs.__file__}))
    sys.exit(0)
t0 = time.perf_counter()
gs.simulate(cfg, w, inputs=img)
one = time.perf_counter() - t0
rounds = int(min(50, max(5, 1.0 / one)))
ts = []
for _ in range(rounds):
    t0 = time.perf_counter()
    gs.simulate(cfg, w, inputs=img)
    ts.append(time.perf_counter() - t0)
print(json.dumps({"ms_per_iteration": 1e3 * statistics.median(ts) / iters, "glomsim": gs.__file__}))
"""


def _one(checkout, args, env_extra=None):
    root = os.path.realpath(checkout)
    env = dict(os.environ, PYTHONPATH=root)
    env.update(env_extra or {})
    # run from the checkout: ``python -c`` puts the working folder first on sys.path, so
    # from another checkout's root both peers had imported that one
    out = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if not os.path.realpath(got.pop("glomsim")).startswith(root + os.sep):
        raise RuntimeError(f"the worker for {checkout} imported glomsim from elsewhere")
    return got


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--only", nargs="*", default=list(CONFIGS))
    p.add_argument("--cold", action="store_true", help="first-call time with an empty cache")
    args = p.parse_args(argv)
    peers = {"old": args.old, "new": args.new}
    rows = []
    if args.cold:
        times = {k: [] for k in peers}
        for r in range(args.rounds):
            for name in list(peers)[:: 1 if r % 2 == 0 else -1]:
                with tempfile.TemporaryDirectory() as cache:
                    t0 = time.perf_counter()
                    _one(peers[name], [64, 5, 8, "inf", 10, 1, True], {"NUMBA_CACHE_DIR": cache})
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"cold process, first small simulate: old {med['old']:.1f} s, new {med['new']:.1f} s "
            f"(new/old {med['new'] / med['old']:.2f}; rounds {times})"
        )
        return 0
    for threads in args.threads:
        for name in args.only:
            dim, levels, side, radius, iters = CONFIGS[name]
            spec = [dim, levels, side, radius, iters, threads, False]
            for peer in peers.values():  # compile into each checkout's cache first
                _one(peer, spec)
            got = {k: [] for k in peers}
            for r in range(args.rounds):
                for k in list(peers)[:: 1 if r % 2 == 0 else -1]:
                    got[k].append(_one(peers[k], spec)["ms_per_iteration"])
            med = {k: statistics.median(v) for k, v in got.items()}
            row = dict(config=name, threads=threads, **{f"{k}_ms": v for k, v in med.items()})
            row["new_over_old"] = med["new"] / med["old"]
            row["rounds"] = got
            rows.append(row)
            print(
                f"{name:6s} {threads} thread(s): old {med['old']:.3f} ms, new {med['new']:.3f} "
                f"ms per iteration, new/old {row['new_over_old']:.3f}",
                flush=True,
            )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
