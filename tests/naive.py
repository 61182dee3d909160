"""Naive, loop-by-loop oracles for the numba kernels (stumpy's habit).

Deliberately written differently from both the kernels and glomsim.reference: one
column and one neighbour at a time, in float64 with ``math`` functions.
"""

import math

import numpy as np

SELF_SCORE = -5e-4


def gelu(z):
    return 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))


def mlp(x, w1, b1, w2, b2):
    n, d = x.shape
    h = w1.shape[1]
    out = np.zeros((n, w2.shape[1]))
    for i in range(n):
        hidden = [gelu(sum(x[i, k] * w1[k, j] for k in range(d)) + b1[j]) for j in range(h)]
        for o in range(w2.shape[1]):
            out[i, o] = sum(hidden[j] * w2[j, o] for j in range(h)) + b2[o]
    return out


def neighbours(positions, i, radius, drop_self):
    out = []
    for j in range(len(positions)):
        dy = positions[i][0] - positions[j][0]
        dx = positions[i][1] - positions[j][1]
        if math.sqrt(dy * dy + dx * dx) <= radius and not (drop_self and i == j):
            out.append(j)
    return out


def attend(x, positions, kernel, beta=1.0, epsilon=None, radius=math.inf, include_self=True):
    """Attention contribution, one column at a time."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    out = np.zeros_like(x)
    drop_self = (not include_self) and kernel != "glom_pytorch"
    for i in range(n):
        nb = neighbours(positions, i, radius, drop_self)
        xi = x[i]
        if kernel == "bounded":
            close = [j for j in nb if math.dist(xi, x[j]) <= epsilon * (1 + 1e-9)]
            if not close:
                out[i] = xi
            else:
                out[i] = sum(x[j] for j in close) / len(close)
            continue
        if not nb:
            out[i] = xi
            continue
        scores = []
        for j in nb:
            xj = x[j]
            if kernel == "dot":
                s = beta * float(np.dot(xi, xj))
            elif kernel == "cosine":
                ni, nj = math.hypot(*xi), math.hypot(*xj)
                s = beta * float(np.dot(xi, xj)) / (ni * nj) if ni > 0 and nj > 0 else 0.0
            elif kernel == "gaussian":
                s = -beta * math.dist(xi, xj) ** 2
            elif kernel == "glom_pytorch":
                if j == i and not include_self:
                    s = SELF_SCORE
                else:
                    s = beta * float(np.dot(xi, xj)) / max(math.hypot(*xj), 1e-12) / math.sqrt(d)
            scores.append(s)
        m = max(scores)
        e = [math.exp(s - m) for s in scores]
        z = sum(e)
        out[i] = sum(ej / z * x[j] for ej, j in zip(e, nb, strict=False))
    return out


def combine(prev, bu, td, att, w, norm):
    parts = [(w[0], bu), (w[1], td), (w[2], prev), (w[3], att)]
    total = sum(wc for wc, c in parts if wc > 0)
    out = sum(wc * np.asarray(c, dtype=np.float64) for wc, c in parts if wc > 0) / total
    for i in range(out.shape[0]):
        row = out[i]
        if norm == "l2":
            nrm = math.sqrt(sum(v * v for v in row))
            out[i] = row / nrm if nrm > 0 else 0.0
        elif norm == "layernorm":
            mu = sum(row) / len(row)
            var = sum((v - mu) ** 2 for v in row) / len(row)
            out[i] = (row - mu) / math.sqrt(var + 1e-5)
    return out


def frame_at(t, steps_per_frame, n_frames):
    """The frame step t reads: count the frames shown before it, one step at a time."""
    frame, shown = 0, 0
    for _ in range(1, t):
        shown += 1
        if shown == steps_per_frame and frame < n_frames - 1:
            frame, shown = frame + 1, 0
    return frame


def rms_and_change(states):
    """Per step and level: RMS over (column, feature) of E_t and of E_t - E_{t-1} (NaN at
    the first step), in float64, one number at a time."""
    T, L, N, D = states.shape
    rms = np.zeros((T, L))
    change = np.full((T, L), np.nan)
    for t in range(T):
        for lv in range(L):
            size = moved = 0.0
            for i in range(N):
                for k in range(D):
                    v = float(states[t, lv, i, k])
                    size += v * v
                    if t:
                        d = v - float(states[t - 1, lv, i, k])
                        moved += d * d
            rms[t, lv] = math.sqrt(size / (N * D))
            if t:
                change[t, lv] = math.sqrt(moved / (N * D))
    return rms, change
