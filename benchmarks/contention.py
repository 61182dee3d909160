"""The thread policy under contention: glomsim's default against one thread, with another
process busy and with torch imported first.

A competing process (two-thread torch matrix products; numpy's when torch is absent) is
started by this script and stopped in a ``finally``. Each case runs in a fresh process, so
"torch first" really is torch's OpenMP runtime loaded before numba's, and interleaves
three peers on the same run: ``default`` (glomsim's policy), ``one_thread``
(``numba.set_num_threads(1)``) and ``two_fixed`` (numba's threads with the policy off,
``GLOMSIM_ADAPT_THREADS=0``: what the policy avoids). The table is default / one thread
(at most 1.1 is the target) for {quiet, busy} x {plain, torch first} x {small, local}.

    python benchmarks/contention.py              # or: glomsim bench --contention
    python benchmarks/contention.py --rounds 15 --only small

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

#: The competing process: small two-thread products, as in the issue's measurement.
COMPETITOR = """
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
while True:
    mm()
"""

WORKER = r"""
import json, os, sys
config, torch_first, rounds, here = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
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
chosen = []

def run(n, adapt):
    def fn():
        numba.set_num_threads(n)
        os.environ["GLOMSIM_ADAPT_THREADS"] = "1" if adapt else "0"
        try:
            if adapt:
                chosen.append(runtime.usable_threads(n))
            gs.simulate(cfg, w, inputs=img)
        finally:
            numba.set_num_threads(threads)
    return fn

fns = {"default": run(threads, True), "one_thread": run(1, False)}
if threads > 1:
    fns["two_fixed"] = run(threads, False)
med = bench._median_interleaved(fns, rounds)
print(json.dumps(dict(ms_per_iteration={k: 1e3 * v / iters for k, v in med.items()},
                      threading_layer=numba.threading_layer(), numba_threads=threads,
                      default_threads_chosen=sorted(set(chosen)),
                      default_threads_mean=sum(chosen) / max(len(chosen), 1))))
"""


def _case(config, torch_first, rounds):
    env = {k: v for k, v in os.environ.items() if k != "GLOMSIM_ADAPT_THREADS"}
    out = subprocess.run([sys.executable, "-c", WORKER, config, "1" if torch_first else "0",
                          str(rounds), str(HERE)], capture_output=True, text=True, env=env,
                         check=True, timeout=1800)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run_contention(configs=("small", "local"), rounds=9, loads=("quiet", "busy")):
    """The contention table: one row per (load, torch first or not, config), each with
    ms per iteration of every peer and ``default_over_one_thread``."""
    rows = []
    modes = (False, True) if _has_torch() else (False,)
    for load in loads:
        competitor = None
        try:
            if load == "busy":
                competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
                run_contention.competitor_pid = competitor.pid  # for the tests
                time.sleep(1.0)  # it imports torch and starts its threads
            for torch_first in modes:
                for config in configs:
                    r = _case(config, torch_first, rounds)
                    ms = r["ms_per_iteration"]
                    r.update(config=config, load=load, torch_first=torch_first,
                             default_over_one_thread=ms["default"] / ms["one_thread"])  # fmt: skip
                    if "two_fixed" in ms:
                        r["two_fixed_over_one_thread"] = ms["two_fixed"] / ms["one_thread"]
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
    return (f"contention {r['load']:>5} {'torch first' if r['torch_first'] else 'plain':>11} "
            f"{r['config']:>5}: default {ms['default']:.2f} ms/it, one thread "
            f"{ms['one_thread']:.2f}, default/one x{r['default_over_one_thread']:.2f}"
            + (f", fixed {r['numba_threads']} threads/one x{fixed:.2f}" if fixed else "")
            + f" (layer {r['threading_layer']}, default ran on "
            f"{r['default_threads_mean']:.1f} threads on average)")  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--only", nargs="*", default=["small", "local"], help="configs of bench.py")
    p.add_argument("--loads", nargs="*", default=["quiet", "busy"])
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    rows = run_contention(tuple(args.only), args.rounds, tuple(args.loads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "contention.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out / 'contention.json'}")
    return rows


if __name__ == "__main__":
    main()
