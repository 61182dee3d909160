"""glomsim.simulate against glomsim.reference (the numpy spec) on one fixed config.

32x32 columns, 5 levels, dim 64, radius 2, 20 steps, float32, random weights and a random
input. The two peers run in the same process on the same inputs, interleaved, repeated;
medians are reported for 1 and 2 threads, with the ratio reference / simulate.

    python benchmarks/bench_reference.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

import glomsim as gs
from glomsim import reference
from glomsim.inputs import prepare_init

CONFIG = dict(
    levels=5,
    dim=64,
    grid=(32, 32),
    steps=20,
    attention=gs.Attention(kernel="dot", beta=1.0, radius=2.0),
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    cfg = gs.GlomConfig(**CONFIG)
    w = gs.random_weights(cfg, seed=0)
    u = np.random.default_rng(0).standard_normal((cfg.n_columns, cfg.dim)).astype(cfg.dtype)
    init = prepare_init(cfg, w, None)
    gs.simulate(cfg, w, inputs=u, steps=1)  # compile outside the timings

    # the two peers compute the same thing
    a = gs.simulate(cfg, w, inputs=u, steps=3).embedding.values
    b = reference.simulate(cfg, w, u, init, steps=3)
    err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1))

    rows = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        t_sim, t_ref = [], []
        for _ in range(args.repeats):  # interleaved so a busy machine hurts both alike
            t0 = time.perf_counter()
            gs.simulate(cfg, w, inputs=u)
            t_sim.append(time.perf_counter() - t0)
            with threadpool_limits(threads, user_api="blas"):
                t0 = time.perf_counter()
                reference.simulate(cfg, w, u, init)
                t_ref.append(time.perf_counter() - t0)
        sim, ref = statistics.median(t_sim), statistics.median(t_ref)
        rows.append(
            dict(
                threads=threads,
                simulate_s=sim,
                reference_s=ref,
                simulate_ms_per_step=1e3 * sim / cfg.steps,
                reference_ms_per_step=1e3 * ref / cfg.steps,
                ratio=ref / sim,
            )
        )
    print(
        f"config: 32x32 columns, 5 levels, dim 64, radius 2, 20 steps, float32; "
        f"agreement over 3 steps {err:.1e}"
    )
    print(
        f"{'threads':>7} {'simulate ms/step':>17} {'reference ms/step':>18} {'reference/simulate':>19}"
    )
    for r in rows:
        print(
            f"{r['threads']:>7} {r['simulate_ms_per_step']:>17.2f} "
            f"{r['reference_ms_per_step']:>18.1f} {r['ratio']:>18.1f}x"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(config="32x32x5x64 r2 20 steps", agreement=err, rows=rows), f, indent=1)
    return rows


if __name__ == "__main__":
    main()
