"""The GLOM update rule in plain numpy: the executable specification.

Written to be read, not to be fast: the rule as docs/update-rule.md states it. The numba
primitives in :mod:`glomsim._kernels` (nets, attention, normalisation, the step) are
tested against these functions; a new attention kernel or activation starts here.

State ``E`` has shape (levels, columns, dim). One step::

    bu[l]  = f_l(E[t-1, l-1])          (l >= 1);  f_0(u) at level 0
    td[l]  = g_l(E[t-d, l+1] + p)      (l <= L-2); absent at the top level
    prev   = E[t-1, l]
    att[l] = A_l @ E[t-1, l]           rows of A_l sum to 1 over the neighbourhood
                                       (contrastive: its own weights; sampled: drawn per t, l)
    E[t,l] = (w_bu bu + w_td td + w_prev prev + w_att att) / (sum of present weights)
             then normalize: none | l2 | layernorm
"""

from __future__ import annotations

import numpy as np

from .config import Attention, GlomConfig
from .weights import GlomWeights

__all__ = [
    "gelu",
    "relu",
    "sin",
    "ACTIVATION_FUNCTIONS",
    "mlp",
    "net_forward",
    "neighbourhood",
    "attended",
    "attention_matrix",
    "cosines",
    "contrastive_matrix",
    "attention",
    "normalize",
    "step",
    "simulate",
    "patch_tokens",
    "GLOM_PYTORCH_SELF_SCORE",
    "bounded_tolerance",
]

#: Score glom-pytorch gives a column's attention to itself when self is "excluded".
GLOM_PYTORCH_SELF_SCORE = -5e-4
LAYERNORM_EPS = 1e-5


def bounded_tolerance(dtype) -> float:
    """Relative tolerance of the bounded kernel: points exactly epsilon apart count."""
    return 1e-9 if np.dtype(dtype) == np.float64 else 1e-6


def gelu(x):
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    from scipy.special import erf  # here, not at import: simulate uses this module's constants

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)).astype(x.dtype))


def relu(x):
    """ReLU: max(x, 0)."""
    return np.maximum(x, x.dtype.type(0))


def sin(x):
    """The sine (SIREN units; ``random_weights`` folds their frequency omega_0 into w1)."""
    return np.sin(x)


#: The nets' activations by the config's names (``GlomConfig.bottom_up_activation``).
ACTIVATION_FUNCTIONS = {"gelu": gelu, "relu": relu, "sin": sin}


def net_forward(x, w1, b1, w2, b2, *, keep: bool = False, activation: str = "gelu"):
    """One net: ``act(x @ w1 + b1) @ w2 + b2``, ``act`` named by ``activation`` (one of
    :data:`ACTIVATION_FUNCTIONS`); with ``keep``, also ``(x, z, h)``: its input, the
    hidden pre-activation ``z = x @ w1 + b1`` and ``h = act(z)``, which training's
    backward pass reads."""
    z = x @ w1 + b1
    h = ACTIVATION_FUNCTIONS[activation](z)
    y = h @ w2 + b2
    return (y, (x, z, h)) if keep else y


def mlp(x, w1, b1, w2, b2, *, activation: str = "gelu"):
    """One net: ``act(x @ w1 + b1) @ w2 + b2`` (:func:`net_forward`)."""
    return net_forward(x, w1, b1, w2, b2, activation=activation)


def neighbourhood(positions: np.ndarray, radius: float) -> np.ndarray:
    """Boolean (N, N): j is in i's neighbourhood iff ``|pos_i - pos_j| <= radius`` (closed
    ball; :func:`glomsim.neighbours.within_radius`, the one home of that formula)."""
    from .neighbours import within_radius

    return within_radius(positions, radius)


def attended(positions: np.ndarray, att: Attention, *, seed=None, step=None, level=None):
    """Boolean (N, N): whether column i attends to column j at this step and level.

    The closed ball of ``att.radius``, without j = i unless ``include_self`` (glom_pytorch
    keeps it: its "self excluded" is a score). With ``att.sample`` = k, each column keeps
    k other columns of its ball drawn by :func:`glomsim.neighbours.sampled_csr` for
    (``seed``, ``step``, ``level``), which must then be given, plus itself as before.
    """
    n = positions.shape[0]
    if att.sample is None:
        allowed = neighbourhood(positions, att.radius)
        if not att.include_self and att.kernel != "glom_pytorch":
            np.fill_diagonal(allowed, False)
        return allowed
    if seed is None or step is None or level is None:
        raise ValueError(
            f"attention.sample={att.sample}: a sampled neighbourhood is drawn per step and "
            "level; give seed=, step= and level="
        )
    from .neighbours import sampled_csr

    indptr, indices = sampled_csr(positions, att, seed=seed, step=step, level=level)
    allowed = np.zeros((n, n), dtype=bool)
    allowed[np.repeat(np.arange(n), np.diff(indptr)), indices] = True
    return allowed


def attention_matrix(x: np.ndarray, positions: np.ndarray, att: Attention, **where):
    """(N, N) attention weights A[i, j] of one level; each row sums to 1, or is all zero
    when column i attends to no one (then :func:`attention` uses its own embedding).
    The contrastive kernel's rows are its own (:func:`contrastive_matrix`).

    ``x`` is (N, D) in the simulation dtype; arithmetic stays in that dtype. ``where``
    (seed, step, level) places a sampled neighbourhood (:func:`attended`).
    """
    n, d = x.shape
    dtype = x.dtype
    allowed = attended(positions, att, **where)
    if att.kernel == "contrastive":
        return contrastive_matrix(x, allowed, att)

    if att.kernel == "bounded":
        dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        close = dist <= att.epsilon * (1.0 + bounded_tolerance(dtype))
        weight = (allowed & close).astype(dtype)
        count = weight.sum(axis=1, keepdims=True)
        return np.divide(weight, count, out=np.zeros_like(weight), where=count > 0)

    beta = dtype.type(att.beta)
    if att.kernel == "dot":
        score = beta * (x @ x.T)
    elif att.kernel == "cosine":
        score = beta * cosines(x)  # a zero vector's cosines are 0
    elif att.kernel == "gaussian":
        sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        score = -beta * sq
    elif att.kernel == "glom_pytorch":
        norm = np.sqrt((x * x).sum(-1))
        key = x / np.maximum(norm, dtype.type(1e-12))[:, None]
        score = beta * (x @ key.T) / dtype.type(np.sqrt(d))
        if not att.include_self:
            np.fill_diagonal(score, dtype.type(GLOM_PYTORCH_SELF_SCORE))
    else:  # pragma: no cover - config validation rejects unknown kernels
        raise ValueError(att.kernel)

    return _softmax_rows(score, allowed)


def _softmax_rows(score, allowed):
    """Softmax of each row of ``score`` over its ``allowed`` entries (all-zero rows where
    none is allowed)."""
    dtype = score.dtype
    score = np.where(allowed, score, -np.inf)
    row_max = score.max(axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, dtype.type(0))
    weight = np.where(allowed, np.exp(score - row_max), dtype.type(0))
    total = weight.sum(axis=1, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


def cosines(x: np.ndarray) -> np.ndarray:
    """(N, N) cos(x_i, x_j); 0 where either vector is zero."""
    norm = np.sqrt((x * x).sum(-1))
    unit = x / np.where(norm > 0, norm, x.dtype.type(1))[:, None]
    return unit @ unit.T


def contrastive_matrix(x: np.ndarray, allowed: np.ndarray, att: Attention) -> np.ndarray:
    """The contrastive kernel's (N, N) weights, so that its attention is ``A @ x``.

    With N_i the attended columns (``allowed[i]``), c_ij = cos(x_i, x_j),
    P_i = {j in N_i : c_ij >= threshold} and Q_i = N_i minus P_i::

        att_i = sum_{j in P_i} softmax_{P_i}(beta c_ij) x_j
                - repulsion / |N_i| * sum_{j in Q_i} (threshold - c_ij) x_j

    where the first sum is x_i itself when P_i is empty (A[i, i] gets 1) and the second
    is 0 when Q_i is empty. Rows need not sum to 1: repulsion pushes away.
    """
    dtype = x.dtype
    # clamped: round-off can put an antiparallel pair a hair below -1, and a threshold of
    # -1 (the cosine kernel, with repulsion 0) must then still attract it
    c = np.clip(cosines(x), -1, 1)
    threshold = dtype.type(att.threshold)
    attract = allowed & (c >= threshold)
    repel = allowed & ~attract
    weight = _softmax_rows(dtype.type(att.beta) * c, attract)
    size = np.maximum(allowed.sum(axis=1, keepdims=True), 1).astype(dtype)
    weight = weight - np.where(repel, dtype.type(att.repulsion) * (threshold - c) / size, 0)
    alone = np.flatnonzero(~attract.any(axis=1))
    weight[alone, alone] += dtype.type(1)
    return weight.astype(dtype)


def attention(x: np.ndarray, positions: np.ndarray, att: Attention, **where) -> np.ndarray:
    """Attention contribution of one level: A @ x, own embedding where nobody is attended.

    ``where`` (seed, step, level) places a sampled neighbourhood (:func:`attended`):
    the built-in rule draws it for (``cfg.seed``, the step t computing E[t], the level).
    """
    a = attention_matrix(x, positions, att, **where)
    out = a @ x
    if att.kernel == "contrastive":  # A already holds x_i where P_i is empty
        return out
    lonely = a.sum(axis=1) == 0
    out[lonely] = x[lonely]
    return out


def normalize(x: np.ndarray, how: str) -> np.ndarray:
    """Normalise each embedding (last axis): none, l2 (zero stays zero) or layernorm."""
    if how == "none":
        return x
    if how == "l2":
        norm = np.sqrt((x * x).sum(-1, keepdims=True))
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    if how == "layernorm":
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + x.dtype.type(LAYERNORM_EPS))
    raise ValueError(f"normalize={how!r}")


def patch_tokens(image: np.ndarray, weights: GlomWeights) -> np.ndarray:
    """Image (C, H, W) -> tokens (N, D): patches in row-major order, each flattened in
    (p1, p2, channel) order, then ``@ patch_w + patch_b`` (glom-pytorch's layout)."""
    c, h, w = image.shape
    p = weights.patch_size
    patches = image.reshape(c, h // p, p, w // p, p).transpose(1, 3, 2, 4, 0)
    patches = patches.reshape((h // p) * (w // p), p * p * c)
    # einsum, not @: simulate embeds images just before it steps, and a multi-threaded BLAS
    # call here left OpenBLAS's threads spinning on the other core through the first steps
    # (a 32x32 run's first 3-4 steps took 30 ms instead of 18)
    w = weights.patch_w.astype(image.dtype)
    return np.einsum("nk,kd->nd", patches, w) + weights.patch_b.astype(image.dtype)


def step(
    cfg: GlomConfig,
    weights: GlomWeights,
    history: list[np.ndarray],
    inputs: np.ndarray,
    t: int,
    rule=None,
    *,
    steps_per_frame: int | None = None,
) -> np.ndarray:
    """Compute E[t] from the states E[0..t-1] in ``history`` (each (L, N, D); a list, or
    a dict by step holding at least E[t-1] and E[max(t-d, 0)]).

    ``inputs`` is the tokens (N, D), or with ``steps_per_frame`` = k the frames
    (F, N, D), of which step t reads frame ``min((t - 1) // k, F - 1)``.
    ``rule(previous, bottom_up, top_down, attention, mix) -> new`` replaces the weighted
    average when given (all contributions are then evaluated; ``top_down`` is None at
    the top level); normalisation is applied after either.
    """
    dtype = cfg.np_dtype
    L = cfg.levels
    positions = cfg.position_array()
    if steps_per_frame is not None:
        inputs = inputs[min((t - 1) // steps_per_frame, len(inputs) - 1)]
    prev_state = history[t - 1]
    delayed = history[max(t - cfg.top_down_delay, 0)]
    mix = cfg.mix_weights(t)  # (L, 4): bottom_up, top_down, previous, attention
    W = {k: v.astype(dtype) for k, v in weights.arrays().items()}
    new = np.empty_like(prev_state)

    for level in range(L):
        w_bu, w_td, w_prev, w_att = (dtype.type(v) for v in mix[level])
        prev = prev_state[level]
        custom = rule is not None

        bu = td = att = None
        if w_bu > 0 or custom:
            below = inputs if level == 0 else prev_state[level - 1]
            if weights.identity:
                bu = below
            else:
                bu = mlp(
                    below,
                    W["bu_w1"][level],
                    W["bu_b1"][level],
                    W["bu_w2"][level],
                    W["bu_b2"][level],
                    activation=cfg.bottom_up_activation,
                )
        if level < L - 1 and (w_td > 0 or custom):
            above = delayed[level + 1] + W["pos_code"]
            if weights.identity:
                td = above
            else:
                td = mlp(
                    above,
                    W["td_w1"][level],
                    W["td_b1"][level],
                    W["td_w2"][level],
                    W["td_b2"][level],
                    activation=cfg.top_down_activation,
                )
        if w_att > 0 or custom:
            # a sampled neighbourhood is drawn for (seed, the step computing E[t], level)
            att = attention(prev, positions, cfg.attention_at(level), seed=cfg.seed, step=t,
                            level=level)  # fmt: skip

        if custom:
            out = np.asarray(rule(prev, bu, td, att, mix[level].copy()), dtype=dtype)
        else:
            total = dtype.type(0)
            acc = np.zeros_like(prev)
            for w_c, c in ((w_bu, bu), (w_td, td), (w_prev, prev), (w_att, att)):
                if w_c > 0:
                    acc = acc + w_c * c
                    total = total + w_c
            out = acc / total
        new[level] = normalize(out, cfg.normalize)
    return new


def simulate(
    cfg: GlomConfig,
    weights: GlomWeights,
    inputs: np.ndarray,
    init: np.ndarray,
    steps: int | None = None,
    rule=None,
    *,
    steps_per_frame: int | None = None,
    start: int = 0,
    past=None,
) -> np.ndarray:
    """All states E[start..start + steps] as one (steps + 1, L, N, D) array;
    E[start] = ``init`` as given.

    ``inputs``: tokens (N, D), or frames (F, N, D) with ``steps_per_frame`` (see
    :func:`step`). A continued run starts at step ``start`` > 0 with ``past``, the states
    the top-down delay d reads before it: E[start - 1], ..., E[start - d + 1] (E[0] for
    steps before 0); from step 0 every earlier state is E[0].
    """
    dtype = cfg.np_dtype
    steps = cfg.steps if steps is None else steps
    d = cfg.top_down_delay
    history = {start: np.asarray(init, dtype=dtype)}
    for lag in range(1, d):
        if start - lag >= 0:
            history[start - lag] = np.asarray(past[lag - 1] if start else init, dtype=dtype)
    inputs = np.asarray(inputs, dtype=dtype)
    for t in range(start + 1, start + steps + 1):
        history[t] = step(cfg, weights, history, inputs, t, rule=rule,
                          steps_per_frame=steps_per_frame)  # fmt: skip
    return np.stack([history[t] for t in range(start, start + steps + 1)])
