"""Configuration of a GLOM simulation: frozen dataclasses, validation and round-trips.

Every field is checked in ``__post_init__`` so that a bad value raises before any work
starts, with a message that names the field, the value and what is allowed.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ._validate import check_bool, check_choice, check_int, check_real, is_int, not_allowed
from ._validate import parse_float as _parse_float
from .neighbours import grid_positions

__all__ = ["Attention", "Mix", "GlomConfig", "KERNELS", "NORMALIZATIONS", "DTYPES", "ACTIVATIONS"]

#: Append only: the kernels' ids are these names' positions (glomsim._kernels.ids).
KERNELS = ("dot", "cosine", "gaussian", "bounded", "glom_pytorch", "contrastive")
#: The nets' hidden activations (append only, as KERNELS): exact GELU (erf), ReLU, sine.
ACTIVATIONS = ("gelu", "relu", "sin")
NORMALIZATIONS = ("none", "l2", "layernorm")
DTYPES = ("float32", "float64")
MIX_FIELDS = ("bottom_up", "top_down", "previous", "attention")
_ALL_COLUMNS = "(inf: all columns)"


def _magnitudes(dtype: str) -> tuple[float, float]:
    """(smallest, largest) magnitude a mixing weight, beta or epsilon may have in
    ``dtype``: below the smallest normal number it vanishes (a subnormal or 0), above the
    square root of the largest its products with states overflow."""
    return float(np.finfo(dtype).tiny), math.sqrt(float(np.finfo(dtype).max))


def _check_magnitude(name: str, value: float, dtype: str = "float64", note: str = "") -> float:
    """``value`` if it is 0 or of a magnitude that ``dtype`` holds, else a ValueError."""
    lo, hi = _magnitudes(dtype)
    if value == 0 or lo <= abs(value) <= hi:
        return value
    where, other = (
        ("", "") if dtype == "float64" else (f" with dtype={dtype!r}", ", or use dtype='float64'")
    )
    raise ValueError(
        f"{name}={value!r} is not allowed{where}; allowed: 0 or a magnitude in [{lo:.3g}, "
        f"{hi:.3g}] (smaller values vanish in {dtype}, larger ones overflow it{note}{other})"
    )


#: what the magnitude errors of mixing weights add: only their ratios matter
_MIX_NOTE = "; only the weights' ratios matter, so scale them together"


def _check_dtype_range(cfg) -> None:
    """Every mixing weight, beta and epsilon of ``cfg`` of a magnitude its dtype holds
    (float64's range is checked by Mix and Attention themselves)."""
    if cfg.dtype == "float64":
        return
    per_level = isinstance(cfg.mix, tuple)
    for level, mix in enumerate(cfg.mix if per_level else (cfg.mix,)):
        for name in MIX_FIELDS:
            value = getattr(mix, name)
            for k, v in enumerate(value) if isinstance(value, tuple) else [(None, value)]:
                where = f"mix{[level] if per_level else ''}.{name}"
                _check_magnitude(where + ("" if k is None else f"[{k}]"), v, cfg.dtype, _MIX_NOTE)
    per_level = isinstance(cfg.attention, tuple)
    for level, att in enumerate(cfg.attention if per_level else (cfg.attention,)):
        where = f"attention{[level] if per_level else ''}"
        if att.kernel != "bounded":
            _check_magnitude(f"{where}.beta", att.beta, cfg.dtype)
        if att.epsilon is not None:
            _check_magnitude(f"{where}.epsilon", att.epsilon, cfg.dtype)


@dataclass(frozen=True)
class Attention:
    """Attention kernel of one level (or of all levels).

    Parameters
    ----------
    kernel : {"dot", "cosine", "gaussian", "bounded", "glom_pytorch", "contrastive"}
        ``dot`` exp(beta x.y); ``cosine`` exp(beta cos(x, y)); ``gaussian``
        ``exp(-beta |x-y|^2)``, all normalised by a softmax over the neighbourhood;
        ``bounded`` uniform weights on the neighbours within ``epsilon``
        (Hegselmann-Krause); ``glom_pytorch`` glom-pytorch's score
        ``beta x.(y/max(|y|, 1e-12))/sqrt(D)``; ``contrastive`` a cosine softmax over the
        neighbours at least ``threshold`` similar, minus a push away from the others
        (``docs/maths.md``).
    beta : float
        Sharpness; 0 gives uniform averaging (DeGroot). Unused by ``bounded``.
    epsilon : float, optional
        Confidence bound of the ``bounded`` kernel (required there, > 0).
    radius : float
        Neighbourhood radius in grid units (closed ball, Euclidean); ``inf`` = all columns.
    include_self : bool
        Whether a column attends to itself.
    threshold, repulsion : float
        ``contrastive`` only: neighbours with cosine >= threshold (in [-1, 1]) attract,
        the others are pushed away with strength ``repulsion`` >= 0.
    sample : int, optional
        Attend to ``sample`` distinct other columns within the radius (plus itself with
        ``include_self``), drawn every step and level; None (default): all of them.
    sample_width : float
        s > 0: j is drawn with probability ~ ``exp(-|pos_i - pos_j|^2 / (2 s^2))``.

    Examples
    --------
    >>> Attention(kernel="bounded", epsilon=1.0, radius=float("inf")).kernel
    'bounded'
    >>> Attention(kernel="contrastive", beta=4.0, threshold=0.5, repulsion=0.5).threshold
    0.5
    >>> Attention(sample=4, sample_width=2.0).sample
    4
    """

    kernel: str = "dot"
    beta: float = 1.0
    epsilon: float | None = None
    radius: float = math.inf
    include_self: bool = True
    threshold: float = 0.0
    repulsion: float = 1.0
    sample: int | None = None
    sample_width: float = math.inf

    def __post_init__(self):
        check_choice("attention.kernel", self.kernel, KERNELS)
        beta = check_real("attention.beta", _parse_float(self.beta))
        if self.kernel != "bounded":  # unused by the bounded kernel
            _check_magnitude("attention.beta", beta)
        object.__setattr__(self, "beta", beta)
        radius = _parse_float(self.radius)
        radius = check_real("attention.radius", radius, lo=0, finite=False, note=_ALL_COLUMNS)
        object.__setattr__(self, "radius", radius)
        if self.epsilon is not None:
            eps = check_real("attention.epsilon", _parse_float(self.epsilon), lo=0, lo_open=True)
            _check_magnitude("attention.epsilon", eps)
            object.__setattr__(self, "epsilon", eps)
        if self.kernel == "bounded" and self.epsilon is None:
            raise not_allowed(
                "attention.epsilon", None, "a finite number > 0 (the bounded kernel's bound)"
            )
        object.__setattr__(
            self, "include_self", check_bool("attention.include_self", self.include_self)
        )
        self._check_mechanisms()

    def _check_mechanisms(self):  # the contrastive kernel's fields and the sampling's
        threshold = check_real("attention.threshold", _parse_float(self.threshold), lo=-1, hi=1)
        object.__setattr__(self, "threshold", threshold)
        repulsion = check_real("attention.repulsion", _parse_float(self.repulsion), lo=0)
        object.__setattr__(self, "repulsion", repulsion)
        if self.sample is not None:
            note = "or None (attend to every column within the radius)"
            object.__setattr__(self, "sample", check_int("attention.sample", self.sample, lo=1,
                                                         note=note))  # fmt: skip
        width = _parse_float(self.sample_width)
        width = check_real("attention.sample_width", width, lo=0, lo_open=True, finite=False,
                           note="(inf: uniform over the radius)")  # fmt: skip
        object.__setattr__(self, "sample_width", width)

    def to_dict(self) -> dict:
        """A plain dict; optional fields at their defaults are left out, so a config that
        does not use them writes the same JSON (and content) as before they existed."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, default in _OPTIONAL_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        return d


#: Fields of Attention that to_dict leaves out at these values.
_OPTIONAL_DEFAULTS = {"epsilon": None, "threshold": 0.0, "repulsion": 1.0, "sample": None,
                      "sample_width": math.inf}  # fmt: skip


@dataclass(frozen=True)
class Mix:
    """Mixing weights of the four contributions.

    Each field is a number >= 0, or a schedule over steps: a sequence whose entry k
    applies to step k + 1 (the last entry is held). A contribution whose weight is 0
    is not evaluated.

    Examples
    --------
    >>> Mix(previous=0, attention=[0.0, 0.5, 1.0]).at(2)
    (1.0, 1.0, 0.0, 0.5)
    """

    bottom_up: float | tuple[float, ...] = 1.0
    top_down: float | tuple[float, ...] = 1.0
    previous: float | tuple[float, ...] = 1.0
    attention: float | tuple[float, ...] = 1.0

    def __post_init__(self):
        for name in MIX_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (list, tuple, np.ndarray)):
                if len(value) == 0:
                    raise not_allowed(f"mix.{name}", [], "a schedule of at least one weight")
                seq = tuple(
                    check_real(f"mix.{name}[{k}]", _parse_float(v), lo=0)
                    for k, v in enumerate(value)
                )
                for k, v in enumerate(seq):
                    _check_magnitude(f"mix.{name}[{k}]", v, note=_MIX_NOTE)
                object.__setattr__(self, name, seq)
            else:
                note = "or a schedule (a sequence of such numbers)"
                v = check_real(f"mix.{name}", _parse_float(value), lo=0, note=note)
                _check_magnitude(f"mix.{name}", v, note=_MIX_NOTE)
                object.__setattr__(self, name, v)

    @property
    def is_schedule(self) -> bool:
        return any(isinstance(getattr(self, n), tuple) for n in MIX_FIELDS)

    @property
    def schedule_length(self) -> int:
        return max(
            (len(getattr(self, n)) for n in MIX_FIELDS if isinstance(getattr(self, n), tuple)),
            default=1,
        )

    def at(self, step: int) -> tuple[float, float, float, float]:
        """The four weights (bottom_up, top_down, previous, attention) used by ``step`` >= 1."""
        out = []
        for name in MIX_FIELDS:
            v = getattr(self, name)
            if isinstance(v, tuple):
                v = v[min(max(step - 1, 0), len(v) - 1)]
            out.append(v)
        return tuple(out)

    def to_dict(self) -> dict:
        return {
            n: (list(getattr(self, n)) if isinstance(getattr(self, n), tuple) else getattr(self, n))
            for n in MIX_FIELDS
        }


def _per_level(value, cls, name, levels):
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**value)
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            if isinstance(v, dict):
                v = cls(**v)
            if not isinstance(v, cls):
                raise TypeError(f"{name}[{i}]={v!r} must be a {cls.__name__} (one per level)")
            items.append(v)
        if len(items) != levels:
            raise ValueError(
                f"{name} has {len(items)} entries but levels={levels}: give one "
                f"{cls.__name__} for all levels or exactly one per level"
            )
        return tuple(items)
    raise TypeError(f"{name}={value!r} must be a {cls.__name__} or a sequence of one per level")


@dataclass(frozen=True)
class GlomConfig:
    """Everything that defines a GLOM simulation except the nets' weights and the inputs.

    Parameters
    ----------
    levels : int
        Number of levels of the part-whole hierarchy (>= 1).
    dim : int
        Embedding size D of every level (>= 1).
    grid : (rows, cols), optional
        Columns on a grid, numbered row-major (``y`` = row, ``x`` = column).
    positions : (N, 2) array of (y, x), optional
        Arbitrary column positions instead of ``grid``. Give exactly one of the two;
        with neither, ``grid=(8, 8)``.
    steps : int
        Number of update steps (>= 0).
    mix : Mix or sequence of Mix (one per level)
    attention : Attention or sequence of Attention (one per level)
    top_down_delay : int
        d >= 1: top-down reads the level above at step t - d (2 = "skip a frame").
    normalize : {"none", "l2", "layernorm"}
    dtype : {"float32", "float64"}
    seed : int
        Seed of the default random weights.
    hidden : int, optional
        Hidden width of the MLPs; default 4 * dim.
    bottom_up_activation, top_down_activation : {"gelu", "relu", "sin"}
        Hidden activation of the bottom-up and the top-down nets: exact GELU (erf), ReLU,
        or sine (SIREN units; the paper suggests them for the top-down net).

    Examples
    --------
    >>> cfg = GlomConfig(levels=3, dim=8, grid=(4, 4), steps=10)
    >>> cfg.n_columns, cfg.hidden_width
    (16, 32)
    >>> GlomConfig.from_json(cfg.to_json()) == cfg
    True
    """

    levels: int = 5
    dim: int = 64
    grid: tuple[int, int] | None = None
    positions: tuple[tuple[float, float], ...] | None = None
    steps: int = 40
    mix: Mix | tuple[Mix, ...] = field(default_factory=Mix)
    attention: Attention | tuple[Attention, ...] = field(default_factory=Attention)
    top_down_delay: int = 1
    normalize: str = "none"
    dtype: str = "float32"
    seed: int = 0
    hidden: int | None = None
    bottom_up_activation: str = "gelu"
    top_down_activation: str = "gelu"

    def __post_init__(self):
        for name, lo in (("levels", 1), ("dim", 1), ("steps", 0), ("top_down_delay", 1)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo=lo))
        object.__setattr__(self, "seed", check_int("seed", self.seed))
        if self.hidden is not None:
            hidden = check_int("hidden", self.hidden, lo=1, note="or None (4 * dim)")
            object.__setattr__(self, "hidden", hidden)
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("bottom_up_activation", self.bottom_up_activation, ACTIVATIONS)
        check_choice("top_down_activation", self.top_down_activation, ACTIVATIONS)
        self._check_layout()
        object.__setattr__(self, "mix", _per_level(self.mix, Mix, "mix", self.levels))
        object.__setattr__(
            self, "attention", _per_level(self.attention, Attention, "attention", self.levels)
        )
        self._check_mix_sums()
        _check_dtype_range(self)
        if self.seed < 0 and any(self.attention_at(lv).sample for lv in range(self.levels)):
            allowed = "an integer >= 0 with attention.sample (default_rng((seed, step, level)))"
            raise not_allowed("seed", self.seed, allowed)

    def _check_layout(self):
        """Exactly one of grid and positions; positions as a tuple of (y, x) floats."""
        if self.grid is not None and self.positions is not None:
            raise ValueError("grid and positions were both given: give exactly one of them")
        if self.positions is None:
            grid = (8, 8) if self.grid is None else self.grid
            if (
                not isinstance(grid, (list, tuple))
                or len(grid) != 2
                or not all(is_int(g) and g >= 1 for g in grid)
            ):
                raise not_allowed("grid", self.grid, "(rows, cols) with integers >= 1")
            object.__setattr__(self, "grid", (int(grid[0]), int(grid[1])))
            return
        try:
            pos = np.asarray(self.positions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"positions must be an (N, 2) array of (y, x) numbers, got {self.positions!r}"
            ) from None
        if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] < 1:
            raise ValueError(
                f"positions has shape {pos.shape}; it must be (N, 2) of (y, x) with N >= 1"
            )
        if not np.all(np.isfinite(pos)):
            raise ValueError("positions contains NaN or inf; every (y, x) must be finite")
        object.__setattr__(self, "positions", tuple((float(a), float(b)) for a, b in pos))

    def _check_mix_sums(self):
        """A level whose present weights sum to 0 at any step is a config error."""
        for level in range(self.levels):
            m = self.mix_at(level)
            for step in range(1, m.schedule_length + 1):
                bu, td, prev, att = m.at(step)
                if level == self.levels - 1:
                    td = 0.0
                if bu + td + prev + att <= 0:
                    where = "" if not m.is_schedule else f" at step {step}"
                    which = "mix" if isinstance(self.mix, Mix) else f"mix[{level}]"
                    raise ValueError(
                        f"{which}: the weights present at level {level}{where} sum to 0 "
                        "(top_down is absent at the top level); at least one of bottom_up, "
                        "top_down, previous, attention must be > 0"
                    )

    # ----- derived quantities -------------------------------------------------
    @property
    def n_columns(self) -> int:
        if self.positions is not None:
            return len(self.positions)
        return self.grid[0] * self.grid[1]

    @property
    def hidden_width(self) -> int:
        return 4 * self.dim if self.hidden is None else self.hidden

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def position_array(self) -> np.ndarray:
        """(N, 2) float64 array of (y, x); grids are numbered row-major."""
        if self.positions is not None:
            return np.asarray(self.positions, dtype=np.float64)
        return grid_positions(*self.grid)

    def mix_at(self, level: int) -> Mix:
        return self.mix if isinstance(self.mix, Mix) else self.mix[level]

    def attention_at(self, level: int) -> Attention:
        return self.attention if isinstance(self.attention, Attention) else self.attention[level]

    def mix_weights(self, step: int) -> np.ndarray:
        """(levels, 4) float64 array of (bottom_up, top_down, previous, attention) at ``step``.

        The top level's top-down weight is 0 (the contribution is absent there).
        """
        w = np.array([self.mix_at(lv).at(step) for lv in range(self.levels)], dtype=np.float64)
        w[-1, 1] = 0.0
        return w

    @property
    def schedule_length(self) -> int:
        return max(self.mix_at(lv).schedule_length for lv in range(self.levels))

    def replace(self, **changes) -> GlomConfig:
        return replace(self, **changes)

    # ----- round trips ---------------------------------------------------------
    def to_dict(self) -> dict:
        """A plain dict (numbers, strings, lists); ``None`` fields are left out."""
        d: dict[str, Any] = {
            "levels": self.levels,
            "dim": self.dim,
            "steps": self.steps,
            "top_down_delay": self.top_down_delay,
            "normalize": self.normalize,
            "dtype": self.dtype,
            "seed": self.seed,
        }
        if self.positions is not None:
            d["positions"] = [list(p) for p in self.positions]
        else:
            d["grid"] = list(self.grid)
        if self.hidden is not None:
            d["hidden"] = self.hidden
        for name in ("bottom_up_activation", "top_down_activation"):
            if getattr(self, name) != "gelu":  # left out at the default: JSON as before
                d[name] = getattr(self, name)
        d["mix"] = (
            self.mix.to_dict() if isinstance(self.mix, Mix) else [m.to_dict() for m in self.mix]
        )
        d["attention"] = (
            self.attention.to_dict()
            if isinstance(self.attention, Attention)
            else [a.to_dict() for a in self.attention]
        )
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GlomConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"a config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown config field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        d = dict(d)
        for key, klass in (("mix", Mix), ("attention", Attention)):
            v = d.get(key)
            allowed = {f.name for f in fields(klass)}
            for item in [v] if isinstance(v, dict) else (v if isinstance(v, list) else []):
                bad = sorted(set(item) - allowed) if isinstance(item, dict) else []
                if bad:
                    raise ValueError(f"unknown {key} field(s) {', '.join(bad)}; "
                                     f"allowed: {', '.join(sorted(allowed))}")  # fmt: skip
            if isinstance(v, list):
                d[key] = tuple(klass(**x) if isinstance(x, dict) else x for x in v)
            elif isinstance(v, dict):
                d[key] = klass(**v)
        if "grid" in d and d["grid"] is not None:
            d["grid"] = tuple(d["grid"])
        return cls(**d)

    def to_json(self) -> str:
        """Strict JSON: infinite radii are written as the string "inf"."""
        return _json_of(self)

    @classmethod
    def from_json(cls, text: str) -> GlomConfig:
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> GlomConfig:
        import tomllib

        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def from_file(cls, path) -> GlomConfig:
        """Read a ``.toml`` or ``.json`` file."""
        from pathlib import Path

        p = Path(path)
        if p.suffix not in (".json", ".toml"):
            raise ValueError(f"config file {str(p)!r}: the suffix must be .toml or .json")
        if not p.is_file():
            raise FileNotFoundError(f"config file {str(p)!r} does not exist")
        text = p.read_text()
        if p.suffix == ".json":
            return cls.from_json(text)
        return cls.from_toml(text)

    @classmethod
    def from_dataset(cls, ds) -> GlomConfig:
        """The exact config a dataset written by :func:`glomsim.simulate` was run with."""
        try:
            text = ds.attrs["glomsim_config"]
        except KeyError:
            raise ValueError(
                "dataset has no 'glomsim_config' attribute: it was not written by glomsim.simulate"
            ) from None
        return cls.from_json(text)


@functools.lru_cache(maxsize=64)
def _json_of(cfg: GlomConfig) -> str:
    """``cfg.to_json()``, kept per config (configs are immutable values): every result
    stores it, and writing it cost ~14 us of a ~3 ms small run."""
    return json.dumps(_encode_inf(cfg.to_dict()), sort_keys=True)


def _encode_inf(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: _encode_inf(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode_inf(v) for v in obj]
    return obj
