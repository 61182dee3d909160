"""The cost of frames, activations, the contrastive kernel and sampled neighbourhoods.

On the main benchmark's local config (32x32 columns, dim 128, 5 levels, radius 2), each
variant against its baseline, in one process, interleaved round after round (the order
rotating), medians of the per-step time:

- frames (a new frame every step, and every 5 steps) and the relu / sin activations
  against the static built-in rule with GELU (issue 13's limit: at most 10% per step);
- the contrastive kernel and sampled neighbourhoods against cosine attention.

    python benchmarks/bench_mechanisms.py [--threads 1 2] [--rounds 7]

Never run as a test: timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np


def _cases(steps):
    import glomsim as gs

    base = dict(levels=5, dim=128, grid=(32, 32), steps=steps)
    att = dict(radius=2.0)
    u = np.random.default_rng(0).standard_normal((1024, 128)).astype(np.float32)
    frames = np.stack([u + np.float32(0.01 * i) for i in range(steps)])
    gelu = gs.GlomConfig(**base, attention=gs.Attention(kernel="cosine", **att))
    w = gs.random_weights(gelu, seed=0)

    def run(cfg, weights, **kw):
        return lambda: gs.simulate(cfg, weights, **kw)

    static = {"static (gelu, cosine)": run(gelu, w, inputs=u)}
    frames_vs_static = {
        **static,
        "frames, a new one every step": run(gelu, w, frames=frames, steps_per_frame=1),
        "frames, a new one every 5 steps": run(gelu, w, frames=frames[::5], steps_per_frame=5),
    }
    for act in ("relu", "sin"):
        cfg = gelu.replace(bottom_up_activation=act, top_down_activation=act)
        frames_vs_static[f"{act} nets"] = run(cfg, gs.random_weights(cfg, seed=0), inputs=u)
    kernels = {**static}
    contrastive = gelu.replace(
        attention=gs.Attention(kernel="contrastive", threshold=0.3, repulsion=0.5, **att)
    )
    kernels["contrastive (threshold 0.3, repulsion 0.5)"] = run(contrastive, w, inputs=u)
    sampled = gelu.replace(
        attention=gs.Attention(kernel="cosine", sample=4, sample_width=1.0, **att)
    )
    kernels["cosine, 4 sampled of the radius"] = run(sampled, w, inputs=u)
    # the control: the same steps driven from Python, as sampled levels are
    kernels["cosine, stepped from Python"] = run(gelu, w, inputs=u, stop_when_settled=1e-300)
    return {"frames and activations": frames_vs_static, "attention kernels": kernels}


def _median_interleaved(fns, rounds):
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    import numba

    out = []
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for group, fns in _cases(args.steps).items():
            for fn in fns.values():  # compile outside the timings
                fn()
            med = _median_interleaved(fns, args.rounds)
            base = next(iter(med.values()))
            print(f"{group}, {threads} thread(s), ms per step (ratio to the first):")
            for name, t in med.items():
                ms = 1e3 * t / args.steps
                print(f"  {name:44s} {ms:8.3f}  x{t / base:.3f}")
                out.append(dict(group=group, threads=threads, case=name, ms_per_step=ms,
                                ratio=t / base))  # fmt: skip
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
