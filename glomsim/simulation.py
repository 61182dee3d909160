"""simulate(): run the GLOM update on the numba kernels and return an xarray.Dataset."""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np

from .config import KERNELS, GlomConfig
from .weights import NET_ARRAYS, GlomWeights, random_weights

__all__ = [
    "simulate",
    "simulate_ensemble",
    "SimulationDiverged",
    "prepare_inputs",
    "prepare_init",
]

_NORM_IDS = {"none": 0, "l2": 1, "layernorm": 2}
_LAYERNORM_EPS = 1e-5
#: Above this many columns the global (dense) attention path works in row blocks.
_DENSE_BLOCK = 2048
#: Steps of fewer floating-point operations run on one numba thread.
_SERIAL_BELOW = 2_000_000


class SimulationDiverged(FloatingPointError):
    """The state became non-finite. ``step`` and ``level`` say where; ``partial`` holds the
    Dataset of the steps computed before it (or None when the rule raised at step 1)."""

    def __init__(self, message, *, step, level, partial=None):
        super().__init__(message)
        self.step = step
        self.level = level
        self.partial = partial


def _image_to_tokens(image, weights, cfg):
    from .reference import patch_tokens

    if weights.patch_w is None:
        raise ValueError(
            f"inputs has shape {image.shape}: an image (channels, height, width) needs weights "
            "with a patch embedding; pass tokens of shape (columns, dim) instead"
        )
    c, h, w = image.shape
    p = weights.patch_size
    if c != weights.channels:
        raise ValueError(
            f"inputs image has {c} channels but the patch embedding expects {weights.channels}"
        )
    if cfg.grid is None or h != cfg.grid[0] * p or w != cfg.grid[1] * p:
        raise ValueError(
            f"inputs image is {h}x{w}; with patch_size {p} the grid {cfg.grid} needs "
            f"{None if cfg.grid is None else (cfg.grid[0] * p, cfg.grid[1] * p)}"
        )
    return patch_tokens(image.astype(cfg.np_dtype), weights)


def prepare_inputs(cfg: GlomConfig, weights: GlomWeights, inputs):
    """Level-0 tokens (N, D) in the config's dtype, and scene labels if the input has them."""
    labels = None
    if inputs is not None and hasattr(inputs, "tokens") and hasattr(inputs, "labels"):
        scene = inputs
        labels = np.asarray(scene.labels)
        if weights.patch_w is not None and getattr(scene, "image", None) is not None:
            inputs = scene.image
        else:
            inputs = scene.tokens
        if labels.shape != (cfg.levels, cfg.n_columns):
            # scenes know fewer or more levels than the config: keep the rows that exist
            fixed = np.full((cfg.levels, cfg.n_columns), -1, dtype=np.int64)
            k = min(cfg.levels, labels.shape[0])
            if labels.shape[1] != cfg.n_columns:
                raise ValueError(
                    f"inputs scene has {labels.shape[1]} columns but the config has {cfg.n_columns}"
                )
            fixed[:k] = labels[:k]
            if labels.shape[0] < cfg.levels:
                fixed[k:] = labels[-1]
            labels = fixed
    dtype = cfg.np_dtype
    N, D = cfg.n_columns, cfg.dim
    if inputs is None:
        return np.zeros((N, D), dtype=dtype), labels
    arr = np.asarray(inputs)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"inputs must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 3:
        tokens = _image_to_tokens(arr, weights, cfg)
    elif arr.shape == (N, D):
        tokens = arr.astype(dtype)
    else:
        raise ValueError(
            f"inputs has shape {arr.shape}; expected tokens ({N}, {D}) = (columns, dim) or an "
            "image (channels, height, width) for weights with a patch embedding"
        )
    # one sum first (no boolean temporary; finite unless an entry is not, or it overflows:
    # an overflow is not an error here, whatever np.seterr says)
    with np.errstate(over="ignore", invalid="ignore"):
        total = tokens.sum()
    if not math.isfinite(total) and not np.all(np.isfinite(tokens)):
        raise ValueError("inputs contains NaN or inf")
    return np.ascontiguousarray(tokens, dtype=dtype), labels


def prepare_init(cfg: GlomConfig, weights: GlomWeights, init):
    """Initial state (L, N, D): ``init`` as given (or (L, D) broadcast to all columns);
    by default the weights' initial levels, zeros when they have none."""
    return np.ascontiguousarray(_initial_state(cfg, weights, init))


def _initial_state(cfg: GlomConfig, weights: GlomWeights, init):
    """``prepare_init`` without the copy where it is not needed: the default start is a
    read-only broadcast view of the (L, D) initial levels (runs copy it into their first
    record anyway; the extra copy was ~40 us of a small run)."""
    L, N, D = cfg.levels, cfg.n_columns, cfg.dim
    dtype = cfg.np_dtype
    if init is None:
        base = weights.init_levels if weights.init_levels is not None else np.zeros((L, D))
        return np.broadcast_to(base.astype(dtype)[:, None, :], (L, N, D))
    arr = np.asarray(init)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"init must be a numeric array, got dtype {arr.dtype}")
    if arr.shape == (L, D):
        arr = np.broadcast_to(arr[:, None, :], (L, N, D))
    if arr.shape != (L, N, D):
        raise ValueError(
            f"init has shape {arr.shape}; expected ({L}, {N}, {D}) = (levels, columns, dim) "
            f"or ({L}, {D}) for the same start in every column"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"init contains NaN or inf (first at level {bad[0]}, column {bad[1]}, feature {bad[2]})"
        )
    return np.ascontiguousarray(arr, dtype=dtype)


_STACKED: dict = {}
_STACKED_LOCK = threading.Lock()
_STACKED_MAX_BYTES = 256 * 2**20


def _stacked_nets(wlist: tuple, dt: np.dtype, splits: int):
    """The nets of ``wlist`` stacked along a member axis in the run's dtype, with the hidden
    layer cut into ``splits`` contiguous chunks (w1 (M, L, S, D, H/S), b1 (M, L, S, H/S),
    w2 (M, L, S, H/S, D), b2 (M, L, D)), and the positional codes likewise; cached by
    content hash (weights are immutable values): converting dim-256 nets to float32 on
    every call had cost ~5 ms a run."""
    key = (tuple(w.content_hash() for w in wlist), dt.str, splits)
    with _STACKED_LOCK:
        hit = _STACKED.get(key)
    if hit is None:
        pos = np.ascontiguousarray(np.stack([w.pos_code for w in wlist]), dtype=dt)
        if wlist[0].identity:
            z5, z4, z3 = (np.zeros((1,) * n, dtype=dt) for n in (5, 4, 3))
            nets = (z5, z4, z5, z3, z5, z4, z5, z3)
        else:
            nets = []
            for k in NET_ARRAYS:
                a = np.stack([getattr(w, k) for w in wlist])
                if k.endswith("w1"):  # (M, L, D, H) -> (M, L, S, D, H/S)
                    m, n, d, h = a.shape
                    a = a.reshape(m, n, d, splits, h // splits).transpose(0, 1, 3, 2, 4)
                elif k.endswith("b1"):  # (M, L, H) -> (M, L, S, H/S)
                    m, n, h = a.shape
                    a = a.reshape(m, n, splits, h // splits)
                elif k.endswith("w2"):  # (M, L, H, D) -> (M, L, S, H/S, D)
                    m, n, h, d = a.shape
                    a = a.reshape(m, n, splits, h // splits, d)
                nets.append(np.ascontiguousarray(a, dtype=dt))
            nets = tuple(nets)
        hit = (nets, pos)
        # only shared weights, up to a few sets in turn (sweeps, benchmarks) and 256 MB
        # in all: per-member ensembles are restacked on every call instead of kept alive
        size = sum(a.nbytes for a in (pos, *nets))
        if len(wlist) == 1 and size <= _STACKED_MAX_BYTES:
            with _STACKED_LOCK:
                while _STACKED and (
                    len(_STACKED) >= 4
                    or size + sum(v for _, v in _STACKED.values()) > _STACKED_MAX_BYTES
                ):
                    _STACKED.pop(next(iter(_STACKED)))
                _STACKED[key] = (hit, size)
        return hit
    return hit[0]


class _Plan:
    """Everything fixed for a run: weights in the run's dtype, neighbour lists, buffers."""

    def __init__(self, cfg: GlomConfig, weights, members: int = 1):
        from ._kernels.fused import BOUND_SHIFT_MAX
        from .neighbours import neighbour_csr
        from .reference import GLOM_PYTORCH_SELF_SCORE, bounded_tolerance

        self.cfg = cfg
        dt = self.dtype = cfg.np_dtype
        L, N, D, H = cfg.levels, cfg.n_columns, cfg.dim, cfg.hidden_width
        # one GlomWeights shared by all members, or one per member (all identity or none)
        wlist = list(weights) if isinstance(weights, (list, tuple)) else [weights]
        weights = wlist[0]
        self.members = members
        self.identity = weights.identity
        self._weights = weights
        self.pos_code = np.ascontiguousarray(weights.pos_code, dtype=dt)
        self.zero_bias = np.zeros(D, dtype=dt)
        self.gelu_consts = np.array([0.5, 1 / math.sqrt(2.0), 1.0], dtype=dt)
        self.ln_eps = dt.type(_LAYERNORM_EPS)
        self.norm_id = _NORM_IDS[cfg.normalize]
        positions = cfg.position_array()
        self.levels = []
        for level in range(L):
            att = cfg.attention_at(level)
            bound = (att.epsilon or 0.0) * (1.0 + bounded_tolerance(dt))
            params = np.array(
                [att.beta, bound, 1 / math.sqrt(D), GLOM_PYTORCH_SELF_SCORE, 1e-12,
                 1.0, 2.0, BOUND_SHIFT_MAX, np.inf],
                dtype=dt,
            )  # fmt: skip
            dense = math.isinf(att.radius) and att.kernel != "bounded"
            entry = dict(
                kernel=KERNELS.index(att.kernel),
                self_excluded=not att.include_self,
                params=params,
                dense=dense,
            )
            if not dense:
                indptr, indices = neighbour_csr(positions, att)
                entry.update(
                    indptr=indptr, indices=indices, scores=np.empty(len(indices), dtype=dt)
                )
            self.levels.append(entry)
        # arrays of the fused whole-step kernel
        self.kernels = np.array([e["kernel"] for e in self.levels], dtype=np.int64)
        self.self_excl = np.array([e["self_excluded"] for e in self.levels], dtype=np.bool_)
        self.params = np.stack([e["params"] for e in self.levels]).astype(dt)
        self.dense = np.array([e["dense"] for e in self.levels], dtype=np.bool_)
        indptr_all = np.zeros((L, N + 1), dtype=np.int64)
        chunks, offset, max_k = [], 0, 1
        for level, e in enumerate(self.levels):
            if not e["dense"]:
                indptr_all[level] = e["indptr"] + offset
                chunks.append(e["indices"])
                offset += len(e["indices"])
                max_k = max(max_k, int(np.diff(e["indptr"]).max(initial=0)))
            else:
                indptr_all[level] = offset
        self.indptr_all = indptr_all
        self.indices_all = np.concatenate(chunks) if chunks else np.zeros(1, dtype=np.int64)
        self.max_k = max_k
        M = members
        self.norms_all = np.empty((M, L, N), dtype=dt)
        self.sqnorms_all = np.empty((M, L, N), dtype=dt)
        self.inv_norms = np.empty((M, L, N), dtype=dt)
        # The work split is a function of the sizes only, so results never depend on the
        # number of threads. A net task multiplies about 256 rows: BLAS repacks the weights
        # on every call, and 128-row tasks cost 10% more per FLOP than 256-row ones on
        # dim-256 nets. Members sharing one set of nets run them as one product over a
        # group of whole members (about 256 rows); one member per task when each has its
        # own nets.
        shared = len(wlist) == 1
        self.group = 256 // N if (shared and members > 1 and N <= 128) else 1
        ng = -(-M // self.group)
        nb = 1 if self.group > 1 else -(-N // 256)
        self.block = -(-N // nb)
        # When a net would be a single task, it is cut in two, along the hidden layer for
        # wide nets (each weight is still packed once per step) or else into two row
        # blocks. First chosen because a step ran 2L-1 nets, an odd number of equal tasks
        # for two threads; steps after the first now run 2L-2 (level 0's bottom-up net
        # runs once per run), and the cut still paid: uncut, the nets config (dim 256,
        # 16x16) took 17.9-20.2 against 16.2-18.1 ms an iteration, and 64-row tasks on
        # the small config 0.44-0.46 against 0.38 ms.
        # The hidden-layer cut depends on N and H only (not on members), so an ensemble
        # member adds its hidden units in the same order as the same run alone.
        self.splits = 2 if (N <= 256 and H >= 512 and H % 2 == 0) else 1
        if nb * ng == 1 and self.splits == 1 and N >= 16:
            self.block = -(-N // 2)
        self.nets, self.pos_all = _stacked_nets(tuple(wlist), dt, self.splits)
        # members per chunk of the in-numba run (see _kernels.fused.run_steps): whole groups,
        # about 256 KB of states. 256 runs of 8x8 columns, dim 16: 0.94 s on one thread
        # stepping all members together, 0.66-0.69 s in chunks of 8-64; on two threads
        # ~0.57 s together, 0.36-0.47 s in chunks of 20 (this rule's choice)
        per = max(1, (256 * 1024) // (L * N * D * dt.itemsize))
        self.chunk = min(M, max(self.group, per // self.group * self.group))
        self.where = np.zeros(2, dtype=np.int64)  # (member, level) of a failed run
        # rows per task of attention and combination: at most 128, so that few large
        # levels still split evenly over two threads
        self.rows = min(self.block, 128)
        self.fast_erf = dt == np.float32
        self.hbuf = np.empty((N, H), dtype=dt)
        self.bu = np.empty((N, D), dtype=dt)
        self.td = np.empty((N, D), dtype=dt)
        self.td_in = np.empty((N, D), dtype=dt)
        self.att = np.empty((N, D), dtype=dt)
        self.norms = np.empty(N, dtype=dt)
        self.sqnorms = np.empty(N, dtype=dt)
        self.mix_cache: dict[int, np.ndarray] = {}
        self._fused_cache: dict[int, tuple] = {}
        self._schedule_length = cfg.schedule_length
        self._task_cache: dict[tuple, np.ndarray] = {}
        self._tables = None
        self._bu0_ready = False  # step by step: netbuf holds level 0's bottom-up output
        self._nbytes = None
        # outputs of every net of a step, (net, level, member, column, feature)
        shape = (2, self.splits, L, M, N, D) if not self.identity else (2, 1, 1, 1, 1, 1)
        self.netbuf = np.empty(shape, dt)
        self.nonfinite = np.zeros(L * M * -(-N // self.rows), dtype=np.uint8)
        # per-thread scratch of the fused step, one slot per thread of the run (simulate
        # only ever lowers the thread count after planning; run/fused_step check it)
        import numba

        T = self.threads = numba.get_num_threads()
        net_rows = 1 if self.identity else self.group * self.block
        hc = 1 if self.identity else H // self.splits
        dense_n = N if self.dense.any() else 1
        self.scratch = (
            np.empty((T, net_rows, D), dt),
            np.empty((T, net_rows, hc), dt),
            np.empty((T, net_rows, D), dt),
            np.empty((T, self.rows, D), dt),
            np.empty((T, self.rows, dense_n), dt),
        )

    @functools.cached_property
    def W(self) -> dict:
        """The first member's weights in the run's dtype, for the level-by-level path that
        custom rules take (the fused step reads the stacked ``nets`` instead)."""
        return self._weights.astype_arrays(self.dtype)

    def nbytes(self) -> int:
        """Bytes of the buffers this plan owns (not the weights or nets: see ``detach``),
        counted once: the buffers never change after planning (the pool asks after every
        run, ~30 us a time right after a kernel)."""
        if self._nbytes is None:
            # pos_all is the weights' (dropped by detach, which may not have run yet)
            arrays = [
                v for k, v in vars(self).items() if isinstance(v, np.ndarray) and k != "pos_all"
            ]
            arrays += list(self.scratch)
            arrays += [a for e in self.levels for a in e.values() if isinstance(a, np.ndarray)]
            self._nbytes = sum(a.nbytes for a in arrays)
        return self._nbytes

    def attach(self, weights):
        """Give a plan from the pool this run's weights (the same content as its own)."""
        self._weights = weights
        self.nets, self.pos_all = _stacked_nets((weights,), self.dtype, self.splits)

    def detach(self):
        """Let go of the weights and their stacked nets while the plan waits in the pool:
        they stay in ``_stacked_nets``'s capped cache, or are freed."""
        self._weights = self.nets = self.pos_all = None
        self.__dict__.pop("W", None)  # custom rules' converted weights (cached_property)

    def work_per_step(self) -> float:
        """Rough floating-point operations of one step (nets and attention), counting the
        2L-1 nets of a first step (``_SERIAL_BELOW`` was chosen with this count)."""
        cfg = self.cfg
        n, d, h = cfg.n_columns, cfg.dim, cfg.hidden_width
        nets = 0 if self.identity else (2 * cfg.levels - 1) * 4 * d * h
        k = self.max_k if not self.dense.any() else n
        return self.members * n * (nets + 4 * cfg.levels * k * d)

    def mix(self, t: int) -> np.ndarray:
        """The (L, 4) float64 mixing weights of step t (cached: constant after the
        schedule, and Python-side work per step showed at ~20% of a small step)."""
        key = min(t, self._schedule_length)
        w = self.mix_cache.get(key)
        if w is None:
            w = self.mix_cache[key] = self.cfg.mix_weights(key)
        return w

    def _fused_args(self, t: int, bu0_ready: bool = False):
        """(mix in the run's dtype, net tasks, whether they run level 0's bottom-up net) of
        step t, cached like ``mix``; with ``bu0_ready`` the tasks leave that net out."""
        key = (min(t, self._schedule_length), bu0_ready)
        hit = self._fused_cache.get(key)
        if hit is None:
            mix = self.mix(t).astype(self.dtype)
            tasks = self.net_tasks(mix, bu0_ready=bu0_ready)
            hit = self._fused_cache[key] = (mix, tasks, _runs_bu0(tasks))
        return hit

    # ----- contributions ----------------------------------------------------------------
    def _mlp(self, x, prefix, level, out):
        from ._kernels.mlp import ERF_F32, bias_gelu

        W = self.W
        np.matmul(x, W[prefix + "_w1"][level], out=self.hbuf)
        bias_gelu(self.hbuf, W[prefix + "_b1"][level], self.fast_erf, ERF_F32, self.gelu_consts)
        np.matmul(self.hbuf, W[prefix + "_w2"][level], out=out)
        return out, W[prefix + "_b2"][level]

    def bottom_up(self, below, level):
        """(pre-bias output, bias): the bias is added inside the fused combination."""
        if self.identity:
            return below, self.zero_bias
        return self._mlp(below, "bu", level, self.bu)

    def top_down(self, above, level):
        np.add(above, self.pos_code, out=self.td_in)
        if self.identity:
            return self.td_in, self.zero_bias
        return self._mlp(self.td_in, "td", level, self.td)

    def attention(self, x, level, out):
        from ._kernels.attention import GLOM_PYTORCH, local_attention, row_norms, softmax_rows

        e = self.levels[level]
        row_norms(x, self.norms)
        if not e["dense"]:
            local_attention(
                x,
                e["indptr"],
                e["indices"],
                e["kernel"],
                e["self_excluded"],
                e["params"],
                self.norms,
                e["scores"],
                out,
            )
            return out
        n = x.shape[0]
        if e["kernel"] == GLOM_PYTORCH:
            key = x / np.maximum(self.norms, e["params"][4])[:, None]
        else:
            key = x
        np.multiply(self.norms, self.norms, out=self.sqnorms)
        lonely = np.zeros(min(n, _DENSE_BLOCK), dtype=np.bool_)
        for r0 in range(0, n, _DENSE_BLOCK):
            r1 = min(n, r0 + _DENSE_BLOCK)
            s = x[r0:r1] @ key.T
            softmax_rows(
                s,
                r0,
                e["kernel"],
                e["self_excluded"],
                e["params"],
                self.norms,
                self.sqnorms,
                lonely[: r1 - r0],
            )
            np.matmul(s, x, out=out[r0:r1])
            if lonely[: r1 - r0].any():
                idx = np.nonzero(lonely[: r1 - r0])[0] + r0
                out[idx] = x[idx]
        return out

    # ----- one step -------------------------------------------------------------------------
    def step(self, prev, delayed, inputs, t, out, rule=None) -> bool:
        """Write E[t] into ``out`` from E[t-1] (``prev``) and E[t-d] (``delayed``); False
        when E[t] holds a NaN or an infinity. Steps of one run come in order from t = 1,
        with the same inputs."""
        if rule is None:
            return self.fused_step(prev, delayed, inputs, t, out)
        mix = self.mix(t)
        for level in range(self.cfg.levels):
            below = inputs if level == 0 else prev[level - 1]
            self._custom(prev, delayed, below, level, mix[level], out, rule, t)
        return bool(np.isfinite(out).all())

    def fused_step(self, prev, delayed, inputs, t, out) -> bool:
        """States (L, N, D) of one simulation, or (M, L, N, D) of M members with inputs
        (M, N, D); False when the new state holds a NaN or an infinity. After step 1,
        level 0's bottom-up output is reused from the run's earlier steps (its input is
        constant), so the steps of a run must come in order, with the same inputs."""
        from ._kernels.fused import step_all

        self._check_threads()
        if prev.ndim == 3:
            prev, delayed, out, inputs = prev[None], delayed[None], out[None], inputs[None]
        if t <= 1:
            self._bu0_ready = False
        ready = self._bu0_ready
        mix, tasks, runs_bu0 = self._fused_args(t, ready)
        step_all(prev, delayed, inputs, out, *self.nets, self.pos_all, self.identity, mix,
                 tasks, *self._kernel_tail(), ready)  # fmt: skip
        self._bu0_ready = ready or runs_bu0
        return not self.nonfinite.any()

    def run(self, out, ring, steps, record_every, inputs) -> int:
        """Steps 1..steps of the built-in rule in one numba call (see
        ``_kernels.fused.run_steps``): states in place in ``out`` (record_every 1) or in
        ``ring`` with every record_every-th and the last copied to ``out``, members
        ``self.chunk`` at a time. Returns the first step whose state is not finite, or
        steps + 1, with the first failing (member, level) in ``self.where``."""
        from ._kernels.fused import run_steps

        self._check_threads()
        if out.ndim == 4:  # one simulation: a member axis of length 1
            out, inputs = out[:, None], inputs[None]
            ring = None if ring is None else ring[:, None]
        if ring is None:
            ring = np.empty((1,) * out.ndim, dtype=out.dtype)
        mixes, tasks, task_ptr, runs_bu0 = self._schedule_tables()
        return run_steps(steps, out, ring, record_every, self.cfg.top_down_delay, inputs,
                         *self.nets, self.pos_all, self.identity, mixes, tasks, task_ptr,
                         runs_bu0, self.chunk, self.where, *self._kernel_tail())  # fmt: skip

    def _kernel_tail(self) -> tuple:
        """The arguments ``step_all`` and ``run_steps`` share after the net tasks, in order."""
        from ._kernels.mlp import ERF_F32

        return (
            self.netbuf, self.kernels, self.self_excl, self.params, self.dense,
            self.indptr_all, self.indices_all, self.max_k, self.norms_all, self.sqnorms_all,
            self.inv_norms, self.dtype.type(1e-12), self.norm_id, self.ln_eps, self.fast_erf,
            ERF_F32, self.gelu_consts, self.block, self.rows, self.group, self.nonfinite,
            self.scratch,
        )  # fmt: skip

    def _check_threads(self):
        import numba

        if numba.get_num_threads() > self.threads:
            raise RuntimeError(
                f"numba's thread count rose from {self.threads} to {numba.get_num_threads()} "
                "after this run was planned; set it before calling simulate"
            )

    def _schedule_tables(self):
        """Mixing weights (S+1, L, 4) of steps 0..S in the run's dtype (constant after the
        schedule's length S), and all their net tasks with the row offsets of each step,
        then again without level 0's bottom-up net, and whether each step's tasks run that
        net; built once per plan (plans are reused)."""
        if self._tables is not None:
            return self._tables
        S = self._schedule_length
        mixes = np.stack([self._fused_args(s)[0] for s in range(S + 1)])
        chunked = [
            self.net_tasks(mix, self.chunk, bu0_ready=ready)
            for ready in (False, True)
            for mix in mixes
        ]
        task_ptr = np.zeros(2 * S + 3, dtype=np.int64)
        task_ptr[1:] = np.cumsum([len(t) for t in chunked])
        tasks = np.concatenate(chunked).reshape(-1, 5).astype(np.int64)
        runs_bu0 = np.array([_runs_bu0(t) for t in chunked], dtype=np.bool_)
        self._tables = (mixes, tasks, task_ptr, runs_bu0)
        return self._tables

    def net_tasks(
        self, mix: np.ndarray, members: int | None = None, bu0_ready: bool = False
    ) -> np.ndarray:
        """The first loop's tasks (see ``_kernels.fused.step_all``) for these mixing
        weights: (net, level, first member, first row, hidden chunk) of every net to run
        (bottom-up where its weight is > 0, top-down below the top where its weight is
        > 0, none for identity nets), and (2, level, member, first row, 0) for the norms
        (and key scales) of every block of rows where attention is on, spread evenly among
        them. With ``bu0_ready``, without level 0's bottom-up net (computed by an earlier
        step of the run: its input is constant)."""
        M = self.members if members is None else members
        key = (M, bu0_ready, *(mix > 0).ravel())
        tasks = self._task_cache.get(key)
        if tasks is None:
            L, N = self.cfg.levels, self.cfg.n_columns
            nets = [
                (kind, level, g0, r0, s)
                for kind in (0, 1)
                for level in range(L)
                if not self.identity and mix[level, kind] > 0 and (kind == 0 or level < L - 1)
                if not (bu0_ready and kind == 0 and level == 0)
                for g0 in range(0, M, self.group)
                for r0 in range(0, N, self.block)
                for s in range(self.splits)
            ]
            keys = [
                (2, level, member, r0, 0)
                for level in range(L)
                if mix[level, 3] > 0
                for member in range(M)
                for r0 in range(0, N, self.rows)
            ]
            # merge by relative position, so any contiguous share of the loop holds its
            # share of both kinds
            order = sorted(
                [((i + 0.5) / len(nets), 0, i) for i in range(len(nets))]
                + [((j + 0.5) / len(keys), 1, j) for j in range(len(keys))]
            )
            rows = [(nets if kind == 0 else keys)[i] for _, kind, i in order]
            tasks = np.array(rows, dtype=np.int64).reshape(-1, 5)
            self._task_cache[key] = tasks
        return tasks

    def _custom(self, prev, delayed, below, level, w, out, rule, t):
        from .reference import normalize

        L = self.cfg.levels
        bu, b = self.bottom_up(below, level)
        bu = bu + b
        td = None
        if level < L - 1:
            td, b = self.top_down(delayed[level + 1], level)
            td = td + b
        att = self.attention(prev[level], level, self.att).copy()
        try:
            new = rule(prev[level].copy(), bu, td, att, w.copy())
        except Exception as exc:
            exc.add_note(f"raised by the rule at step {t}, level {level}")
            raise
        new = np.asarray(new)
        if new.shape != prev[level].shape:
            raise ValueError(
                f"rule returned shape {new.shape} at step {t}, level {level}; expected "
                f"{prev[level].shape} = (columns, dim)"
            )
        out[level] = normalize(new.astype(self.dtype), self.cfg.normalize)


def _runs_bu0(tasks: np.ndarray) -> bool:
    """Whether these net tasks (``_Plan.net_tasks``) run level 0's bottom-up net: after
    such a step its output is kept for the rest of the run."""
    return bool(np.any((tasks[:, 0] == 0) & (tasks[:, 1] == 0)))


_PLANS: dict = {}
_PLANS_LOCK = threading.Lock()
_PLANS_MAX = 8  # keys with idle plans kept, least recently used dropped first
_PLAN_MAX_BYTES = 32 * 2**20  # buffers of one idle plan
_PLANS_MAX_BYTES = 64 * 2**20  # buffers of all idle plans


@contextlib.contextmanager
def _planned(cfg, weights, members=1):
    """A ``_Plan`` for one run: an idle one left by an earlier run with the same key
    (config, weights by content, member count, thread count), or a new one. After a run
    that returned, it is kept for the next: at most two per key and eight keys, 32 MB of
    buffers each and 64 MB in all; per-member weights never. Planning and building its
    tables was ~0.1 ms of a ~3 ms small run, and sweeps make thousands of runs. Each run
    holds its plan alone, so concurrent runs never share buffers. An idle plan keeps
    neither the weights nor their stacked nets (those live in ``_stacked_nets``'s capped
    cache); :func:`_forget_plans` empties the pool."""
    import numba

    key = None
    if not isinstance(weights, (list, tuple)):
        key = (cfg, weights.content_hash(), members, numba.get_num_threads())
    plan = None
    if key is not None:
        with _PLANS_LOCK:
            idle = _PLANS.get(key)
            if idle:
                plan = idle.pop()
    if plan is None:
        plan = _Plan(cfg, weights, members)
    else:
        plan.attach(weights)
    yield plan
    # only after a run that returned (a failed one may have left its buffers anyhow)
    if key is not None and plan.nbytes() <= _PLAN_MAX_BYTES:
        plan.detach()
        with _PLANS_LOCK:
            idle = _PLANS.pop(key, [])
            if len(idle) < 2:
                idle.append(plan)
            _PLANS[key] = idle

            def held():
                return sum(p.nbytes() for plans in _PLANS.values() for p in plans)

            while len(_PLANS) > _PLANS_MAX or (_PLANS and held() > _PLANS_MAX_BYTES):
                _PLANS.pop(next(iter(_PLANS)))


def _forget_plans():
    """Drop every idle plan (the benchmark does before measuring a run's peak memory)."""
    with _PLANS_LOCK:
        _PLANS.clear()


def _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only=False):
    """Validate the run options shared by simulate and simulate_ensemble; the step count."""
    steps = cfg.steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps={steps!r} must be an integer >= 0")
    if (
        isinstance(record_every, bool)
        or not isinstance(record_every, (int, np.integer))
        or record_every < 1
    ):
        raise ValueError(f"record_every={record_every!r} must be an integer >= 1")
    if stop_when_settled is not None and not (
        isinstance(stop_when_settled, (int, float)) and stop_when_settled > 0
    ):
        raise ValueError(f"stop_when_settled={stop_when_settled!r} must be a number > 0 or None")
    if not isinstance(summaries_only, (bool, np.bool_)):
        raise TypeError(f"summaries_only={summaries_only!r} must be True or False")
    if summaries_only and record_every != 1:
        raise ValueError(
            f"record_every={record_every!r} with summaries_only=True: a summaries-only run "
            "keeps only the first and last states and summarises every step; leave "
            "record_every at 1"
        )
    return int(steps)


def _check_rule(rule):
    if rule is not None and not callable(rule):
        raise TypeError(
            f"rule={rule!r} must be callable as rule(previous, bottom_up, top_down, attention, mix)"
        )


def simulate(
    cfg: GlomConfig,
    weights: GlomWeights | None = None,
    *,
    inputs=None,
    init=None,
    steps: int | None = None,
    record_every: int = 1,
    progress: bool = False,
    rule=None,
    stop_when_settled: float | None = None,
    summaries_only: bool = False,
):
    """Run the GLOM update and return the trajectory as an ``xarray.Dataset``.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights, optional
        Default ``random_weights(cfg, cfg.seed)``.
    inputs : array or scene, optional
        Tokens (columns, dim), an image (channels, height, width) for weights with a patch
        embedding, or a scene from :func:`glomsim.scenes.make_scene` (its labels are
        copied into the Dataset). Default zeros.
    init : array, optional
        Initial state (levels, columns, dim) (or (levels, dim) for all columns alike);
        default the weights' initial levels.
    steps : int, optional
        Default ``cfg.steps``.
    record_every : int
        Keep every k-th step (and always the last).
    progress : bool
        Show a progress bar.
    rule : callable, optional
        ``rule(previous, bottom_up, top_down, attention, mix) -> new`` replaces the weighted
        average, per level, with (columns, dim) arrays; ``top_down`` is None at the top
        level and ``mix`` is the (4,) float64 weights (bottom_up, top_down, previous,
        attention) of that level and step. All contributions are evaluated; the config's
        normalisation is applied to what the rule returns.
    stop_when_settled : float, optional
        End early once the RMS change of every level in one step is below this.
    summaries_only : bool
        Keep the state only at step 0 and at the last step computed, and summarise every
        step instead: memory is O(steps x levels) plus a constant, never
        O(steps x columns x dim). The Dataset then holds ``embedding`` at those two steps
        and, on the ``step`` dimension (0 ... last), ``rms(step, level)`` (RMS over column
        and feature of E_t) and ``change(step, level)`` (RMS of E_t - E_{t-1}, the quantity
        ``stop_when_settled`` tests; NaN at step 0), both float64, and
        ``attrs["summaries_only"] = 1``. ``record_every`` must then be 1 (a ValueError
        otherwise). The final state, and so :func:`analysis.islands` on
        ``ds.isel(time=-1)``, is bit-identical to a full run's;
        :func:`analysis.convergence` reads ``change``.

    Returns
    -------
    xarray.Dataset
        ``embedding(time, level, column, feature)``, ``input(column, feature)``, coords
        ``y``/``x`` and the config, weights hash and seed in ``attrs``; with
        ``summaries_only``, ``rms(step, level)`` and ``change(step, level)`` as well.

    Raises
    ------
    SimulationDiverged
        When the state becomes non-finite; names the step and level and carries the
        steps computed so far in ``.partial`` (with ``summaries_only``: the summaries of
        every step before it and the state at step 0 and the step before it).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=3, dim=8, grid=(4, 4), steps=5)
    >>> ds = gs.simulate(cfg, gs.random_weights(cfg, seed=0))
    >>> ds.embedding.shape
    (6, 3, 16, 8)
    >>> small = gs.simulate(cfg, gs.random_weights(cfg, seed=0), summaries_only=True)
    >>> small.embedding.shape, small.change.shape
    ((2, 3, 16, 8), (6, 3))
    >>> bool((small.embedding[-1] == ds.embedding[-1]).all())
    True
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    if weights is None:
        weights = random_weights(cfg, cfg.seed)
    if not isinstance(weights, GlomWeights):
        raise TypeError(f"weights must be GlomWeights or None, got {type(weights).__name__}")
    weights.check(cfg)
    steps = _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only)
    _check_rule(rule)
    tokens, labels = prepare_inputs(cfg, weights, inputs)
    state0 = _initial_state(cfg, weights, init)

    def partial(emb, times, summaries):
        return _dataset(
            cfg, weights, emb, times, tokens, labels, stopped=times[-1], summaries=summaries
        )

    with _planned(cfg, weights) as plan:
        out, times, last, summaries = _integrate(cfg, plan, state0, tokens, steps,
                                                 record_every, progress, rule,
                                                 stop_when_settled, partial,
                                                 summaries_only)  # fmt: skip
    extra = {"stopped_early_at": last} if last < steps else None
    return _dataset(cfg, weights, out, times, tokens, labels, extra=extra, summaries=summaries)


_CONTROLLER = None
_ALL_BLAS = None


def _blas_controller(everything: bool = False):
    """threadpoolctl's handle on the BLAS that numba's ``np.dot`` calls (scipy's, through
    ``scipy.linalg.cython_blas``), made once per process (scanning the loaded libraries
    costs milliseconds). Only that library is limited while a run steps: limiting and
    restoring numpy's own OpenBLAS as well woke its thread pool after every run, and its
    spinning threads then made the next run's numba threads ~35% slower. Where numpy and
    scipy share one BLAS, that one is limited."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import scipy.linalg.cython_blas  # noqa: F401 - load the library numba's np.dot uses
        from threadpoolctl import ThreadpoolController

        blas = ThreadpoolController().select(user_api="blas")
        scipy_own = [lib.filepath for lib in blas.lib_controllers if "scipy.libs" in lib.filepath]
        _CONTROLLER = blas.select(filepath=scipy_own) if scipy_own else blas
    if everything:
        # custom rules go level by level through numpy's matmul as well
        global _ALL_BLAS
        if _ALL_BLAS is None:
            from threadpoolctl import ThreadpoolController

            _ALL_BLAS = ThreadpoolController().select(user_api="blas")
        return _ALL_BLAS
    return _CONTROLLER


def _sum_squares(x) -> np.ndarray:
    """Sum of squares over (column, feature) per level, accumulated in float64 by one
    buffered pass (no float64 copy of the state): (L,) or (M, L)."""
    return np.einsum("...nd,...nd->...", x, x, dtype=np.float64)


def _integrate(
    cfg,
    plan,
    state0,
    tokens,
    steps,
    record_every,
    progress,
    rule,
    settle,
    partial,
    summaries_only=False,
):
    """Step from ``state0`` ((L, N, D), or (M, L, N, D) for M members) and return the
    recorded states, their step indices, the last step computed and the summaries.

    With ``summaries_only`` only E_0 and the last state are kept, and the summaries are
    ``{"rms": ..., "change": ...}``, float64 arrays (steps computed + 1, L) or (..., M, L)
    over every step from 0; otherwise they are None. ``partial(emb, times, summaries)``
    builds the Dataset that SimulationDiverged carries."""
    d = cfg.top_down_delay
    # Recording every step, E[t] is computed in place in the output (out[t]); otherwise a
    # ring buffer holds the last d + 1 states (slot t % (d + 1) holds E[t]) and recorded
    # steps are copied out. Copying every step had cost ~15% of an ensemble's run.
    direct = record_every == 1 and not summaries_only
    ring = None if direct else np.empty((d + 1,) + state0.shape, dtype=state0.dtype)
    if not direct:
        ring[0] = state0
    if summaries_only:
        n_records = 1 + (steps > 0)  # E_0 and the last state
    else:
        n_records = len(range(0, steps + 1, record_every)) + (steps % record_every != 0)
    out = np.empty((n_records,) + state0.shape, dtype=state0.dtype)
    out[0] = state0
    n_rec = 1
    times = [0]
    summaries = None
    scratch = None
    size = state0.shape[-2] * state0.shape[-1]  # entries per level: the RMS's divisor
    if summaries_only or settle is not None:
        scratch = np.empty(state0.shape, state0.dtype)  # E_t - E_{t-1}
    if summaries_only:
        lead = state0.shape[:-2]  # (L,) or (M, L)
        summaries = {
            "rms": np.empty((steps + 1,) + lead, dtype=np.float64),
            "change": np.empty((steps + 1,) + lead, dtype=np.float64),
        }
        summaries["rms"][0] = np.sqrt(_sum_squares(state0) / size)
        summaries["change"][0] = np.nan  # E_0 has no predecessor

    def kept(upto):
        """(states, times, summaries) of steps 0..upto, ring[upto % (d + 1)] = E[upto]."""
        if not summaries_only:
            return out[:n_rec], times, None
        if upto > 0:
            out[1] = ring[upto % (d + 1)]
        sums = {k: v[: upto + 1] for k, v in summaries.items()}
        return out[: 1 + (upto > 0)], [0, upto] if upto > 0 else [0], sums

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="simulate", unit="step")
    last = 0
    # One BLAS thread: OpenBLAS's idle threads spin and, beside numba's parallel kernels,
    # made a step 100x slower on 2 cores. The fused kernel spreads work over numba's threads.
    # (each library's own setter, not threadpoolctl's limit(): that cost ~80 us a call
    # right after other work, 2% of a small run)
    blas = _blas_controller(everything=rule is not None).lib_controllers
    blas_threads = [lib.get_num_threads() for lib in blas]
    for lib, n in zip(blas, blas_threads, strict=True):
        if n != 1:
            lib.set_num_threads(1)
    import numba

    threads = numba.get_num_threads()
    serial = plan.work_per_step() < _SERIAL_BELOW and threads > 1
    if serial:
        numba.set_num_threads(1)  # waking threads costs more than a tiny step

    def diverged(t, new=None, member_level=None):
        """The error for step t: the first failing (member, level) is found in ``new``
        (E_t), or given by the in-numba run (which does not finish E_t for every
        member)."""
        if member_level is None:
            finite = np.isfinite(new).all(axis=(-2, -1))  # (L,) or (M, L)
            bad = np.argwhere(~finite.reshape(-1, finite.shape[-1]))[0]
            member_level = (int(bad[0]), int(bad[1]))
        member, level = member_level
        where = f", member {member}" if state0.ndim == 4 else ""
        emb, kept_times, sums = kept(t - 1)
        if summaries_only:
            what = f"the summaries of steps 0-{t - 1} and the state at step {t - 1}"
        else:
            what = f"{n_rec} recorded steps up to step {times[-1]}"
        return SimulationDiverged(
            f"the state became non-finite at step {t}, level {level}{where}; "
            f"{what} are in .partial "
            "(try smaller mixing weights, normalize='l2' or a smaller beta)",
            step=t,
            level=level,
            partial=partial(emb, kept_times, sums),
        )

    try:
        in_numba = rule is None and settle is None and not summaries_only and bar is None
        if in_numba:
            # nothing to do between steps in Python: the whole run is one numba call, so
            # threads go from one step to the next without sleeping (~15% of a small step)
            failed = plan.run(out, ring, steps, record_every, tokens)
            last = min(failed - 1, steps)
            times = [0] + [t for t in range(1, last + 1) if t % record_every == 0 or t == steps]
            n_rec = len(times)
            if failed <= steps:
                raise diverged(failed, member_level=tuple(int(v) for v in plan.where))
        for t in range(1, 0 if in_numba else steps + 1):  # step by step otherwise
            if direct:
                prev, delayed, new = out[t - 1], out[max(t - d, 0)], out[t]
            else:
                prev = ring[(t - 1) % (d + 1)]
                delayed = ring[max(t - d, 0) % (d + 1)]
                new = ring[t % (d + 1)]
            if not plan.step(prev, delayed, tokens, t, new, rule=rule):
                raise diverged(t, new)
            last = t
            settled = False
            if scratch is not None:
                np.subtract(new, prev, out=scratch)
                change = np.sqrt(_sum_squares(scratch) / size)
                if summaries_only:
                    summaries["change"][t] = change
                    summaries["rms"][t] = np.sqrt(_sum_squares(new) / size)
                settled = settle is not None and bool((change < settle).all())
            if not summaries_only and (t % record_every == 0 or t == steps or settled):
                if not direct:
                    out[n_rec] = new
                n_rec += 1
                times.append(t)
            if bar is not None:
                bar.update(1)
            if settled:
                break
    finally:
        if serial:  # only when changed: ~25 us a call right after other work
            numba.set_num_threads(threads)
        for lib, n in zip(blas, blas_threads, strict=True):
            if n != 1:
                lib.set_num_threads(n)
        if bar is not None:
            bar.close()
    emb, times, summaries = kept(last)
    return emb, times, last, summaries


def _dataset(
    cfg, weights, emb, times, tokens, labels, stopped=None, extra=None, summaries=None, member=False
):
    from .dataset import create_dataset

    attrs = dict(extra or {})
    if stopped is not None:
        attrs["partial_until_step"] = stopped
    if member:
        # (time, member, ...) -> (member, time, ...), and (step, member, level) likewise
        emb = np.moveaxis(emb, 1, 0)
        if summaries is not None:
            summaries = {k: np.moveaxis(v, 1, 0) for k, v in summaries.items()}
    return create_dataset(
        cfg, weights, emb, times, tokens, labels=labels, extra_attrs=attrs, summaries=summaries
    )


def simulate_ensemble(
    cfg: GlomConfig,
    weights=None,
    *,
    members: int | None = None,
    inputs=None,
    init=None,
    steps: int | None = None,
    record_every: int = 1,
    progress: bool = False,
    stop_when_settled: float | None = None,
    summaries_only: bool = False,
):
    """Run many simulations of the same config in one batched call.

    Every member shares the config; each has its own inputs and initial state, and its own
    weights or weights shared by all. All members advance together through one parallel
    kernel per step, so an ensemble of small runs is not dominated by per-call overhead.

    Parameters
    ----------
    cfg : GlomConfig
    weights : GlomWeights or sequence of GlomWeights, optional
        One set shared by all members, or one per member. Default: one
        ``random_weights(cfg, cfg.seed)`` shared by all.
    members : int, optional
        Number of members; needed only when neither a weights sequence, ``inputs`` nor
        ``init`` says it.
    inputs : sequence or array, optional
        Per member: tokens (columns, dim), images or scenes; or one array
        (members, columns, dim). Default zeros.
    init : array, optional
        (members, levels, columns, dim); default each member's weights' initial levels.
    steps, record_every, progress, stop_when_settled, summaries_only
        As in :func:`simulate` (settling waits for every member).

    Returns
    -------
    xarray.Dataset
        ``embedding(member, time, level, column, feature)``, ``input(member, column,
        feature)`` and, for scenes, ``label(member, level, column)``; with
        ``summaries_only``, ``rms(member, step, level)`` and ``change(member, step, level)``
        as well. Member m equals ``simulate(cfg, weights[m], inputs=inputs[m],
        init=init[m])`` to round-off (float32) or exactly (float64 use the same arithmetic).

    Examples
    --------
    >>> import glomsim as gs
    >>> cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=5)
    >>> ds = gs.simulate_ensemble(cfg, members=8)
    >>> ds.embedding.dims
    ('member', 'time', 'level', 'column', 'feature')
    """
    if not isinstance(cfg, GlomConfig):
        raise TypeError(f"cfg must be a GlomConfig, got {type(cfg).__name__}")
    sizes = {}
    if isinstance(weights, (list, tuple)):
        sizes["weights"] = len(weights)
    if inputs is not None and not (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
        sizes["inputs"] = len(inputs)
    if init is not None:
        sizes["init"] = len(init)
    if members is not None:
        if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
            raise ValueError(f"members={members!r} must be an integer >= 1")
        sizes["members"] = int(members)
    if not sizes:
        raise ValueError("members: give members=M, or per-member weights, inputs or init")
    if len(set(sizes.values())) > 1:
        raise ValueError(
            "members: the number of members differs between "
            + ", ".join(f"{k} ({v})" for k, v in sizes.items())
        )
    M = next(iter(sizes.values()))
    if weights is None:
        weights = random_weights(cfg, cfg.seed)
    wlist = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    for i, w in enumerate(wlist):
        if not isinstance(w, GlomWeights):
            raise TypeError(f"weights[{i}] must be GlomWeights, got {type(w).__name__}")
        w.check(cfg)
    if len({w.identity for w in wlist}) > 1:
        raise ValueError("weights: mix of identity and non-identity weights in one ensemble")
    steps = _check_run_args(cfg, steps, record_every, stop_when_settled, summaries_only)
    per = [wlist[m] if len(wlist) > 1 else wlist[0] for m in range(M)]
    tokens, labels = [], []
    for m in range(M):
        item = None if inputs is None else inputs[m]
        t, lab = prepare_inputs(cfg, per[m], item)
        tokens.append(t)
        labels.append(lab)
    tokens = np.stack(tokens)
    labels = None if any(lab is None for lab in labels) else np.stack(labels)
    state0 = np.stack(  # one copy: np.stack copies the members' (broadcast) starts
        [_initial_state(cfg, per[m], None if init is None else init[m]) for m in range(M)]
    )
    shared = wlist if len(wlist) > 1 else wlist[0]

    def partial(emb, times, summaries):
        return _dataset(
            cfg,
            shared,
            emb,
            times,
            tokens,
            labels,
            stopped=times[-1],
            summaries=summaries,
            member=True,
        )

    with _planned(cfg, shared, members=M) as plan:
        out, times, last, summaries = _integrate(cfg, plan, state0, tokens, steps,
                                                 record_every, progress, None,
                                                 stop_when_settled, partial,
                                                 summaries_only)  # fmt: skip
    extra = {"stopped_early_at": last} if last < steps else None
    return _dataset(
        cfg, shared, out, times, tokens, labels, extra=extra, summaries=summaries, member=True
    )
