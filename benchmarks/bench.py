"""glomsim against its peers on fixed configs: speed, achieved GFLOP/s, memory.

Peers run side by side in one process on the same inputs and the same weights (glom-pytorch
weights are loaded into glomsim through the interop), interleaved and repeated; medians are
quoted, for 1 and 2 threads. The script measures this machine's float32 GEMM peak in the same
run and reports every speed as a fraction of it and as ratios against each peer.

    python benchmarks/bench.py                 # everything (several minutes)
    python benchmarks/bench.py --quick         # small repeats, a subset, for a smoke test
    python benchmarks/bench.py --only local --threads 2
    python benchmarks/bench.py --contention    # default vs one thread beside a busy process

Writes ``benchmarks/results/bench.json``, ``configs.png`` (the table as bars) and
``scaling.png`` (time per step against columns, dim and levels) there.
Never run as a test: timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# name: (dim, levels, grid side, radius (inf = global), iterations)
CONFIGS = {
    "small": (64, 5, 8, math.inf, 10),
    "nets": (256, 5, 16, math.inf, 10),
    "local": (128, 5, 32, 2.0, 10),
    "large": (64, 5, 64, 2.0, 4),
}


def flops_per_iteration(dim, levels, n, k):
    """Nets: (2L-1) N 16 D^2 (two GEMMs of D x 4D each way); attention: 4 L N k D. The
    work of one iteration as glom-pytorch and the reference do it: speeds and ratios
    between peers are per iteration of this same work."""
    return (2 * levels - 1) * n * 16 * dim * dim + 4 * levels * n * k * dim


def glomsim_net_flops_per_iteration(dim, levels, n, iters):
    """The nets' part of what glomsim executes per iteration of an ``iters``-step run:
    level 0's bottom-up net reads only the inputs, which do not change, so it runs on the
    first step alone. A run's net-bound limit is this at the GEMM peak (attention,
    combination and normalisation taking no time)."""
    return (2 * levels - 1) * n * 16 * dim * dim - (iters - 1) / iters * n * 16 * dim * dim


def glomsim_flops_per_iteration(dim, levels, n, k, iters):
    """What glomsim executes per iteration: its nets and the peers' attention. Its share
    of the GEMM peak is computed from this, not from the peers' work."""
    return glomsim_net_flops_per_iteration(dim, levels, n, iters) + 4 * levels * n * k * dim


def gemm_peak(threads, size=2048, repeats=5):
    """This machine's float32 GEMM peak for ``threads``, GFLOP/s: the best of numpy's BLAS,
    XLA's jitted product (when jax is installed) and glomsim's own packed product, each on
    2048 x 2048 matrices, best of ``repeats``, and what each reached (``sources``).

    numpy's OpenBLAS may run kernels narrower than the CPU (its Haswell kernels, 256-bit,
    on AMD's Zen 5, whose 512-bit FMAs run at twice their rate), so BLAS alone can sit
    far below what the machine does."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    b = a.T.copy()
    sources = {}
    with threadpool_limits(threads, user_api="blas"):
        sources["numpy"] = _best_rate(lambda: a @ b, size, repeats)
    jax_rate = _jax_gemm_rate(a, b, threads, repeats)
    if jax_rate is not None:
        sources["jax"] = jax_rate
    sources["glomsim_packed"] = _packed_gemm_rate(a, b, threads, repeats)
    return max(sources.values()), sources


def _best_rate(fn, size, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 2 * size**3 / min(ts) / 1e9


def _jax_gemm_rate(a, b, threads, repeats):
    """XLA's product on ``threads`` cores: a fresh process pinned to them (XLA sizes its
    thread pool once, at start), or None without jax."""
    if not _jax_peer().available():
        return None
    code = (
        "import sys, time, numpy as np, jax, jax.numpy as jnp\n"
        "n, r = int(sys.argv[1]), int(sys.argv[2])\n"
        "a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))\n"
        "b = (a.T + 0).block_until_ready()\n"
        "f = jax.jit(lambda x, y: x @ y)\n"
        "f(a, b).block_until_ready()\n"
        "ts = []\n"
        "for _ in range(r):\n"
        "    t0 = time.perf_counter(); f(a, b).block_until_ready()\n"
        "    ts.append(time.perf_counter() - t0)\n"
        "print(2 * n**3 / min(ts) / 1e9)\n"
    )
    cores = sorted(os.sched_getaffinity(0))[:threads]
    pin = ["taskset", "-c", ",".join(map(str, cores))] if shutil.which("taskset") else []
    out = subprocess.run([*pin, sys.executable, "-c", code, str(a.shape[0]), str(repeats)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    if out.returncode != 0:
        return None
    return float(out.stdout.strip().splitlines()[-1])


@functools.cache
def _packed_product():
    """A parallel loop of glomsim's packed product over row blocks of 96, compiled once
    per benchmark run (each thread count's peak calls it)."""
    import numba

    from glomsim._kernels.gemm import gemm_packed

    @numba.njit(parallel=True, cache=False)
    def product(a, bp, c):
        blocks = a.shape[0] // 96
        for i in numba.prange(blocks):
            gemm_packed(a[i * 96 : (i + 1) * 96], bp, c[i * 96 : (i + 1) * 96])

    return product


def _packed_gemm_rate(a, b, threads, repeats):
    """glomsim's packed product (:mod:`glomsim._kernels.gemm`) over row blocks of 96 in a
    parallel loop on ``threads`` numba threads."""
    import numba

    from glomsim._kernels.gemm import pack_panels, padded

    product = _packed_product()
    bp = pack_panels(b, a.dtype)
    c = np.empty((a.shape[0], padded(b.shape[1], a.dtype)), a.dtype)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        rows = a.shape[0] // 96 * 96
        rate = _best_rate(lambda: product(a, bp, c), a.shape[0], repeats)
        assert np.allclose(c[:rows, :8], a[:rows] @ b[:, :8], rtol=1e-3, atol=1e-2)
        return rate * rows / a.shape[0]
    finally:
        numba.set_num_threads(before)


def _median_interleaved(fns, repeats, warm=None, warm_seconds=0.3):
    """Run the peers round-robin so a busy machine slows them alike; median per peer.

    The order rotates every round, so no peer always runs right after the same one. With
    ``warm`` (peer -> a short version of its work), each timed call follows
    ``warm_seconds`` of that peer's own short work: a 256-run ensemble that took 0.41-0.45 s
    back to back took 0.56-0.88 s right after 3 s of anything else (glom-pytorch, a numpy
    GEMM, even a one-thread Python loop), so the long peers' timings depended on which
    peer ran before them."""
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if warm is not None and name in warm:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < warm_seconds:
                    warm[name]()
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    _median_interleaved.last_times = times  # every timing, for the JSON
    return {name: statistics.median(ts) for name, ts in times.items()}


_ALLOWED_CPUS = None


def _pin(threads):
    """Pin every thread of the process to ``threads`` of the cores it may use (Linux), so
    a 1-thread row really runs on one core (unpinned, a 1-thread run was seen using 1.5
    cores)."""
    import os

    global _ALLOWED_CPUS
    if not hasattr(os, "sched_setaffinity"):
        return
    if _ALLOWED_CPUS is None:  # before any pinning narrows it
        _ALLOWED_CPUS = sorted(os.sched_getaffinity(0))
    cpus = _ALLOWED_CPUS[:threads]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def _set_threads(threads):
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    _pin(threads)


def _numpy_blas_single():
    """numpy's own OpenBLAS on one thread for the whole run (the reference peer's matmuls):
    limiting and restoring it around each call woke its threads, which then spun for
    ~80 ms beside the next peer's numba threads."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    own = [lib.filepath for lib in blas.lib_controllers if "numpy" in lib.filepath]
    if own:
        blas.select(filepath=own).limit(limits=1)


def _glom_pair(dim, levels, side, radius, patch=2, seed=0):
    """A glom-pytorch model and the same model as glomsim (config, weights), or None."""
    try:
        import torch
        from glom_pytorch import Glom
    except ImportError:
        return None
    import glomsim as gs

    torch.manual_seed(seed)
    model = Glom(dim=dim, levels=levels, image_size=side * patch, patch_size=patch,
                 consensus_self=False,
                 local_consensus_radius=0 if math.isinf(radius) else radius).eval()  # fmt: skip
    cfg, w = gs.from_glom_pytorch(model)
    return model, cfg, w


def bench_config(name, threads, repeats, with_reference, warm_seconds=0.05):
    import glomsim as gs
    from glomsim import reference
    from glomsim.inputs import prepare_init

    dim, levels, side, radius, iters = CONFIGS[name]
    n = side * side
    k = (
        n
        if math.isinf(radius)
        else sum(1 for dy in range(-3, 4) for dx in range(-3, 4) if math.hypot(dy, dx) <= radius)
    )
    pair = _glom_pair(dim, levels, side, radius)
    rng = np.random.default_rng(0)
    if pair is not None:
        model, cfg, w = pair
        img = rng.standard_normal((3, side * 2, side * 2)).astype(np.float32)
    else:
        cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(side, side), steps=iters,
                            attention=gs.Attention(kernel="glom_pytorch", radius=radius,
                                                   include_self=False))  # fmt: skip
        w = gs.random_weights(cfg, seed=0, patch_size=2)
        img = rng.standard_normal((3, side * 2, side * 2)).astype(np.float32)
    cfg = cfg.replace(steps=iters)
    _set_threads(threads)
    gs.simulate(cfg, w, inputs=img, steps=1)  # compile outside the timings
    fns = {"glomsim": lambda: gs.simulate(cfg, w, inputs=img)}
    if pair is not None:
        import torch

        x = torch.from_numpy(img)[None]

        def torch_run():
            with torch.no_grad():
                model(x, iters=iters)

        torch_run()
        fns["glom_pytorch"] = torch_run
        fns.update(_jax_peers(model, cfg, w, img, iters, radius))
    if with_reference:
        tokens = gs.simulate(cfg, w, inputs=img, steps=0).input.values
        init = prepare_init(cfg, w, None)

        def ref_run():
            # numpy's BLAS is on one thread for the whole benchmark (_numpy_blas_single):
            # OpenBLAS's threads spin after a call and, interleaved, would slow the next
            # peer's numba threads (the reference's speed is not the point)
            reference.simulate(cfg, w, tokens, init, steps=2)

        fns["reference"] = ref_run
    # short calls get more rounds, so that all rounds together take about a second (5 to
    # 50 rounds): five samples of a 5 ms call gave medians 30% apart between runs
    t0 = time.perf_counter()
    for fn in fns.values():
        fn()
    rounds = int(min(50, max(repeats, 1.0 / (time.perf_counter() - t0))))
    # each timed call follows ``warm_seconds`` of the same peer's own calls (at least one):
    # right after another peer, the small config's glomsim took 1.90-2.48 ms a call against
    # 1.52-1.75 alone (XLA's and torch's idle threads spin on both cores for a while), and
    # jax_dense 3.15-4.38 against 2.92-3.05 (measured 2026-12-04, 2 threads); every peer
    # is then timed as it runs, the peers still alternating round by round
    warm = {p: fn for p, fn in fns.items() if p != "reference"} if warm_seconds > 0 else None
    med = _median_interleaved(fns, rounds, warm=warm, warm_seconds=warm_seconds)
    per_iter = {p: t / (2 if p == "reference" else iters) for p, t in med.items()}
    fl = flops_per_iteration(dim, levels, n, k)
    executed = glomsim_flops_per_iteration(dim, levels, n, k, iters)
    row = dict(config=name, dim=dim, levels=levels, columns=n, radius=radius, threads=threads,
               warm_seconds=warm_seconds,
               flops_per_iteration=fl, glomsim_executed_flops_per_iteration=executed,
               ms_per_iteration={p: 1e3 * t for p, t in per_iter.items()},
               gflops={p: fl / t / 1e9 for p, t in per_iter.items()},
               glomsim_executed_gflops=executed / per_iter["glomsim"] / 1e9)  # fmt: skip
    for peer in per_iter:
        if peer != "glomsim":
            row[f"speedup_vs_{peer}"] = per_iter[peer] / per_iter["glomsim"]
    row["peak_traced_mb"] = _peak_traced(  # torch's and XLA's allocators are not traced
        {p: fn for p, fn in fns.items() if p != "glom_pytorch" and not p.startswith("jax")}
    )
    return row


def _fma_peak():
    """benchmarks/fma_peak.py, imported from beside this script."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import fma_peak

    return fma_peak


def _fma_floor(row, fma_gflops):
    """Adds to a config's ``row`` what the FMA peak allows: ``floor_ms_per_iteration``,
    glomsim's executed FLOPs at that peak (no implementation of the same work is faster);
    ``fraction_of_fma_peak``; and for each peer ``floor_speedup_vs_<peer>``, the peer's
    time over that floor: the largest speed-up against it that glomsim's work allows."""
    floor = row["glomsim_executed_flops_per_iteration"] / fma_gflops / 1e6
    row["floor_ms_per_iteration"] = floor
    row["fraction_of_fma_peak"] = floor / row["ms_per_iteration"]["glomsim"]
    for peer, ms in row["ms_per_iteration"].items():
        if peer not in ("glomsim", "reference"):
            row[f"floor_speedup_vs_{peer}"] = ms / floor


def _jax_peer():
    """benchmarks/jax_peer.py, imported from beside this script."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import jax_peer

    return jax_peer


def _jax_peers(model, cfg, w, img, iters, radius):
    """``jax_dense`` and ``jax_local`` (benchmarks/jax_peer.py) when jax is importable,
    compiled and checked against glomsim before any timing."""
    jax_peer = _jax_peer()
    if not jax_peer.available():
        return {}
    fns = jax_peer.peers(model, cfg, w, img, iters, radius)
    for fn in fns.values():
        fn()
    return fns


def _start_jax():
    """Start XLA's CPU client (when jax is installed) before any row pins the process:
    XLA sizes its thread pool once, from the cores the process may use then, and a pool
    started inside a 1-thread row kept one thread for the 2-thread rows as well (measured:
    a 2048 x 2048 product at 265 GFLOP/s pinned, 270 after unpinning, 503 in a process
    started on both cores), which had made every 2-thread JAX timing a 1-thread one."""
    if _jax_peer().available():
        import jax
        import jax.numpy as jnp

        jax.jit(lambda x: x + 1)(jnp.zeros(4)).block_until_ready()


def _peak_traced(fns):
    """Peak memory of one call of each peer, MB, as tracemalloc sees it (numpy's
    allocations; torch's allocator is not traced, so glom-pytorch is left out). Run after
    the timings: tracing slows allocation."""
    import tracemalloc

    from glomsim._engine import forget_plans

    peaks = {}
    for name, fn in fns.items():
        forget_plans()  # an idle plan from the timings would hide the run's buffers
        tracemalloc.start()
        fn()
        peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return peaks


def bench_ensemble(threads, repeats, members=256, steps=50):
    """256 small simulations: one batched call against one by one (glomsim, glom-pytorch)."""

    pair = _glom_pair(*_ENSEMBLE_SHAPE, math.inf)
    if pair is not None:
        model, cfg, w = pair
        cfg = cfg.replace(steps=steps)
    else:
        cfg, w = _ensemble_case(steps)
    imgs = _ensemble_images(members)
    _set_threads(threads)
    fns, warm = _ensemble_glomsim_peers(cfg, w, imgs)
    if pair is not None:
        import torch

        xs = [torch.from_numpy(im)[None] for im in imgs]

        def torch_one_by_one():
            with torch.no_grad():
                for x in xs:
                    model(x, iters=steps)

        fns["glom_pytorch_one_by_one"] = torch_one_by_one

        def torch_warm():
            with torch.no_grad():
                model(xs[0], iters=steps)

        warm["glom_pytorch_one_by_one"] = torch_warm
    # at least one full rotation of the order (three peers)
    med = _median_interleaved(fns, max(len(fns), repeats // 2), warm=warm)
    row = dict(config="ensemble", members=members, steps=steps, threads=threads,
               seconds=med, all_seconds=_median_interleaved.last_times)  # fmt: skip
    for peer, t in med.items():
        if peer != "glomsim_ensemble":
            row[f"speedup_vs_{peer}"] = t / med["glomsim_ensemble"]
    # the glomsim pair again in a process without torch: torch and numba share one
    # OpenMP runtime (both load libgomp.so.1; the first load's settings hold), and there
    # the parallel ensemble ran ~1.7x slower interleaved with glom-pytorch than alone
    out = subprocess.run([sys.executable, "-c", _ENSEMBLE_SCRIPT, str(threads), str(members),
                          str(steps), str(max(3, repeats)), str(HERE)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    alone = json.loads(out)
    row["seconds_without_torch"] = alone
    row["speedup_vs_glomsim_one_by_one_without_torch"] = (
        alone["glomsim_one_by_one"] / alone["glomsim_ensemble"]
    )
    return row


_ENSEMBLE_SHAPE = (16, 3, 8)  # dim, levels, grid side


def _ensemble_case(steps):
    """The ensemble's config and weights without glom-pytorch (same shapes and kernel)."""
    import glomsim as gs

    dim, levels, side = _ENSEMBLE_SHAPE
    cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(side, side), steps=steps,
                        attention=gs.Attention(kernel="glom_pytorch", include_self=False))  # fmt: skip
    return cfg, gs.random_weights(cfg, seed=0, patch_size=2)


def _ensemble_images(members):
    side = _ENSEMBLE_SHAPE[2]
    rng = np.random.default_rng(1)
    return rng.standard_normal((members, 3, side * 2, side * 2)).astype(np.float32)


def _ensemble_glomsim_peers(cfg, w, imgs):
    """The glomsim peers of the ensemble benchmark (compiled first) and their short warm-up
    versions (see ``_median_interleaved``)."""
    import glomsim as gs

    gs.simulate_ensemble(cfg, w, inputs=imgs[:2], steps=1)
    gs.simulate(cfg, w, inputs=imgs[0], steps=1)
    fns = {
        "glomsim_ensemble": lambda: gs.simulate_ensemble(cfg, w, inputs=imgs),
        "glomsim_one_by_one": lambda: [gs.simulate(cfg, w, inputs=im) for im in imgs],
    }
    warm = {
        "glomsim_ensemble": lambda: gs.simulate_ensemble(cfg, w, inputs=imgs[:8]),
        "glomsim_one_by_one": lambda: [gs.simulate(cfg, w, inputs=im) for im in imgs[:8]],
    }
    return fns, warm


_ENSEMBLE_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[5])  # this folder
import bench
threads, members, steps, rounds = (int(v) for v in sys.argv[1:5])
bench._numpy_blas_single()
cfg, w = bench._ensemble_case(steps)
imgs = bench._ensemble_images(members)
bench._set_threads(threads)
fns, warm = bench._ensemble_glomsim_peers(cfg, w, imgs)
print(json.dumps(bench._median_interleaved(fns, rounds, warm=warm)))
"""


SCALING_BASE = dict(side=32, dim=32, levels=3)  # what the other two sweeps hold fixed
SCALING_SWEEPS = {
    "columns": ("side", (8, 16, 32, 48, 64, 96, 128)),
    "dim": ("dim", (16, 32, 64, 128, 256)),
    "levels": ("levels", (1, 2, 3, 5, 8)),
}


def bench_scaling(threads, radius=2.0):
    """Time per step against the number of columns (8x8 to 128x128), the dim and the
    number of levels, one at a time from ``SCALING_BASE``, at a fixed radius. Each call
    runs enough steps for ~50 ms, so Python's per-call cost does not count at 8x8."""
    import glomsim as gs

    _set_threads(threads)
    out = {}
    for sweep, (field, values) in SCALING_SWEEPS.items():
        rows = []
        for v in values:
            shape = dict(SCALING_BASE, **{field: v})
            side, dim, levels = shape["side"], shape["dim"], shape["levels"]
            cfg = gs.GlomConfig(levels=levels, dim=dim, grid=(side, side), steps=3,
                                attention=gs.Attention(radius=radius))  # fmt: skip
            w = gs.random_weights(cfg, seed=0)
            gs.simulate(cfg, w, steps=1)  # compiles or loads the kernels on the first shape
            t0 = time.perf_counter()
            gs.simulate(cfg, w, steps=3)  # a rough time, for the number of steps
            steps = int(min(200, max(3, 0.05 / ((time.perf_counter() - t0) / 3))))
            cfg = cfg.replace(steps=steps)
            gs.simulate(cfg, w)
            t = _median_interleaved({"g": lambda cfg=cfg, w=w: gs.simulate(cfg, w)}, 3)["g"]
            rows.append(dict(side=side, columns=side * side, dim=dim, levels=levels,
                             steps=steps, ms_per_step=1e3 * t / steps))  # fmt: skip
        out[sweep] = rows
    # growth against linear in the columns, from 32x32 (the must-show's range)
    cols = out["columns"]
    base = next(r for r in cols if r["side"] == SCALING_BASE["side"])
    for r in cols:
        if r["side"] >= base["side"]:
            r["growth_vs_linear"] = (r["ms_per_step"] / base["ms_per_step"]) / (
                r["columns"] / base["columns"]
            )
    return out


_MEMORY_SCRIPT = """
import sys, tracemalloc, numpy as np, glomsim as gs
side, steps, every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = gs.GlomConfig(levels=5, dim=64, grid=(side, side), steps=steps,
                    attention=gs.Attention(radius=2.0))
w = gs.random_weights(cfg, seed=0)
gs.simulate(cfg, w, steps=2)  # compile (LLVM's own peak is not the run's)
from glomsim._engine import forget_plans
forget_plans()  # the run's buffers count: no idle plan left by the compile run
tracemalloc.start()  # numpy's allocations are traced; numba's small temporaries are not
if every:
    ds = gs.simulate(cfg, w, record_every=every)
else:
    ds = gs.simulate(cfg, w, summaries_only=True)
current, peak = tracemalloc.get_traced_memory()
print(0, peak, sum(v.nbytes for v in ds.data_vars.values()))
"""


def bench_memory(side=32, runs=((200, 1), (200, 10), (200, 0), (2000, 0))):
    """Peak traced memory against what is kept; every=0 is a summaries-only run."""
    rows = []
    for steps, k in runs:
        out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(side), str(steps), str(k)],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        base, peak, kept = (int(v) for v in out)
        rows.append(dict(side=side, steps=steps, record_every=k or None, summaries_only=k == 0,
                         kept_mb=kept / 2**20, peak_growth_mb=(peak - base) / 2**20,
                         ratio=(peak - base) / kept))  # fmt: skip
    return rows


_STARTUP_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import glomsim as gs
t1 = time.perf_counter()
imported = sorted(m for m in ("numba", "xarray", "dask", "torch") if m in sys.modules)
cfg = gs.GlomConfig(levels=5, dim=64, grid=(8, 8), steps=10)
w = gs.random_weights(cfg, seed=0)
times = []
for _ in range(2):
    t = time.perf_counter()
    gs.simulate(cfg, w)
    times.append(time.perf_counter() - t)
print(json.dumps(dict(import_s=t1 - t0, first_s=times[0], second_s=times[1],
                      imported_by_import=imported)))
"""


def bench_startup(repeats=5):
    """``import glomsim`` and a new process's first ``simulate`` against its second, after
    ``glomsim warmup`` (numba's cache on): each in a fresh process, medians."""
    subprocess.run([sys.executable, "-m", "glomsim.cli", "warmup"], check=True, capture_output=True)
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        runs.append(json.loads(out))
    extra = [r["first_s"] - r["second_s"] for r in runs]
    return dict(import_s=statistics.median(r["import_s"] for r in runs),
                first_minus_second_s=statistics.median(extra), first_minus_second_max_s=max(extra),
                imported_by_import=runs[0]["imported_by_import"], runs=runs)  # fmt: skip


def _figure(ncols, width=4.2, height=3.4):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _plot_scaling(scaling, path):
    """Three panels: time per step against columns, dim and levels, per thread count."""
    fig, axes = _figure(3)
    base = SCALING_BASE
    fixed = {
        "columns": f"dim {base['dim']}, {base['levels']} levels",
        "dim": f"{base['side']}x{base['side']} columns, {base['levels']} levels",
        "levels": f"{base['side']}x{base['side']} columns, dim {base['dim']}",
    }
    for ax, (sweep, (_, values)) in zip(axes, SCALING_SWEEPS.items(), strict=True):
        for threads, sweeps in scaling.items():
            rows = sweeps[sweep]
            ax.plot([r[sweep] for r in rows], [r["ms_per_step"] for r in rows], "o-",
                    label=f"{threads} thread(s)")  # fmt: skip
        if sweep != "levels":
            ax.set_xscale("log")
            ax.set_yscale("log")
        if sweep != "columns":  # the swept values themselves as ticks
            ax.minorticks_off()
            ax.set_xticks(values, [str(v) for v in values])
        else:  # linear growth through the 32x32 point of 1 thread
            rows = scaling[min(scaling)]["columns"]
            b = next(r for r in rows if r["side"] == base["side"])
            cs = np.array([rows[0]["columns"], rows[-1]["columns"]])
            ax.plot(cs, b["ms_per_step"] * cs / b["columns"], "k--", lw=0.8, label="linear")
        ax.set_xlabel(sweep)
        ax.set_ylabel("ms per step")
        ax.set_title(f"{fixed[sweep]}, radius 2", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


_PEER_ORDER = ["glomsim", "glom_pytorch", "jax_dense", "jax_local", "reference"]


def _plot_configs(rows, path):
    """The table as bars: ms per iteration of every peer, per config and thread count."""
    rows = [r for r in rows if "ms_per_iteration" in r]
    if not rows:
        return
    peers = sorted({p for r in rows for p in r["ms_per_iteration"]},
                   key=_PEER_ORDER.index)  # fmt: skip
    fig, (ax,) = _figure(1, width=6.5, height=3.6)
    x = np.arange(len(rows))
    width = 0.8 / len(peers)
    for k, peer in enumerate(peers):
        ms = [r["ms_per_iteration"].get(peer, np.nan) for r in rows]
        ax.bar(x + (k - (len(peers) - 1) / 2) * width, ms, width, label=peer)
    ax.set_xticks(x, [f"{r['config']}\n{r['threads']}t" for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per iteration (log)")
    ax.set_title("per-iteration time, same inputs and weights", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few repeats, small configs only")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--only", nargs="*", help="configs (small nets local large ensemble scaling "
                   "memory startup)")  # fmt: skip
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--warm-seconds", type=float, default=0.05,
                   help="the configs' peers: seconds of a peer's own calls before each of "
                   "its timed calls (0: timed right after the previous peer)")  # fmt: skip
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--contention", action="store_true", help="only the contention table "
                   "(benchmarks/contention.py): default vs one thread, busy and torch first")  # fmt: skip
    args = p.parse_args(argv)
    if args.contention:
        return _contention_only(args)
    only = set(args.only or (["small", "local"] if args.quick else
                             list(CONFIGS) + ["ensemble", "scaling", "memory",
                                              "startup"]))  # fmt: skip
    repeats = 2 if args.quick else args.repeats
    if only & (set(CONFIGS) | {"ensemble"}):
        try:
            # before glomsim: importing glomsim sets OMP_WAIT_POLICY=PASSIVE where unset, and
            # torch's OpenMP runtime, started after that, waited passively as well, which
            # made glom-pytorch 10-20% slower on the small config; torch keeps its defaults
            import torch  # noqa: F401
        except ImportError:
            pass
        _start_jax()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peaks = {t: gemm_peak(t) for t in args.threads}
    result = dict(gemm_peak_gflops={t: p for t, (p, _) in peaks.items()},
                  gemm_peak_sources={t: src for t, (_, src) in peaks.items()},
                  fma_peak_gflops={t: _fma_peak().peak(t) for t in args.threads},
                  blas_environment={k: v for k, v in os.environ.items()
                                    if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))},
                  rows=[])  # fmt: skip
    _numpy_blas_single()
    time.sleep(0.5)  # let the GEMM peak's BLAS threads stop spinning
    print(
        "float32 GEMM peak: "
        + ", ".join(f"{t} thread(s) {g:.0f} GFLOP/s" for t, g in result["gemm_peak_gflops"].items())
        + " (best of "
        + "; ".join(f"{t}t " + ", ".join(f"{k} {v:.0f}" for k, v in src.items())
                    for t, src in result["gemm_peak_sources"].items())
        + "); FMA peak (registers only, benchmarks/fma_peak.py): "
        + ", ".join(f"{t} thread(s) {g:.0f} GFLOP/s" for t, g in result["fma_peak_gflops"].items())
    )  # fmt: skip
    for name in CONFIGS:
        if name not in only:
            continue
        for threads in args.threads:
            row = bench_config(name, threads, repeats, not args.no_reference and name != "large",
                               args.warm_seconds)  # fmt: skip
            peak = result["gemm_peak_gflops"][threads]
            row["fraction_of_gemm_peak"] = row["glomsim_executed_gflops"] / peak  # executed
            dim, levels, side, _, iters = CONFIGS[name]
            net_bound_ms = glomsim_net_flops_per_iteration(dim, levels, side**2, iters) / peak / 1e6
            row["net_bound_ms_per_iteration"] = net_bound_ms
            row["over_net_bound"] = row["ms_per_iteration"]["glomsim"] / net_bound_ms
            _fma_floor(row, result["fma_peak_gflops"][threads])
            result["rows"].append(row)
            ms = row["ms_per_iteration"]
            print(f"{name:>6} {threads}t: glomsim {ms['glomsim']:.2f} ms/it "
                  f"({row['glomsim_executed_gflops']:.0f} GFLOP/s executed, "
                  f"{100 * row['fraction_of_gemm_peak']:.0f}% of GEMM peak, "
                  f"x{row['over_net_bound']:.2f} its net-bound limit; "
                  f"{row['gflops']['glomsim']:.0f} GFLOP/s of the peers' work)"
                  + "".join(f", {k[11:]} x{v:.1f}" for k, v in row.items()
                            if k.startswith("speedup_vs_"))
                  + "; peak MB " + ", ".join(f"{k} {v:.1f}"
                                             for k, v in row["peak_traced_mb"].items()))  # fmt: skip
            print(f"{'':>6}     {100 * row['fraction_of_fma_peak']:.0f}% of the FMA peak; "
                  f"at that peak x" + ", x".join(f"{v:.2f} {k[17:]}" for k, v in row.items()
                                                 if k.startswith("floor_speedup_vs_")))  # fmt: skip
    if "ensemble" in only:
        for threads in args.threads:
            row = bench_ensemble(threads, repeats, members=32 if args.quick else 256)
            result["rows"].append(row)
            alone = row["seconds_without_torch"]
            print(
                f"ensemble {threads}t: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in row["seconds"].items())
                + "".join(
                    f", {k[11:]} x{v:.1f}"
                    for k, v in row.items()
                    if k.startswith("speedup_vs_") and not k.endswith("without_torch")
                )
                + f"; without torch in the process: ensemble {alone['glomsim_ensemble']:.2f} s, "
                f"one by one {alone['glomsim_one_by_one']:.2f} s, "
                f"x{row['speedup_vs_glomsim_one_by_one_without_torch']:.1f}"
            )
    if "scaling" in only:
        scaling = {t: bench_scaling(t) for t in args.threads}
        result["scaling"] = scaling
        for t, sweeps in scaling.items():
            cols = sweeps["columns"]
            print(f"scaling {t}t, columns: " + ", ".join(
                f"{r['columns']} {r['ms_per_step']:.2f} ms"
                + (f" ({r['growth_vs_linear']:.2f}x lin)" if "growth_vs_linear" in r else "")
                for r in cols))  # fmt: skip
            for sweep in ("dim", "levels"):
                print(f"scaling {t}t, {sweep}: " + ", ".join(
                    f"{r[sweep]} {r['ms_per_step']:.2f} ms" for r in sweeps[sweep]))  # fmt: skip
        _plot_scaling(scaling, out / "scaling.png")
    if "memory" in only:
        result["memory"] = bench_memory()
        for r in result["memory"]:
            mode = "summaries_only" if r["summaries_only"] else f"record_every={r['record_every']}"
            print(
                f"memory {r['steps']} steps, {mode}: kept {r['kept_mb']:.1f} MB, "
                f"peak grew {r['peak_growth_mb']:.1f} MB ({r['ratio']:.2f}x)"
            )
    if "startup" in only:
        r = result["startup"] = bench_startup(3 if args.quick else 7)
        print(
            f"startup: import glomsim {r['import_s']:.2f} s (imports "
            f"{', '.join(r['imported_by_import']) or 'none of numba, xarray, dask, torch'}); "
            f"after warmup a new process's first simulate costs {r['first_minus_second_s']:.2f} s "
            f"more than its second (max {r['first_minus_second_max_s']:.2f} s)"
        )
    _plot_configs(result["rows"], out / "configs.png")
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {out / 'bench.json'}")
    return result


def _contention_only(args):
    """``--contention``: the table of benchmarks/contention.py (``--only`` picks configs,
    small and local by default), written to bench.json as ``contention``."""
    sys.path.insert(0, str(HERE))
    import contention

    configs = tuple(args.only or ["small", "local"])
    rows = contention.run_contention(configs, rounds=5 if args.quick else 30)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = dict(contention=rows)
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {out / 'bench.json'}")
    return result


if __name__ == "__main__":
    main()
