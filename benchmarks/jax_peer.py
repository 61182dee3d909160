"""The peer a researcher would write today: glom-pytorch's forward, jit-compiled in JAX.

XLA on CPU, the iterations inside ``lax.scan``, the weights of the same glom-pytorch model
(its state dict). Two versions of consensus attention: ``dense``, glom-pytorch's own
(N x N scores per level, the non-local ones masked to -max for a finite radius), and
``local``, each column's neighbours within the radius gathered (N x k scores; the rows of
columns near the border padded and masked). Before any timing, both are checked against
glomsim on the same image: max|a - b| / max(max|b|, 1) < 1e-4 in float32.

Install with ``pip install -e ".[bench]"`` (``jax[cpu]``); ``benchmarks/bench.py`` adds the
peers ``jax_dense`` and ``jax_local`` when jax is importable. XLA sizes its thread pool
once, when it starts: the benchmark starts it before any row pins the process, so it has
a thread per core, and in the 1-thread rows (the process pinned to one core) its threads
share that core.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

#: glom-pytorch's score of a column for itself when it does not attend to itself
TOKEN_ATTEND_SELF_VALUE = -5e-4
TOLERANCE = 1e-4


def available() -> bool:
    return importlib.util.find_spec("jax") is not None


def params_from_glom_pytorch(model) -> dict:
    """The model's weights as float32 numpy arrays, the grouped 1x1 convolutions split
    into per-level matrices: w1 (G, D, 4D), b1 (G, 4D), w2 (G, 4D, D), b2 (G, D)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    levels, dim = sd["init_levels"].shape
    out = dict(tok_w=sd["image_to_tokens.1.weight"].T.copy(), tok_b=sd["image_to_tokens.1.bias"],
               pos=sd["pos_emb.weight"], init=sd["init_levels"])  # fmt: skip
    for name, groups in (("bottom_up", levels), ("top_down", levels - 1)):
        w1 = sd[f"{name}.net.1.weight"][..., 0].reshape(groups, 4 * dim, dim)
        w2 = sd[f"{name}.net.3.weight"][..., 0].reshape(groups, dim, 4 * dim)
        out[name] = dict(w1=w1.transpose(0, 2, 1).copy(), b1=sd[f"{name}.net.1.bias"].reshape(groups, -1),
                         w2=w2.transpose(0, 2, 1).copy(), b2=sd[f"{name}.net.3.bias"].reshape(groups, -1))  # fmt: skip
    return out


def neighbours(side: int, radius: float):
    """(N, k) indices of each column's neighbours within ``radius`` (itself included, as
    in glom-pytorch's mask) and (N, k) validity, padded with the column itself."""
    coords = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1)
    coords = coords.reshape(-1, 2).astype(np.float64)
    dist = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    near = dist <= radius
    k = int(near.sum(1).max())
    idx = np.repeat(np.arange(len(coords))[:, None], k, axis=1)
    valid = np.zeros_like(idx, dtype=bool)
    for i, row in enumerate(near):
        js = np.flatnonzero(row)
        idx[i, : len(js)], valid[i, : len(js)] = js, True
    return idx, valid


def make_forward(params, side, patch, iters, radius=math.inf, attention="dense"):
    """A jitted ``img (3, H, W) -> levels (L, N, D)`` after ``iters`` iterations."""
    import jax
    import jax.numpy as jnp

    p = jax.tree_util.tree_map(jnp.asarray, params)
    levels, dim = params["init"].shape
    n = side * side
    contributions = jnp.full((levels, 1, 1), 4.0, jnp.float32).at[-1].set(3.0)
    eye = jnp.eye(n, dtype=bool)
    local = not math.isinf(radius)
    if attention == "dense" and local:
        idx, _ = neighbours(side, radius)
        far = jnp.ones((n, n), bool).at[np.arange(n)[:, None], idx].set(False)
    if attention == "local":
        idx, valid = neighbours(side, radius) if local else neighbours(side, 2.0 * side)
        is_self = jnp.asarray(idx == np.arange(n)[:, None])
        idx, valid = jnp.asarray(idx), jnp.asarray(valid)

    def nets(net, x):  # x (G, N, D) -> (G, N, D)
        h = jnp.einsum("gnd,gdh->gnh", x, net["w1"]) + net["b1"][:, None]
        h = jax.nn.gelu(h, approximate=False)
        return jnp.einsum("gnh,ghd->gnd", h, net["w2"]) + net["b2"][:, None]

    def consensus(x):  # (L, N, D)
        keys = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        if attention == "dense":
            sim = jnp.einsum("lid,ljd->lij", x, keys) * dim**-0.5
            sim = jnp.where(eye, TOKEN_ATTEND_SELF_VALUE, sim)
            if local:
                sim = jnp.where(far, -jnp.finfo(sim.dtype).max, sim)
            return jnp.einsum("lij,ljd->lid", jax.nn.softmax(sim, axis=-1), x)
        kj, vj = keys[:, idx], x[:, idx]  # (L, N, k, D)
        sim = jnp.einsum("lid,likd->lik", x, kj) * dim**-0.5
        sim = jnp.where(is_self, TOKEN_ATTEND_SELF_VALUE, sim)
        sim = jnp.where(valid, sim, -jnp.inf)
        return jnp.einsum("lik,likd->lid", jax.nn.softmax(sim, axis=-1), vj)

    def forward(img):
        c, h, w = img.shape
        t = img.reshape(c, h // patch, patch, w // patch, patch).transpose(1, 3, 2, 4, 0)
        tokens = t.reshape(n, patch * patch * c) @ p["tok_w"] + p["tok_b"]  # (N, D)
        start = jnp.broadcast_to(p["init"][:, None], (levels, n, dim))

        def body(x, _):
            below = jnp.concatenate([tokens[None], x[:-1]], axis=0)
            up = nets(p["bottom_up"], below)
            down = nets(p["top_down"], x[1:] + p["pos"][None])
            down = jnp.concatenate([down, jnp.zeros_like(x[:1])], axis=0)
            return (x + up + down + consensus(x)) / contributions, None

        return jax.lax.scan(body, start, None, length=iters)[0]

    return jax.jit(forward)


def agreement(a, b) -> float:
    """max|a - b| / max(max|b|, 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1.0))


def peers(model, cfg, weights, img, iters, radius, patch=2, max_dense_columns=2048):
    """``{"jax_dense": fn, "jax_local": fn}`` (dense left out above ``max_dense_columns``:
    its N x N scores; local left out for global attention, where it is dense), each
    compiled and checked against glomsim on ``img`` first; raises AssertionError on a
    disagreement."""
    import glomsim as gs

    side = cfg.grid[0]
    params = params_from_glom_pytorch(model)
    ours = gs.simulate(cfg, weights, inputs=img, steps=iters).embedding.values[-1]
    fns = {}
    kinds = ["dense"] if math.isinf(radius) else ["dense", "local"]
    if side * side > max_dense_columns:
        kinds.remove("dense")
    for kind in kinds:
        f = make_forward(params, side, patch, iters, radius, kind)
        theirs = np.asarray(f(img))
        gap = agreement(theirs, ours)
        if not gap < TOLERANCE:  # not an assert: python -O would time a wrong peer
            raise AssertionError(f"jax_{kind} disagrees with glomsim: {gap:.2e}")
        fns[f"jax_{kind}"] = lambda f=f: f(img).block_until_ready()
    return fns
