"""This machine's float32 arithmetic peak: fused multiply-adds on registers only.

The GEMM peak of ``bench.py`` is the best of three real products on 2048 x 2048
matrices; each of them also waits on memory (glomsim's packed product reads a 256 KB
panel from L2 for every tile there). The FMA peak here is what the cores' FMA units do
with nothing else in the way: ``ACCUMULATORS`` independent vectors of
:data:`glomsim._kernels.jit.VECTOR_BITS` bits, each updated ``acc = acc * x + b`` once a
step (the recurrence cannot be simplified, and the accumulators start apart so they
cannot be merged), written in LLVM IR like the packed product's tile. No product of
glomsim's executed FLOPs can run faster, so ``executed FLOPs / FMA peak`` is a floor on
any implementation's time, and a peer's time over that floor is the largest speed-up
anyone doing glomsim's work could show against it.

    python benchmarks/fma_peak.py          # GFLOP/s on 1 and 2 threads
"""

from __future__ import annotations

import functools
import time

import numpy as np

#: Independent accumulators: at least latency x FMA units (4 x 2 on Zen 5), and with the
#: splat and b within AVX-512's 32 registers (12 gave the same rate, 262-264 against
#: 267-270 GFLOP/s on one Zen 5 core).
ACCUMULATORS = 24


@functools.cache
def kernels():
    """(chain, parallel): ``chain(n, x)`` runs ``n`` steps on one thread and returns the
    sum of every accumulator's first lane; ``parallel(n, x, out)`` runs one chain per
    entry of ``out`` (thread t starts from x + t 1e-6) in a parallel loop."""
    import numba
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    from glomsim._kernels.jit import VECTOR_BITS

    lanes = VECTOR_BITS // 32

    @intrinsic
    def fma_chain(typingctx, n, x):
        def codegen(context, builder, signature, args):
            steps, start = args
            vt = ir.VectorType(ir.FloatType(), lanes)
            i64, i32 = ir.IntType(64), ir.IntType(32)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt] * 3), f"llvm.fma.v{lanes}f32"
            )
            one = builder.insert_element(ir.Constant(vt, ir.Undefined), start, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(
                one,
                ir.Constant(vt, ir.Undefined),
                ir.Constant(ir.VectorType(i32, lanes), [0] * lanes),
            )
            b = builder.fadd(splat, ir.Constant(vt, [0.5] * lanes))
            entry = builder.block
            loop = builder.append_basic_block("fma.loop")
            done = builder.append_basic_block("fma.done")
            builder.cbranch(builder.icmp_signed(">", steps, ir.Constant(i64, 0)), loop, done)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(ir.Constant(i64, 0), entry)
            acc = [builder.phi(vt) for _ in range(ACCUMULATORS)]
            new = [builder.call(fma, [a, splat, b]) for a in acc]
            knext = builder.add(k, ir.Constant(i64, 1))
            k.add_incoming(knext, loop)
            starts = [ir.Constant(vt, [float(j + 1e-3 * lane) for lane in range(lanes)])
                      for j in range(ACCUMULATORS)]  # fmt: skip
            for a, a_new, a0 in zip(acc, new, starts, strict=True):
                a.add_incoming(a0, entry)
                a.add_incoming(a_new, loop)
            builder.cbranch(builder.icmp_signed("<", knext, steps), loop, done)
            builder.position_at_end(done)
            lasts = [builder.phi(vt) for _ in new]  # a block's phis come first
            total = ir.Constant(ir.FloatType(), 0.0)
            for last, a_new, a0 in zip(lasts, new, starts, strict=True):
                last.add_incoming(a0, entry)
                last.add_incoming(a_new, loop)
                total = builder.fadd(total, builder.extract_element(last, ir.Constant(i32, 0)))
            return total

        return types.float32(types.int64, types.float32), codegen

    @numba.njit(cache=False)
    def chain(n, x):
        return fma_chain(n, x)

    @numba.njit(parallel=True, cache=False)
    def parallel(n, x, out):
        for t in numba.prange(out.shape[0]):
            out[t] = fma_chain(n, x + np.float32(t) * np.float32(1e-6))

    return chain, parallel


def emulated(n: int, x: float) -> float:
    """What ``chain(n, x)`` returns, step by step in numpy: each fused multiply-add in
    float64 (exact: a product of two float32 fits a float64's mantissa) rounded to
    float32, which differs from a true fused operation only by a double rounding."""
    x = np.float32(x)
    b = np.float32(x + np.float32(0.5))
    acc = np.arange(ACCUMULATORS, dtype=np.float32)
    for _ in range(n):
        acc = (acc.astype(np.float64) * np.float64(x) + np.float64(b)).astype(np.float32)
    return float(acc.astype(np.float64).sum())


def peak(threads: int, steps: int = 20_000_000, repeats: int = 7) -> float:
    """The best rate of ``repeats`` runs of ``steps`` steps on each of ``threads``
    numba threads, GFLOP/s (two FLOPs a lane per multiply-add)."""
    import numba

    from glomsim._kernels.jit import VECTOR_BITS

    chain, parallel = kernels()
    out = np.zeros(threads, np.float32)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        run = (lambda: chain(steps, np.float32(0.999))) if threads == 1 else (
            lambda: parallel(steps, np.float32(0.999), out))  # fmt: skip
        run()
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
    finally:
        numba.set_num_threads(before)
    flops = threads * steps * ACCUMULATORS * (VECTOR_BITS // 32) * 2
    return flops / best / 1e9


if __name__ == "__main__":
    for t in (1, 2):
        print(f"{t} thread(s): {peak(t):.0f} GFLOP/s")
