"""Is the settled state stable? Jacobian spectrum, perturbation recovery, Lyapunov exponent.

All three linearise or re-run the update rule in float64, whatever the dataset's dtype:
the Jacobian uses central differences of :func:`glomsim.reference.step` (the executable
spec), so it measures the rule itself, not a kernel's rounding.

The step map acts on the state ``z = (E_t, E_{t-1}, ..., E_{t-d+1})`` with ``d`` the
top-down delay (``z = E_t`` for the default ``d = 1``): ``G(z) = (F(E_t, E_{t+1-d}), E_t,
..., E_{t-d+2})``.

Pure consensus has a neutral subspace: shifting every column of an island (columns that
agree and attend to each other) by the same vector is again a fixed point, so the
Jacobian has eigenvalue 1 there, ``dim`` directions per island (``dim - 1`` under ``l2``,
which only allows shifts along the sphere; ``dim - 2`` under ``layernorm``). With identity
nets a shift passes between levels, and it is the joint shift of islands linked across
levels that is neutral. The subspace is found, checked (``J v = v``) and reported as
``neutral_dimension``; ``spectral_radius_transverse`` is the radius of the rest of the
spectrum, which decides whether the islands are stable.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import add_history, is_summaries_only, require, set_attrs

__all__ = ["stability", "perturbation_recovery", "lyapunov"]

#: State sizes up to this get the dense Jacobian (column by column) and numpy.linalg.eigvals.
DENSE_MAX = 2000
#: ``J v = v`` within this (unit v) counts as neutral: far above the central-difference
#: error (about 1e-10) and far below any contraction one would call stable.
NEUTRAL_TOL = 1e-6
#: Up to this many candidate shift directions, the neutral subspace is the exact null space
#: of (J - I) on their span (one JVP each); beyond, each island is checked on its own.
NULLSPACE_MAX = 512

_STABILITY_ATTRS = {
    "spectral_radius": (
        "spectral radius",
        "1",
        "largest |eigenvalue| of the step map's Jacobian at the last recorded state",
    ),
    "spectral_radius_transverse": (
        "transverse spectral radius",
        "1",
        "largest |eigenvalue| once the neutral subspace (common shifts of islands) is "
        "factored out; < 1 means the islands are linearly stable; NaN if nothing is left",
    ),
    "neutral_dimension": (
        "neutral dimension",
        "1",
        "dimension of the checked neutral subspace of common shifts of islands",
    ),
    "neutral_defect": (
        "neutral defect",
        "1",
        "|J v - v| for unit v in the accepted neutral subspace (a random combination, or "
        "the largest singular value of J - I accepted on the candidates' span)",
    ),
    "island_count": (
        "islands",
        "1",
        "islands at the last state: columns agreeing within island_tol and linked through "
        "attention neighbourhoods",
    ),
    "fixed_point_residual": (
        "fixed-point residual",
        "1",
        "RMS of G(z) - z over the state, relative to max(RMS of z, 1); the spectrum is a "
        "stability statement only when this is small",
    ),
    "eigenvalues_real": ("eigenvalue (real part)", "1", "leading eigenvalues by modulus"),
    "eigenvalues_imag": ("eigenvalue (imaginary part)", "1", "leading eigenvalues by modulus"),
    "transverse_eigenvalues_real": (
        "transverse eigenvalue (real part)",
        "1",
        "leading eigenvalues by modulus once the neutral subspace is factored out",
    ),
    "transverse_eigenvalues_imag": (
        "transverse eigenvalue (imaginary part)",
        "1",
        "leading eigenvalues by modulus once the neutral subspace is factored out",
    ),
}


# ----- shared set-up ------------------------------------------------------------------------
def _prepare(cfg, weights, ds, func):
    """Check and complete (cfg, weights) against ``ds``; float64 config for the linearisation."""
    import glomsim as gs

    require(ds, ["embedding", "input"], func)
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
    stored = ds.attrs.get("weights_hash")
    if stored is not None and stored != weights.content_hash():
        raise ValueError(
            f"{func}: weights: their content hash differs from the dataset's weights_hash "
            f"{stored[:12]}...; pass the weights the dataset was simulated with"
        )
    return cfg.replace(dtype="float64"), weights


def _check_positive(func, name, value, *, integer=False, allow_none=False):
    if value is None and allow_none:
        return
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not value > 0
        or (not integer and not math.isfinite(value))
    ):
        what = "an integer >= 1" if integer else "a finite number > 0"
        raise ValueError(f"{func}: {name}={value!r} must be {what}")


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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from glomsim.neighbours import neighbour_csr

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
    graph = coo_matrix((np.ones(keep.sum()), (rows[keep], indices[keep])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


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


def _spectra_dense(gmap, z, t, h, V, k):
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


def stability(
    cfg,
    weights,
    ds,
    *,
    k: int = 6,
    eps: float | None = None,
    island_tol: float | None = None,
    neutral_tol: float = NEUTRAL_TOL,
    dense_max: int = DENSE_MAX,
    seed: int = 0,
):
    """Spectrum of the step map's Jacobian at the last recorded state, neutral part apart.

    Parameters
    ----------
    cfg : GlomConfig or None
        The run's config (None: read from ``ds``); linearised in float64.
    weights : GlomWeights or None
        The run's weights (None: ``random_weights(cfg, cfg.seed)``, as simulate does);
        checked against ``ds.attrs["weights_hash"]``.
    ds : xarray.Dataset
        A simulation; its last recorded state is the linearisation point (with
        ``top_down_delay = d`` the last ``d`` steps must be recorded).
    k : int
        Number of leading eigenvalues reported.
    eps : float, optional
        Relative central-difference step; default ``eps_machine**(1/3)`` (about 6e-6),
        times ``max(1, max|z|)``.
    island_tol : float, optional
        Columns closer than this (Euclidean) agree; default ``sqrt(eps)`` of the data's
        dtype times ``max(1, max|z|)`` (1.5e-8 for float64 data, 3.5e-4 for float32).
    neutral_tol : float
        A common-shift direction v is neutral when ``|J v - v| <= neutral_tol``.
    dense_max : int
        State sizes up to this build the dense Jacobian (2 evaluations of the rule per
        state entry) and use ``numpy.linalg.eigvals``; larger ones use ARPACK (``eigs``)
        on a matrix-free ``LinearOperator`` of central-difference JVPs.
    seed : int
        Seeds the random start vectors (ARPACK, neutrality checks).

    Returns
    -------
    xarray.Dataset
        Scalars ``spectral_radius``, ``spectral_radius_transverse``, ``neutral_dimension``,
        ``neutral_defect``, ``fixed_point_residual``; ``island_count(level)``;
        ``eigenvalues_real(mode)``, ``eigenvalues_imag(mode)``,
        ``transverse_eigenvalues_real(mode)``, ``transverse_eigenvalues_imag(mode)``
        (largest modulus first, NaN-padded); attrs ``method`` ("dense" or "arnoldi"),
        ``state_size``, ``at_step``.

    Examples
    --------
    Lazy uniform averaging of 4 columns that already agree: common shifts are neutral
    (2 dims), the rest contracts by 1/2 per step.

    >>> import glomsim as gs
    >>> from analysis import stability
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 4), steps=1, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=0, top_down=0),
    ...                     attention=gs.Attention(beta=0.0))
    >>> w = gs.identity_weights(cfg)
    >>> ds = gs.simulate(cfg, w, init=np.ones((1, 4, 2)))
    >>> out = stability(cfg, w, ds)
    >>> int(out.neutral_dimension), round(float(out.spectral_radius_transverse), 6)
    (2, 0.5)
    """
    func = "stability"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "k", k, integer=True)
    _check_positive(func, "eps", eps, allow_none=True)
    _check_positive(func, "island_tol", island_tol, allow_none=True)
    _check_positive(func, "neutral_tol", neutral_tol)
    _check_positive(func, "dense_max", dense_max, integer=True)
    rng = np.random.default_rng(seed)

    z, T = _delay_states(cfg64, ds, func)
    t = T + 1
    gmap = _StepMap(cfg64, weights, ds["input"].values)
    h = _fd_step(z, eps)
    scale = max(1.0, float(np.max(np.abs(z))))
    if island_tol is None:
        data_eps = float(np.finfo(ds["embedding"].dtype).eps)
        island_tol = math.sqrt(data_eps) * scale
    gz = gmap(z, t)
    fixed_res = float(np.sqrt(np.mean((gz - z) ** 2)) / max(float(np.sqrt(np.mean(z**2))), 1.0))

    V, counts, defect = _neutral_subspace(
        cfg64, weights, gmap, z, t, h, island_tol, neutral_tol, rng
    )
    n = z.size
    if n <= max(dense_max, k + 2):
        method = "dense"
        full, trans = _spectra_dense(gmap, z, t, h, V, k)
    else:
        method = "arnoldi"
        full, trans = _spectra_arnoldi(gmap, z, t, h, V, k, rng)
    m = V.shape[1]
    lead = _leading(full, k)
    lead_t = _leading(trans, k) if n > m else np.full(k, np.nan + 0j)
    radius = float(np.max(np.abs(full))) if len(full) else math.nan
    radius_t = float(np.max(np.abs(trans))) if n > m and len(trans) else math.nan

    import xarray as xr

    out = xr.Dataset(
        {
            "spectral_radius": ((), radius),
            "spectral_radius_transverse": ((), radius_t),
            "neutral_dimension": ((), np.int64(m)),
            "neutral_defect": ((), defect),
            "fixed_point_residual": ((), fixed_res),
            "island_count": (("level",), counts),
            "eigenvalues_real": (("mode",), lead.real),
            "eigenvalues_imag": (("mode",), lead.imag),
            "transverse_eigenvalues_real": (("mode",), lead_t.real),
            "transverse_eigenvalues_imag": (("mode",), lead_t.imag),
        },
        coords={"level": ds["level"].copy(), "mode": ("mode", np.arange(k, dtype=np.int64))},
    )
    out["mode"].attrs.update(long_name="eigenvalue rank by modulus", units="1")
    set_attrs(out, _STABILITY_ATTRS)
    out = add_history(
        out, ds.attrs, func, {"k": k, "eps": eps, "island_tol": island_tol, "seed": seed}
    )
    out.attrs.update(method=method, state_size=n, at_step=T, fd_step=h)
    return out


# ----- perturbation recovery -------------------------------------------------------------------
def _continuation_config(cfg, T, steps):
    """The config that continues a run from step T: mixing schedules start at entry T."""
    import glomsim as gs

    def shift(m):
        fields = {}
        for name in ("bottom_up", "top_down", "previous", "attention"):
            v = getattr(m, name)
            fields[name] = v[min(T, len(v) - 1) :] if isinstance(v, tuple) else v
        return gs.Mix(**fields)

    mix = shift(cfg.mix) if isinstance(cfg.mix, gs.Mix) else tuple(shift(m) for m in cfg.mix)
    return cfg.replace(mix=mix, steps=steps, dtype="float64")


def perturbation_recovery(cfg, weights, ds, *, size=1e-6, steps=50, seed=0):
    """Perturb the last recorded state and follow its distance to the unperturbed run.

    Both runs continue from the last recorded state E_T with :func:`glomsim.simulate` in
    float64 (mixing schedules continue at step T + 1). The perturbation is Gaussian over
    all levels, columns and features, scaled to RMS ``size * RMS(E_T)`` (``size`` when
    E_T is zero).

    Parameters
    ----------
    cfg, weights, ds
        As for :func:`stability`.
    size : float
        Relative RMS size of the perturbation.
    steps : int
        Steps to follow.
    seed : int
        Seed of the perturbation.

    Returns
    -------
    xarray.Dataset
        ``distance(time)`` (RMS over level, column, feature), ``distance_level(time, level)``,
        ``growth_factor(time)`` (distance ratio per step, NaN at the start) and the scalar
        ``mean_growth_factor`` (geometric mean over the run); ``time`` counts the steps of
        the original run (T ... T + steps).

    Notes
    -----
    With ``top_down_delay > 1`` the restarted runs read E_T for the steps before T, as
    :func:`glomsim.simulate` does before step 0; at a fixed point that is the true history.
    A component of the perturbation along neutral directions (pure consensus) does not
    decay, so the distance levels off at its size: see :func:`stability`.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import perturbation_recovery
    >>> cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 5), steps=30, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=1, top_down=0),
    ...                     attention=gs.Attention(beta=0.0))
    >>> w = gs.identity_weights(cfg)
    >>> inputs = np.random.default_rng(0).normal(size=(5, 2))
    >>> rec = perturbation_recovery(cfg, w, gs.simulate(cfg, w, inputs=inputs), steps=10)
    >>> round(float(rec.growth_factor[-1]), 3)  # (w_prev + w_att) / (sum of weights)
    0.667
    """
    import xarray as xr

    import glomsim as gs

    func = "perturbation_recovery"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "size", size)
    _check_positive(func, "steps", steps, integer=True)
    T = int(ds["time"].values[-1])
    start = np.asarray(ds["embedding"].isel(time=-1).values, dtype=np.float64)
    inputs = np.asarray(ds["input"].values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    delta = rng.standard_normal(start.shape)
    rms = float(np.sqrt(np.mean(start**2)))
    delta *= size * (rms if rms > 0 else 1.0) / float(np.sqrt(np.mean(delta**2)))

    run_cfg = _continuation_config(cfg64, T, steps)
    base = gs.simulate(run_cfg, weights, inputs=inputs, init=start, steps=steps)
    pert = gs.simulate(run_cfg, weights, inputs=inputs, init=start + delta, steps=steps)
    diff = pert["embedding"].values - base["embedding"].values
    dist_level = np.sqrt(np.mean(diff**2, axis=(2, 3)))
    dist = np.sqrt(np.mean(diff**2, axis=(1, 2, 3)))
    growth = np.full(len(dist), np.nan)
    np.divide(dist[1:], dist[:-1], out=growth[1:], where=dist[:-1] > 0)
    mean_growth = math.nan
    if dist[0] > 0 and dist[-1] > 0:
        mean_growth = math.exp(math.log(dist[-1] / dist[0]) / steps)
    elif dist[0] > 0:
        mean_growth = 0.0

    times = T + np.arange(steps + 1, dtype=np.int64)
    out = xr.Dataset(
        {
            "distance": (("time",), dist),
            "distance_level": (("time", "level"), dist_level),
            "growth_factor": (("time",), growth),
            "mean_growth_factor": ((), mean_growth),
        },
        coords={"time": ("time", times), "level": ds["level"].copy()},
    )
    out["time"].attrs.update(long_name="step", units="1")
    set_attrs(
        out,
        {
            "distance": (
                "distance to the unperturbed run",
                "1",
                "RMS over (level, column, feature) of perturbed minus unperturbed state",
            ),
            "distance_level": (
                "distance to the unperturbed run per level",
                "1",
                "RMS over (column, feature) of perturbed minus unperturbed state",
            ),
            "growth_factor": (
                "growth factor per step",
                "1",
                "distance_t / distance_{t-1}; NaN at the first step",
            ),
            "mean_growth_factor": (
                "mean growth factor per step",
                "1",
                "(distance at the end / distance at the start) ** (1 / steps)",
            ),
        },
    )
    return add_history(out, ds.attrs, func, {"size": size, "steps": steps, "seed": seed})


# ----- largest Lyapunov exponent ------------------------------------------------------------------
def lyapunov(cfg, weights, ds, *, steps=100, eps=None, seed=0):
    """Largest Lyapunov exponent along the trajectory continuing from the last state.

    Benettin's method: a unit tangent vector is pushed through the Jacobian of each step
    (central-difference JVP of :func:`glomsim.reference.step`, float64) and renormalised;
    the exponent is the mean log stretch per step.

    Parameters
    ----------
    cfg, weights, ds
        As for :func:`stability`.
    steps : int
        Steps to follow from the last recorded state.
    eps : float, optional
        Relative central-difference step, as for :func:`stability`.
    seed : int
        Seed of the initial tangent vector.

    Returns
    -------
    xarray.Dataset
        Scalars ``exponent`` (natural log per step; -inf if the tangent vector is
        annihilated) and ``multiplier`` (``exp(exponent)``); ``local_exponent(time)`` (log
        stretch of each step) and ``running_exponent(time)`` (running mean); ``time`` is
        the step computed (T + 1 ... T + steps).

    Notes
    -----
    For pure consensus the neutral common shifts give exponent 0 at a consensus state
    (the tangent vector aligns with them), whatever the transverse contraction.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import lyapunov
    >>> cfg = gs.GlomConfig(levels=1, dim=1, grid=(1, 3), steps=5, dtype="float64",
    ...                     mix=gs.Mix(bottom_up=1, top_down=0, previous=1, attention=0))
    >>> w = gs.identity_weights(cfg)
    >>> out = lyapunov(cfg, w, gs.simulate(cfg, w), steps=5)
    >>> round(float(out.multiplier), 6)  # E <- (u + E) / 2 halves every tangent vector
    0.5
    """
    import xarray as xr

    func = "lyapunov"
    cfg64, weights = _prepare(cfg, weights, ds, func)
    _check_positive(func, "steps", steps, integer=True)
    _check_positive(func, "eps", eps, allow_none=True)
    z, T = _delay_states(cfg64, ds, func)
    gmap = _StepMap(cfg64, weights, ds["input"].values)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(z.shape)
    v /= np.linalg.norm(v)
    local = np.full(steps, np.nan)
    for s in range(steps):
        t = T + 1 + s
        h = _fd_step(z, eps)
        jv = gmap.jvp(z, v, t, h)
        stretch = float(np.linalg.norm(jv))
        if not math.isfinite(stretch):
            raise FloatingPointError(
                f"{func}: the tangent vector became non-finite at step {t}; the trajectory "
                "diverges (try a smaller eps or check the run)"
            )
        if stretch == 0.0:
            local[s] = -math.inf
            break
        local[s] = math.log(stretch)
        v = jv / stretch
        z = gmap(z, t)
    done = np.isfinite(local) | (local == -math.inf)
    counts = np.arange(1, steps + 1)
    with np.errstate(invalid="ignore"):
        running = np.where(done, np.cumsum(np.where(done, local, 0.0)) / counts, np.nan)
    exponent = -math.inf if np.any(local == -math.inf) else float(np.mean(local))
    out = xr.Dataset(
        {
            "exponent": ((), exponent),
            "multiplier": ((), math.exp(exponent) if exponent < 700 else math.inf),
            "local_exponent": (("time",), local),
            "running_exponent": (("time",), running),
        },
        coords={"time": ("time", T + 1 + np.arange(steps, dtype=np.int64))},
    )
    out["time"].attrs.update(long_name="step", units="1")
    set_attrs(
        out,
        {
            "exponent": (
                "largest Lyapunov exponent",
                "1",
                "mean log stretch of a tangent vector per step (natural log)",
            ),
            "multiplier": ("Lyapunov multiplier", "1", "exp(exponent): mean stretch per step"),
            "local_exponent": ("log stretch", "1", "log of the tangent vector's stretch"),
            "running_exponent": ("running exponent", "1", "mean log stretch so far"),
        },
    )
    return add_history(out, ds.attrs, func, {"steps": steps, "eps": eps, "seed": seed})
