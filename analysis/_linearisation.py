"""The step map's linearisation: set-up, central-difference JVPs, the neutral subspace of
common shifts, and the spectra, for :mod:`analysis.stability`.

Everything runs in float64 through :func:`glomsim.reference.step`, the executable spec.
"""

from __future__ import annotations

import math

import numpy as np

from glomsim._validate import check_int, check_real
from glomsim.variables import check_dataset

from ._common import is_summaries_only

#: State sizes up to this get the dense Jacobian (column by column) and numpy.linalg.eigvals.
DENSE_MAX = 2000
#: ``J v = v`` within this (unit v) counts as neutral: far above the central-difference
#: error (about 1e-10) and far below any contraction one would call stable.
NEUTRAL_TOL = 1e-6
#: Up to this many candidate shift directions, the neutral subspace is the exact null space
#: of (J - I) on their span (one JVP each); beyond, each island is checked on its own.
NULLSPACE_MAX = 512


# ----- shared set-up ------------------------------------------------------------------------
def _prepare(cfg, weights, ds, func):
    """Check and complete (cfg, weights) against ``ds``; float64 config for the linearisation."""
    import glomsim as gs

    check_dataset(ds, ["embedding", "input"], func)
    if cfg is None:
        cfg = gs.GlomConfig.from_dataset(ds)
    if not isinstance(cfg, gs.GlomConfig):
        raise TypeError(f"{func}: cfg must be a GlomConfig or None, got {type(cfg).__name__}")
    if weights is None:
        weights = gs.random_weights(cfg, cfg.seed)
    if not isinstance(weights, gs.GlomWeights):
        raise TypeError(
            f"{func}: weights must be GlomWeights or None, got {type(weights).__name__}"
        )
    weights.check(cfg)
    for dim, want in (("level", cfg.levels), ("column", cfg.n_columns), ("feature", cfg.dim)):
        if ds.sizes[dim] != want:
            raise ValueError(
                f"{func}: ds has {dim}={ds.sizes[dim]} but cfg needs {want}; pass the config "
                "the dataset was simulated with (or cfg=None to read it from ds)"
            )
    weights.check_hash(ds.attrs.get("weights_hash"), f"{func}: weights")
    return cfg.replace(dtype="float64"), weights


def _check_positive(func, name, value, *, integer=False, allow_none=False):
    """``value`` > 0 (an integer >= 1 with ``integer``), or a ValueError naming it."""
    if value is None and allow_none:
        return
    if integer:
        check_int(f"{func}: {name}", value, lo=1)
    else:
        check_real(f"{func}: {name}", value, lo=0, lo_open=True)


def _delay_states(cfg, ds, func):
    """(z, T): z = (E_T, E_{T-1}, ..., E_{T-d+1}) in float64 (steps before 0 read E_0)."""
    times = np.asarray(ds["time"].values, dtype=np.int64)
    T = int(times[-1])
    d = cfg.top_down_delay
    wanted = [max(T - k, 0) for k in range(d)]
    where = {int(t): i for i, t in enumerate(times)}
    missing = [t for t in wanted if t not in where]
    if missing and is_summaries_only(ds):
        raise ValueError(
            f"{func}: top_down_delay={d} makes the step map act on the last {d} states, but "
            f"ds is a summaries_only run, which keeps the state at steps 0 and {T} only; "
            "simulate with summaries_only=False (record_every=1 for at least the last steps)"
        )
    if missing:
        raise ValueError(
            f"{func}: top_down_delay={d} makes the step map act on the last {d} states, but "
            f"step(s) {missing} are not recorded in ds (record_every > 1?); simulate with "
            "record_every=1 for at least the last steps"
        )
    emb = ds["embedding"].isel(time=[where[t] for t in wanted]).values
    return np.ascontiguousarray(emb, dtype=np.float64), T


class _StepMap:
    """G(z) at step index ``t`` (the step that computes E_t from z = (E_{t-1}, ...))."""

    def __init__(self, cfg, weights, inputs):
        self.cfg = cfg
        self.weights = weights
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float64)
        self.d = cfg.top_down_delay

    def __call__(self, z, t):
        from glomsim.reference import step

        d = self.d
        history = [None] * t  # reference.step reads only history[t-1] and history[t-d]
        history[max(t - d, 0)] = z[d - 1]
        history[t - 1] = z[0]
        new = step(self.cfg, self.weights, history, self.inputs, t)
        return np.concatenate([new[None], z[:-1]], axis=0)

    def jvp(self, z, v, t, h):
        """Central difference (G(z + h v) - G(z - h v)) / 2h: error O(h^2), no bias."""
        return (self(z + h * v, t) - self(z - h * v, t)) / (2.0 * h)


def _fd_step(z, eps):
    """Absolute step for unit directions: eps (default eps_machine**(1/3)) times the scale."""
    if eps is None:
        eps = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)
    return eps * max(1.0, float(np.max(np.abs(z))) if z.size else 1.0)


# ----- islands and the neutral subspace ------------------------------------------------------
def _islands(x, positions, att, tol):
    """Labels (N,) of islands: columns whose embeddings agree within ``tol`` and that are
    linked through attention neighbourhoods (two far-apart groups that happen to agree can
    shift independently, so they are separate islands)."""
    from glomsim.neighbours import neighbour_csr

    from .islands import _components

    n = x.shape[0]
    # leader clustering: at a fixed point islands agree exactly and sit far apart, so the
    # first column within tol of a leader is as good as single linkage, at O(N * islands)
    agree = np.full(n, -1, dtype=np.int64)
    k = 0
    for i in range(n):
        if agree[i] >= 0:
            continue
        free = agree < 0
        dist = np.sqrt(((x - x[i]) ** 2).sum(-1))
        agree[free & (dist <= tol)] = k
        k += 1
    if math.isinf(att.radius):
        return agree
    indptr, indices = neighbour_csr(positions, att)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    keep = agree[rows] == agree[indices]
    return _components(n, np.stack([rows[keep], indices[keep]], axis=1))


def _shift_basis(center, normalize):
    """Orthonormal (D, m) basis of the common shifts allowed at an island's embedding."""
    from scipy.linalg import null_space

    dim = center.shape[0]
    if normalize == "none" or not np.any(center):
        return np.eye(dim)
    fixed = [center] if normalize == "l2" else [np.ones(dim), center]
    return null_space(np.array(fixed))


def _neutral_subspace(cfg, weights, gmap, z, t, h, tol, neutral_tol, rng):
    """(V (n, m) orthonormal, islands per level, defect): the checked common shifts.

    Candidates are the common shifts of every island at the levels that are pure consensus
    at step t: no bottom-up or top-down contribution, or identity nets (then a shift can
    pass between levels, and only a joint shift of linked islands may be neutral). The
    neutral subspace is the part of their span on which ``J v = v``:

    1. one JVP of a random unit combination of all candidates: for a generic combination
       ``J v = v`` holds only if it holds on the whole span (a consensus state stops here);
    2. otherwise, with at most ``NULLSPACE_MAX`` candidates, the null space of ``(J - I) C``
       (one JVP per candidate), which also finds joint shifts across levels;
    3. otherwise each island's block is kept or dropped by one random JVP.
    """
    L, N, D = z.shape[1:]
    d = z.shape[0]
    mix = cfg.mix_weights(t)
    positions = cfg.position_array()
    counts = np.zeros(L, dtype=np.int64)
    blocks = []
    for lv in range(L):
        x = z[0, lv]
        labels = _islands(x, positions, cfg.attention_at(lv), tol)
        counts[lv] = len(np.unique(labels))
        if not weights.identity and (mix[lv, 0] > 0 or mix[lv, 1] > 0):
            continue  # a net reads this level or writes into it: shifts are not neutral
        for lab in np.unique(labels):
            cols = np.nonzero(labels == lab)[0]
            basis = _shift_basis(x[cols].mean(0), cfg.normalize)
            if basis.shape[1] == 0:
                continue
            vecs = np.zeros((d, L, N, D, basis.shape[1]))
            # the same shift in every lagged copy: a fixed point's history shifts with it
            vecs[:, lv, cols, :, :] = basis[None, None] / math.sqrt(len(cols) * d)
            blocks.append(vecs.reshape(-1, basis.shape[1]))
    empty = np.zeros((z.size, 0))
    if not blocks:
        return empty, counts, math.nan

    def minus_identity(v):
        return gmap.jvp(z, v.reshape(z.shape), t, h).ravel() - v

    def random_defect(vectors):
        c = rng.standard_normal(vectors.shape[1])
        return float(np.linalg.norm(minus_identity(vectors @ (c / np.linalg.norm(c)))))

    cand = np.concatenate(blocks, axis=1)
    worst = random_defect(cand)
    if worst <= neutral_tol:
        return cand, counts, worst
    if cand.shape[1] <= NULLSPACE_MAX:
        k = np.stack([minus_identity(cand[:, j]) for j in range(cand.shape[1])], axis=1)
        _, sing, vt = np.linalg.svd(k, full_matrices=True)
        sing = np.concatenate([sing, np.zeros(vt.shape[0] - len(sing))])
        null = sing <= neutral_tol
        if not null.any():
            return empty, counts, math.nan
        # C is orthonormal and so are the right singular vectors: V = C N is orthonormal
        return cand @ vt[null].T, counts, float(sing[null].max())
    kept, worst = [], 0.0
    for b in blocks:
        err = random_defect(b)
        if err <= neutral_tol:
            kept.append(b)
            worst = max(worst, err)
    if not kept:
        return empty, counts, math.nan
    return np.concatenate(kept, axis=1), counts, worst


# ----- spectra ---------------------------------------------------------------------------------
def _leading(values, k):
    """The k eigenvalues of largest modulus, largest first, NaN-padded to length k."""
    values = np.asarray(values, dtype=np.complex128)
    order = np.lexsort((-values.real, -np.abs(values)))
    top = values[order[:k]]
    return np.concatenate([top, np.full(k - len(top), np.nan + 0j)])


def _spectra_dense(gmap, z, t, h, V):
    from scipy.linalg import null_space

    n = z.size
    J = np.empty((n, n))
    e = np.zeros(n)
    for j in range(n):
        e[j] = 1.0
        J[:, j] = gmap.jvp(z, e.reshape(z.shape), t, h).ravel()
        e[j] = 0.0
    full = np.linalg.eigvals(J)
    if V.shape[1] == 0:
        return full, full
    W = null_space(V.T)
    # V is invariant (J V = V), so in the basis [V, W] J is block triangular and the rest of
    # the spectrum is that of W^T J W
    trans = np.linalg.eigvals(W.T @ J @ W) if W.shape[1] else np.zeros(0)
    return full, trans


def _spectra_arnoldi(gmap, z, t, h, V, k, rng):
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

    n = z.size
    kk = min(k, n - 2)

    def apply(v):
        return gmap.jvp(z, np.real(v).reshape(z.shape), t, h).ravel()

    def project(v):
        return v - V @ (V.T @ v)

    def run(matvec):
        op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        v0 = rng.standard_normal(n)
        try:
            # tol well above the central-difference noise (~1e-10) so ARPACK can converge
            return eigs(op, k=kk, which="LM", v0=v0, tol=1e-8, return_eigenvectors=False)
        except ArpackNoConvergence as err:
            return err.eigenvalues

    full = run(apply)
    if V.shape[1] == 0:
        return full, full
    # P J P with P = I - V V^T: the transverse spectrum plus m zeros, which never lead
    trans = run(lambda v: project(apply(project(np.real(v)))))
    return full, trans
