"""The column's nets: per-level bottom-up and top-down MLPs, positional code, patch embedding.

Row-vector convention: an MLP maps ``x`` (..., D) to ``act(x @ w1 + b1) @ w2 + b2`` with
``w1`` (D, H) and ``w2`` (H, D); all levels' nets are stacked along a leading level axis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._validate import check_int, check_real
from .config import GlomConfig

__all__ = [
    "GlomWeights",
    "random_weights",
    "identity_weights",
    "load_weights",
    "sinusoidal_positions",
]

#: The nets' fields: bottom-up then top-down, each (w1, b1, w2, b2).
NET_ARRAYS = ("bu_w1", "bu_b1", "bu_w2", "bu_b2", "td_w1", "td_b1", "td_w2", "td_b2")

_ARRAYS = NET_ARRAYS + (
    "pos_code",
    "init_levels",
    "patch_w",
    "patch_b",
)


@dataclass(eq=False)
class GlomWeights:
    """Weights of one GLOM column (shared by all columns and steps).

    Attributes
    ----------
    bu_w1, bu_b1, bu_w2, bu_b2 : arrays (L, D, H), (L, H), (L, H, D), (L, D)
        Bottom-up nets f_l; f_0 reads the input token.
    td_w1, td_b1, td_w2, td_b2 : arrays (L-1, D, H), (L-1, H), (L-1, H, D), (L-1, D)
        Top-down nets g_l for l = 0..L-2, reading level l+1 plus the positional code.
    pos_code : array (N, D)
        Positional code p[i] added to the top-down input.
    init_levels : array (L, D), optional
        Default initial embedding of each level, broadcast to all columns.
    patch_w, patch_b, patch_size : optional
        Patch embedding ``tokens = patches @ patch_w + patch_b`` for image inputs; a patch
        is flattened in (p1, p2, channel) order, as glom-pytorch does.
    identity : bool
        Exact identity nets (f(x) = x, g(x) = x, p = 0): a flag, not an approximation.
    meta : dict
        Free-form JSON-serialisable metadata (e.g. training settings); saved with the weights.
    """

    levels: int
    dim: int
    hidden: int
    n_columns: int
    identity: bool = False
    bu_w1: np.ndarray | None = None
    bu_b1: np.ndarray | None = None
    bu_w2: np.ndarray | None = None
    bu_b2: np.ndarray | None = None
    td_w1: np.ndarray | None = None
    td_b1: np.ndarray | None = None
    td_w2: np.ndarray | None = None
    td_b2: np.ndarray | None = None
    pos_code: np.ndarray | None = None
    init_levels: np.ndarray | None = None
    patch_w: np.ndarray | None = None
    patch_b: np.ndarray | None = None
    patch_size: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pos_code is None:
            self.pos_code = np.zeros((self.n_columns, self.dim))
        L, D, H = self.levels, self.dim, self.hidden
        if not self.identity:
            expect = {
                "bu_w1": (L, D, H),
                "bu_b1": (L, H),
                "bu_w2": (L, H, D),
                "bu_b2": (L, D),
                "td_w1": (L - 1, D, H),
                "td_b1": (L - 1, H),
                "td_w2": (L - 1, H, D),
                "td_b2": (L - 1, D),
            }
            for name, shape in expect.items():
                a = getattr(self, name)
                if a is None:
                    raise ValueError(f"weights.{name} is missing; non-identity weights need it")
                a = np.asarray(a, dtype=np.float64)
                if a.shape != shape:
                    raise ValueError(f"weights.{name} has shape {a.shape}, expected {shape}")
                setattr(self, name, a)
        self.pos_code = np.asarray(self.pos_code, dtype=np.float64)
        if self.pos_code.shape != (self.n_columns, D):
            raise ValueError(
                f"weights.pos_code has shape {self.pos_code.shape}, expected {(self.n_columns, D)}"
            )
        if self.init_levels is not None:
            self.init_levels = np.asarray(self.init_levels, dtype=np.float64)
            if self.init_levels.shape != (L, D):
                raise ValueError(
                    f"weights.init_levels has shape {self.init_levels.shape}, expected {(L, D)}"
                )
        if self.patch_w is not None:
            self.patch_w = np.asarray(self.patch_w, dtype=np.float64)
            self.patch_b = np.asarray(self.patch_b, dtype=np.float64)
            if self.patch_size is None or self.patch_w.ndim != 2 or self.patch_w.shape[1] != D:
                raise ValueError(
                    f"weights.patch_w has shape {self.patch_w.shape}; expected (p*p*channels, {D}) "
                    "and an integer patch_size"
                )
            if self.patch_w.shape[0] % (self.patch_size**2):
                raise ValueError(
                    f"weights.patch_w rows {self.patch_w.shape[0]} are not a multiple of "
                    f"patch_size**2 = {self.patch_size**2}"
                )
        for name in _ARRAYS:
            a = getattr(self, name)
            if a is not None and not np.all(np.isfinite(a)):
                raise ValueError(f"weights.{name} contains NaN or inf")
        # weights are values: their arrays are read-only copies (made in __setattr__), so
        # the content hash can be computed once (hashing 40 MB of nets on every simulate
        # call cost 40 ms) and is forgotten when an array is replaced
        for name in _ARRAYS:
            setattr(self, name, getattr(self, name))
        self._hash = None

    def __setattr__(self, name, value):
        if name in _ARRAYS and value is not None:
            value = np.array(value, dtype=np.float64, copy=True)
            value.flags.writeable = False
        object.__setattr__(self, name, value)
        if name != "_hash":
            # the hash keys the simulate's cache of converted nets: it must follow the arrays
            object.__setattr__(self, "_hash", None)

    # ---------------------------------------------------------------------------
    @property
    def channels(self) -> int | None:
        if self.patch_w is None:
            return None
        return self.patch_w.shape[0] // self.patch_size**2

    def check(self, cfg: GlomConfig) -> None:
        """Raise ValueError naming the mismatch if these weights do not fit ``cfg``."""
        for name, mine, theirs in (
            ("levels", self.levels, cfg.levels),
            ("dim", self.dim, cfg.dim),
            ("n_columns", self.n_columns, cfg.n_columns),
        ):
            if mine != theirs:
                raise ValueError(
                    f"weights do not fit the config: weights.{name}={mine} but config has {theirs}"
                )
        if not self.identity and self.hidden != cfg.hidden_width:
            raise ValueError(
                f"weights do not fit the config: weights.hidden={self.hidden} but config "
                f"hidden width is {cfg.hidden_width}"
            )

    def arrays(self) -> dict:
        return {n: getattr(self, n) for n in _ARRAYS if getattr(self, n) is not None}

    def content_hash(self) -> str:
        """sha256 over shapes, flags and float64 bytes of every array: equal weights, equal hash."""
        if getattr(self, "_hash", None) is None:
            self._hash = self._compute_hash()
        return self._hash

    def check_hash(self, expected: str | None, where: str = "weights") -> None:
        """Raise a ValueError unless these are the weights whose content hash is ``expected``
        (a dataset's ``weights_hash``; None checks nothing). The message starts with
        ``where``.

        Examples
        --------
        >>> w = identity_weights(GlomConfig(levels=1, dim=2, grid=(1, 2)))
        >>> w.check_hash(w.content_hash())
        >>> w.check_hash("0" * 64)
        Traceback (most recent call last):
        ...
        ValueError: weights: their content hash differs from the dataset's weights_hash 000000000000...; pass the weights the dataset was simulated with
        """
        if expected is not None and self.content_hash() != expected:
            raise ValueError(
                f"{where}: their content hash differs from the dataset's weights_hash "
                f"{expected[:12]}...; pass the weights the dataset was simulated with"
            )

    def _shape_header(self) -> dict:
        """The sizes and flags that the content hash and the saved file's header share."""
        return {
            "levels": self.levels,
            "dim": self.dim,
            "hidden": self.hidden,
            "n_columns": self.n_columns,
            "identity": self.identity,
            "patch_size": self.patch_size,
        }

    def _compute_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self._shape_header(), sort_keys=True).encode())
        for name, a in sorted(self.arrays().items()):
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(name.encode())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def save(self, path) -> Path:
        """Save as ``.npz`` (arrays plus a JSON header with flags and ``meta``)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        header = {**self._shape_header(), "meta": self.meta, "format": "glomsim-weights-1"}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, __header__=np.array(json.dumps(header)), **self.arrays())
        tmp.replace(path)
        return path

    def astype_arrays(self, dtype) -> dict:
        return {n: np.ascontiguousarray(a, dtype=dtype) for n, a in self.arrays().items()}

    def __eq__(self, other):
        if not isinstance(other, GlomWeights):
            return NotImplemented
        return self.content_hash() == other.content_hash() and self.meta == other.meta

    def __repr__(self):
        kind = "identity" if self.identity else "mlp"
        return (
            f"GlomWeights({kind}, levels={self.levels}, dim={self.dim}, hidden={self.hidden}, "
            f"columns={self.n_columns}, hash={self.content_hash()[:12]})"
        )


def load_weights(path) -> GlomWeights:
    """Load weights written by :meth:`GlomWeights.save`."""
    with np.load(path, allow_pickle=False) as z:
        if "__header__" not in z:
            raise ValueError(f"{path}: not a glomsim weights file (no header)")
        header = json.loads(str(z["__header__"]))
        arrays = {k: z[k] for k in z.files if k != "__header__"}
    header.pop("format", None)
    return GlomWeights(**header, **arrays)


def sinusoidal_positions(positions: np.ndarray, dim: int, scale: float = 1.0) -> np.ndarray:
    """Transformer-style sinusoidal code of 2-D positions: half the features for y, half for x.

    Columns at different positions get different codes; RMS of each code is ``scale``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = positions.shape[0]
    out = np.zeros((n, dim))
    half = [dim - dim // 2, dim // 2]
    start = 0
    for axis in range(2):
        k = half[axis]
        if k == 0:
            continue
        freqs = 1.0 / (10000.0 ** (np.arange((k + 1) // 2) * 2.0 / max(k, 1)))
        ang = positions[:, axis : axis + 1] * freqs[None, :]
        block = np.concatenate([np.sin(ang), np.cos(ang)], axis=1)[:, :k]
        out[:, start : start + k] = block
        start += k
    return out * scale * np.sqrt(2.0)


def net_fields(bu, td) -> dict:
    """GlomWeights' net fields from the (w1, b1, w2, b2) of the bottom-up and top-down nets."""
    return dict(zip(NET_ARRAYS, (*bu, *td), strict=True))


def random_weights(
    cfg: GlomConfig,
    seed: int | np.random.Generator | None = None,
    *,
    gain: float = 0.8,
    positional_scale: float = 0.5,
    init_scale: float = 0.5,
    patch_size: int | None = None,
    channels: int = 3,
    omega_0: float = 30.0,
) -> GlomWeights:
    """Fixed random nets, scaled so that activity neither explodes nor dies.

    GELU and ReLU nets: the first layer has variance 1/D, the second layer variance
    ``gain**2 / H`` times a correction for the activation's average energy (0.425 for
    GELU, 0.5 for ReLU), so each net roughly preserves the RMS of its input; biases are
    small (std 0.1). Sine nets (``"sin"``, SIREN units) are initialised as in Sitzmann et
    al. 2020 with the frequency ``omega_0`` folded into the weights, so that a net is
    ``W2 sin(W1 x + b1) + b2``: W1 uniform in +-omega_0 / D (SIREN's first layer, times
    omega_0), b1 uniform in +-omega_0 / sqrt(D) (PyTorch's bias, times omega_0), W2
    uniform in +-gain sqrt(6 / H) (SIREN's later layers, sqrt(6 / H) / omega_0, with
    omega_0 folded in as SIREN's sin(omega_0 W h) does, times ``gain``: the net then
    preserves RMS x gain like the others, where SIREN's own linear output layer would
    shrink it 30-fold), b2 std 0.1. The initial levels are N(0, 1) times
    ``init_scale`` and the positional code is sinusoidal with RMS ``positional_scale``.

    Parameters
    ----------
    cfg : GlomConfig
        Its ``bottom_up_activation`` and ``top_down_activation`` choose each net's init.
    seed : int or numpy.random.Generator, optional
        Default ``cfg.seed``.
    gain : float
        Multiplies the second layer; 1 keeps the state's RMS of order 1.
    patch_size : int, optional
        Also make a patch embedding for images of ``channels`` channels.
    omega_0 : float
        Frequency of sine units (SIREN's 30).

    Examples
    --------
    >>> cfg = GlomConfig(levels=2, dim=4, grid=(2, 2))
    >>> w = random_weights(cfg, seed=0)
    >>> w.bu_w1.shape, w.td_w1.shape
    ((2, 4, 16), (1, 4, 16))
    >>> w = random_weights(cfg.replace(top_down_activation="sin"), seed=0)
    >>> bool(abs(w.td_w1).max() <= 30 / 4)
    True
    """
    if not isinstance(seed, np.random.Generator):
        seed = cfg.seed if seed is None else seed
        seed = check_int("seed", seed, lo=0, note="or a numpy.random.Generator")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    L, D, H = cfg.levels, cfg.dim, cfg.hidden_width
    check_real("omega_0", omega_0, lo=0, lo_open=True)

    def net(n, activation):
        if activation == "sin":
            w1 = rng.uniform(-omega_0 / D, omega_0 / D, (n, D, H))
            b1 = rng.uniform(-omega_0 / np.sqrt(D), omega_0 / np.sqrt(D), (n, H))
            bound = gain * np.sqrt(6.0 / H)
            w2 = rng.uniform(-bound, bound, (n, H, D))
            return w1, b1, w2, rng.standard_normal((n, D)) * 0.1
        w1 = rng.standard_normal((n, D, H)) / np.sqrt(D)
        b1 = rng.standard_normal((n, H)) * 0.1
        w2 = rng.standard_normal((n, H, D)) * gain / np.sqrt(H * _ENERGY[activation])
        b2 = rng.standard_normal((n, D)) * 0.1
        return w1, b1, w2, b2

    bu = net(L, cfg.bottom_up_activation)
    td = net(L - 1, cfg.top_down_activation)
    pos = sinusoidal_positions(cfg.position_array(), D, scale=positional_scale)
    init = rng.standard_normal((L, D)) * init_scale
    patch_w = patch_b = None
    if patch_size is not None:
        fan_in = patch_size * patch_size * channels
        patch_w = rng.standard_normal((fan_in, D)) / np.sqrt(fan_in)
        patch_b = np.zeros(D)
    return GlomWeights(
        levels=L,
        dim=D,
        hidden=H,
        n_columns=cfg.n_columns,
        **net_fields(bu, td),
        pos_code=pos,
        init_levels=init,
        patch_w=patch_w,
        patch_b=patch_b,
        patch_size=patch_size,
        meta=_random_meta(cfg, gain, omega_0),
    )


#: E[act(z)^2] for z ~ N(0, 1): the second layer of a random net undoes it, so a net maps
#: an input of RMS r to an output of RMS about gain * r.
_ENERGY = {"gelu": 0.425, "relu": 0.5}


def _random_meta(cfg, gain, omega_0) -> dict:
    """Random weights' metadata; the activations only where a net is not GELU, so GELU
    weights compare equal to those made before activations were a choice."""
    meta = {"kind": "random", "gain": gain}
    acts = [cfg.bottom_up_activation, cfg.top_down_activation]
    if acts != ["gelu", "gelu"]:
        meta["activations"] = acts
    if "sin" in acts:
        meta["omega_0"] = omega_0
    return meta


def identity_weights(cfg: GlomConfig) -> GlomWeights:
    """Exact identity nets (f(x) = x, g(x) = x) and zero positional code.

    With these, the update rule is a pure consensus model and the invariants
    (convex combination, agreement preserved) hold exactly. Initial levels default to zeros.
    """
    return GlomWeights(
        levels=cfg.levels,
        dim=cfg.dim,
        hidden=cfg.hidden_width,
        n_columns=cfg.n_columns,
        identity=True,
        pos_code=np.zeros((cfg.n_columns, cfg.dim)),
        init_levels=np.zeros((cfg.levels, cfg.dim)),
        meta={"kind": "identity"},
    )
