"""The nets' primitives: an activation with its bias, and one net's forward on a block
of rows (two matrix products against packed weights, :mod:`.gemm`, the activation
between).

GELU is the costliest elementwise step: libm's erf costs 5-15 ns an element and does not
vectorise. In float32 :func:`gelu_rows` uses a branch-free rational approximation of erf
(the minimax odd/even rational on [-4, 4] used by Eigen and XLA; max error 4e-7, below
float32's resolution of the GELU output) that LLVM vectorises: about 0.3 ns an element.
float64 keeps libm's erf so that float64 runs match the reference to 1e-10.

The sine (SIREN units) has the same problem and the same answer: in float32
:func:`sin_rows` reduces its argument by multiples of pi (Cody-Waite, pi in three parts:
exact for |z| < 2^15) and evaluates sin's Taylor polynomial to degree 11 on [-pi/2, pi/2]
(error < 6e-8), branch-free; float64 keeps libm's sin. ReLU is a plain maximum.

An activation is one primitive here, one id in :mod:`.ids` and one branch in
:func:`net_rows`; its readable twin lives in :mod:`glomsim.reference`.
"""

import math

import numpy as np

from .gemm import gemm_packed
from .ids import GELU, RELU
from .jit import FMA, njit, variant

#: :func:`net_rows` as written runs every activation; its lean variant
#: (:data:`net_rows_lean`) runs GELU only, so GELU runs never compile the others.
FULL = True

#: float32 polynomial coefficients: erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4] (outside,
#: erf = +-1 to float32 precision), then constants, then exp(x) for x <= 0 as 2^n 2^f
#: (see :func:`glomsim._kernels.attention.exp_row`).
POLY_F32 = np.array(
    [
        -1.60960333262415e-02,
        -2.95459980854025e-03,
        -7.34990630326855e-04,
        -5.69250639462346e-05,
        -2.10102402082508e-06,
        2.77068142495902e-08,
        -2.72614225801306e-10,
        -1.42647390514189e-02,
        -7.37332916720468e-03,
        -1.68282697438203e-03,
        -2.13374055278905e-04,
        -1.45660718464996e-05,
        -4.0,
        4.0,
        0.5,
        0.7071067811865476,
        1.0,
        # 17..: exp(x) for x <= 0 as 2^n 2^f
        1.4426950408889634,
        0.6931471805599453,
        1 / 2,
        1 / 6,
        1 / 24,
        1 / 120,
        1 / 720,
        -87.0,
        # 25..: sin(z) = (-1)^k sin(r), k = round(z / pi), r = z - k pi (pi in 3 parts),
        # sin(r) = r + r^3 (s3 + r^2 (s5 + r^2 (s7 + r^2 (s9 + r^2 s11))))
        1 / math.pi,
        3.140625,
        9.67502593994140625e-4,
        1.509957990978376432e-7,
        -1 / 6,
        1 / 120,
        -1 / 5040,
        1 / 362880,
        -1 / 39916800,
        2.0,
    ],
    dtype=np.float32,
)


@njit(fastmath=FMA, internal=True)
def gelu_rows(h, b, fast, c, gc):
    """h <- gelu(h + b) in place; ``fast`` selects the vectorised rational erf (float32,
    ``c`` = POLY_F32), else libm's erf with ``gc`` = [0.5, 1/sqrt(2), 1] in h's dtype.
    Multiply-adds are fused: the polynomials then cost 0.26 instead of 0.38 ns an
    element, and round once instead of twice."""
    m, n = h.shape
    if fast:
        a1, a3, a5, a7, a9, a11, a13 = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        b0, b2, b4, b6, b8 = c[7], c[8], c[9], c[10], c[11]
        lo, hi, half, inv_sqrt2, one = c[12], c[13], c[14], c[15], c[16]
        for i in range(m):
            row = h[i]
            for k in range(n):
                z = row[k] + b[k]
                x = z * inv_sqrt2
                x = hi if x > hi else x
                x = lo if x < lo else x
                x2 = x * x
                p = ((((((a13 * x2 + a11) * x2 + a9) * x2 + a7) * x2 + a5) * x2 + a3) * x2 + a1) * x
                q = (((b8 * x2 + b6) * x2 + b4) * x2 + b2) * x2 + b0
                row[k] = half * z * (one + p / q)
    else:
        half, inv_sqrt2, one = gc[0], gc[1], gc[2]
        for i in range(m):
            row = h[i]
            for k in range(n):
                z = row[k] + b[k]
                row[k] = half * z * (one + math.erf(z * inv_sqrt2))


@njit(fastmath=FMA, internal=True)
def relu_rows(h, b, gc):
    """h <- max(h + b, 0) in place (``gc`` as for :func:`gelu_rows`: its 1 gives a zero
    of h's dtype; a Python 0 would make the loop run in float64)."""
    m, n = h.shape
    zero = gc[2] - gc[2]
    for i in range(m):
        row = h[i]
        for k in range(n):
            z = row[k] + b[k]
            row[k] = z if z > zero else zero


@njit(fastmath=FMA)
def sin_rows(h, b, fast, c):
    """h <- sin(h + b) in place; ``fast`` (float32) selects the vectorised reduction and
    polynomial with ``c`` = POLY_F32 (see the module's docstring), else libm's sin."""
    m, n = h.shape
    if fast:
        inv_pi, p1, p2, p3 = c[25], c[26], c[27], c[28]
        s3, s5, s7, s9, s11 = c[29], c[30], c[31], c[32], c[33]
        half, one, two = c[14], c[16], c[34]
        for i in range(m):
            row = h[i]
            for k in range(n):
                z = row[k] + b[k]
                q = np.floor(z * inv_pi + half)  # float32; math.floor gives an int64
                r = ((z - q * p1) - q * p2) - q * p3
                r2 = r * r
                s = r + r * r2 * (s3 + r2 * (s5 + r2 * (s7 + r2 * (s9 + r2 * s11))))
                odd = q - two * np.floor(q * half)  # 0 or 1
                row[k] = (one - two * odd) * s
    else:
        for i in range(m):
            row = h[i]
            for k in range(n):
                row[k] = math.sin(row[k] + b[k])


# inlined into the step (as its code was before it had a name): no function of its own to
# compile on a cold start
@njit(inline="always")
def net_rows(x, w1, b1, w2, act, maths, h, y):
    """y <- act(x @ w1 + b1) @ w2 for a block of rows, ``act`` an activation id
    (:mod:`.ids`; the last bias is left to the caller, which adds it once over the hidden
    chunks), the weights packed (:func:`glomsim._engine.nets.pack_net`: w1 (P1, D, W),
    b1 (Hp,), w2 (P2, Hp, W)); ``h`` (rows, Hp) is scratch for the hidden units, ``y``
    (rows, P2 W) receives the outputs in its first D columns. Single-threaded."""
    fast, poly, gelu = maths
    gemm_packed(x, w1, h)
    if FULL:
        if act == GELU:
            gelu_rows(h, b1, fast, poly, gelu)
        elif act == RELU:
            relu_rows(h, b1, gelu)
        else:
            sin_rows(h, b1, fast, poly)
    else:  # the lean variant
        gelu_rows(h, b1, fast, poly, gelu)
    gemm_packed(h, w2, y)


#: The lean variant: GELU only (see :data:`FULL`).
net_rows_lean = variant(net_rows, "_lean", FULL=False)
