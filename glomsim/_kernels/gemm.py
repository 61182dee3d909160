"""The nets' matrix products, against weights packed once per run.

A net task multiplies a few dozen to a few hundred rows by weights that do not change
during a run. BLAS packs both operands into its own layout on every call: on 32-row
products (the small benchmark config, dim 64) OpenBLAS's Haswell kernels reached 44-51
GFLOP/s of a core's ~95, a third of the time in packing. Here the weights are packed
once, when the run's nets are stacked (:func:`pack_panels`): a (K, N) matrix becomes P
panels (P, K, W) of W = 2 SIMD vectors of columns, the last padded with zeros. The
product then runs a register-blocked tile (:func:`_tile`, written in LLVM IR): 6 rows
by one panel, 12 vector accumulators, each step of k two vector loads of the panel,
six broadcasts of the rows' k-th entries and twelve fused multiply-adds, the shape of
BLAS's own micro-kernels, without their packing. Measured on one core of an AMD EPYC
(Zen 3, AVX2), a 32 x 64 by 64 x 256 product and its 32 x 256 by 256 x 64 partner:
21-25 us against 41-45 us through numba's ``np.dot`` (OpenBLAS 0.3.30, one thread);
256 rows of dim 256 (K up to 1024): 2.8 against 3.2 ms; 90-95 GFLOP/s at every size.

Vectors are 512 bits (16 float32 or 8 float64) where the CPU numba compiles for has
AVX-512F, else 256 (AVX2's 8 float32 or 4 float64): :data:`.jit.VECTOR_BITS`, which
``GLOMSIM_VECTOR_BITS`` overrides. Zen 5 runs 512-bit fused multiply-adds at twice the
rate of 256-bit ones: the same 32 x 64 pair took 8.3 against 16.3 us on one core of an
AMD EPYC (Zen 5), 245-264 GFLOP/s, where numpy's OpenBLAS (Haswell kernels, 256 bits)
peaks at 136-138. A CPU without AVX-512 would split a 512-bit vector in two (correct,
slower). Every entry of the output is its own sum over k in order, so results never
depend on the number of threads or on where a tile starts.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import VECTOR_BITS, njit

__all__ = ["ROWS", "VECTORS", "LANES", "ALIGN", "panel_width", "padded", "aligned_empty",
           "aligned", "pack_panels", "gemm_packed"]  # fmt: skip

#: Rows of a full tile (:data:`_tile6`): 6 rows x 2 vectors = 12 accumulators, with the
#: panel's 2 vectors and a broadcast 15 of the 16 vector registers of AVX2 (of 32 with
#: AVX-512).
ROWS = 6
#: SIMD vectors across a panel.
VECTORS = 2
#: Entries of one vector of :data:`.jit.VECTOR_BITS` bits, by dtype.
LANES = {np.dtype(np.float32): VECTOR_BITS // 32, np.dtype(np.float64): VECTOR_BITS // 64}


def panel_width(dtype) -> int:
    """Columns of one packed panel for ``dtype``: two vectors (32 float32 or 16 float64
    with 512-bit vectors, 16 or 8 with 256-bit ones)."""
    return LANES[np.dtype(dtype)] * VECTORS


def padded(n: int, dtype) -> int:
    """``n`` columns rounded up to whole panels of ``dtype``.

    Examples
    --------
    >>> w = panel_width(np.float32)
    >>> padded(w, np.float32) == w, padded(w + 1, np.float32) == 2 * w, padded(0, np.float32)
    (True, True, 0)
    """
    w = panel_width(dtype)
    return -(-int(n) // w) * w


#: Bytes every buffer the products and the step's loops read start on: a cache line, so
#: that no 512-bit load of a panel or of a state's row is split across two lines.
ALIGN = 64


def aligned_empty(shape, dtype, fill=None) -> np.ndarray:
    """An uninitialised C-contiguous array (or filled with ``fill``) whose data start on a
    multiple of :data:`ALIGN` bytes. numpy's allocations start 16 bytes past a page or at
    any multiple of 16: products against packed weights and buffers at random offsets
    ran at 228-249 GFLOP/s from one offset to another (256 x 256 by 256 x 1024 on one
    Zen 5 core), 248 aligned.

    Examples
    --------
    >>> a = aligned_empty((3, 5), np.float32, fill=0)
    >>> a.ctypes.data % ALIGN, a.shape, a.flags.c_contiguous, float(a.sum())
    (0, (3, 5), True, 0.0)
    """
    dt = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    out = raw[start : start + nbytes].view(dt).reshape(shape)
    if fill is not None:
        out[...] = fill
    return out


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself when C-contiguous and aligned to :data:`ALIGN` bytes, else such a copy."""
    if a.flags.c_contiguous and a.ctypes.data % ALIGN == 0:
        return a
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def pack_panels(w: np.ndarray, dtype) -> np.ndarray:
    """Weights (..., K, N) as panels (..., P, K, W) in ``dtype``, P = ceil(N / W), the
    columns beyond N zero (so they add nothing and their outputs are zero).

    Examples
    --------
    >>> w = np.arange(6.0).reshape(2, 3)
    >>> p = pack_panels(w, np.float64)
    >>> p.shape == (1, 2, panel_width(np.float64)), p[0, :, :3].tolist()
    (True, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    >>> float(abs(p[0, :, 3:]).max())
    0.0
    """
    w = np.asarray(w)
    *lead, K, N = w.shape
    W = panel_width(dtype)
    P = -(-N // W)
    full = np.zeros((*lead, K, P * W), dtype=dtype)
    full[..., :N] = w
    out = full.reshape(*lead, K, P, W)
    return aligned(np.moveaxis(out, -2, -3))


def _tile(rows: int):
    """An intrinsic computing ``rows`` rows by one panel: c[c0 + r ldc + j] = sum over k
    of a[a0 + r lda + k] bp[b0 + k W + j], for r < rows, j < W, k < K (offsets in
    entries of the arrays' data, all three of one float dtype, C-contiguous)."""

    @intrinsic
    def tile(typingctx, a, a0, lda, bp, b0, k, c, c0, ldc):
        arrays = (a, bp, c)
        if not all(isinstance(x, types.Array) and x.layout == "C" for x in arrays):
            return None
        if len({x.dtype for x in arrays}) != 1 or a.dtype not in (types.float32, types.float64):
            return None

        def codegen(context, builder, signature, args):
            _emit_tile(context, builder, signature, args, rows)
            return context.get_dummy_value()

        return types.void(a, a0, lda, bp, b0, k, c, c0, ldc), codegen

    return tile


def _emit_tile(context, builder, signature, args, rows):
    """The IR of one tile (see :func:`_tile`): a loop over k carrying rows x VECTORS
    accumulators as phis, then their stores (zeros when K is 0)."""
    a, a0, lda, bp, b0, K, c, c0, ldc = args
    aty, bty, cty = signature.args[0], signature.args[3], signature.args[6]
    ap = context.make_array(aty)(context, builder, a).data
    bpp = context.make_array(bty)(context, builder, bp).data
    cp = context.make_array(cty)(context, builder, c).data
    single = aty.dtype == types.float32
    lanes = LANES[np.dtype(np.float32 if single else np.float64)]
    vt = ir.VectorType(ir.FloatType() if single else ir.DoubleType(), lanes)
    i64 = ir.IntType(64)
    align = 4 if single else 8
    name = f"llvm.fmuladd.v{lanes}{'f32' if single else 'f64'}"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3), name)
    zero = ir.Constant(vt, [0.0] * lanes)
    splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)

    def const(n):
        return ir.Constant(i64, n)

    def vec_ptr(base, offset):
        return builder.bitcast(builder.gep(base, [offset]), vt.as_pointer())

    entry = builder.block
    loop = builder.append_basic_block("tile.loop")
    done = builder.append_basic_block("tile.done")
    builder.cbranch(builder.icmp_signed(">", K, const(0)), loop, done)
    builder.position_at_end(loop)
    kk = builder.phi(i64)
    kk.add_incoming(const(0), entry)
    acc = [[builder.phi(vt) for _ in range(VECTORS)] for _ in range(rows)]
    boff = builder.add(b0, builder.mul(kk, const(lanes * VECTORS)))
    panel = [builder.load(vec_ptr(bpp, builder.add(boff, const(v * lanes))), align=align)
             for v in range(VECTORS)]  # fmt: skip
    new = []
    for r in range(rows):
        aoff = builder.add(builder.add(a0, builder.mul(const(r), lda)), kk)
        x = builder.load(builder.gep(ap, [aoff]), align=align)
        one = builder.insert_element(
            ir.Constant(vt, ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
        )
        splat = builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), splat_mask)
        new.append([builder.call(fma, [splat, panel[v], acc[r][v]]) for v in range(VECTORS)])
    knext = builder.add(kk, const(1))
    kk.add_incoming(knext, loop)
    for r in range(rows):
        for v in range(VECTORS):
            acc[r][v].add_incoming(zero, entry)
            acc[r][v].add_incoming(new[r][v], loop)
    builder.cbranch(builder.icmp_signed("<", knext, K), loop, done)
    builder.position_at_end(done)
    outs = [[builder.phi(vt) for _ in range(VECTORS)] for _ in range(rows)]  # phis first
    for r in range(rows):
        for v in range(VECTORS):
            outs[r][v].add_incoming(zero, entry)
            outs[r][v].add_incoming(new[r][v], loop)
            coff = builder.add(builder.add(c0, builder.mul(const(r), ldc)), const(v * lanes))
            builder.store(outs[r][v], vec_ptr(cp, coff), align=align)


_tile1, _tile2, _tile3, _tile4, _tile5, _tile6 = (_tile(r) for r in range(1, 7))


# not inlined: one compiled function per dtype for every product of a step (inlined, its
# 22 tiles a net made a cold start's first small run 5.7 s slower)
@njit(internal=True)
def gemm_packed(a, bp, c):
    """c[:, :P W] = a[:, :K] @ B for rows ``a`` (m, >= K), B packed by
    :func:`pack_panels` as ``bp`` (P, K, W) and ``c`` (m, >= P W); all three
    C-contiguous, of one dtype.

    Rows go six at a time; what is left is one tile of 3-5 rows, or, for 1 or 2 left
    over (and at least 7 rows), the last 7 or 8 rows as tiles of 4 and 3 or 4: a tile of
    1 or 2 rows waits on its few accumulators' latency (32 rows: 5 x 6 + 2 took 10% more
    than 4 x 6 + 2 x 4)."""
    m = a.shape[0]
    P = bp.shape[0]
    W = bp.shape[2]
    ldc = np.int64(c.shape[1])
    lda = np.int64(a.shape[1])
    K = np.int64(bp.shape[1])
    n6 = m // ROWS
    rest = m - ROWS * n6
    if rest < 3 and n6 > 0 and rest > 0:
        n6 -= 1
        rest += ROWS
    first = 4 if rest > 6 else rest  # the remainder's tiles: first, then rest - first
    for p in range(P):
        b0 = np.int64(p * K * W)
        for i in range(0, ROWS * n6, ROWS):
            _tile6(a, np.int64(i * lda), lda, bp, b0, K, c, np.int64(i * ldc + p * W), ldc)
        r0 = ROWS * n6
        if first > 0:
            _rest_tile(first, a, np.int64(r0 * lda), lda, bp, b0, K, c,
                       np.int64(r0 * ldc + p * W), ldc)  # fmt: skip
        if rest > first:
            r0 += first
            _rest_tile(rest - first, a, np.int64(r0 * lda), lda, bp, b0, K, c,
                       np.int64(r0 * ldc + p * W), ldc)  # fmt: skip


@njit(inline="always")
def _rest_tile(rows, a, a0, lda, bp, b0, K, c, c0, ldc):
    """One tile of ``rows`` (1-5) rows."""
    if rows == 1:
        _tile1(a, a0, lda, bp, b0, K, c, c0, ldc)
    elif rows == 2:
        _tile2(a, a0, lda, bp, b0, K, c, c0, ldc)
    elif rows == 3:
        _tile3(a, a0, lda, bp, b0, K, c, c0, ldc)
    elif rows == 4:
        _tile4(a, a0, lda, bp, b0, K, c, c0, ldc)
    else:
        _tile5(a, a0, lda, bp, b0, K, c, c0, ldc)
