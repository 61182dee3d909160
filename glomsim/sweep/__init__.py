"""Parameter sweeps on Dask: a spec of axes over config fields, results in one Zarr store.

A sweep runs one simulation per cell of (sweep axes..., seed[, member]): a *run*. Each run
writes its own region of one Zarr store and is marked done only after that write, so a
sweep killed at any moment resumes where it stopped, with nothing lost or duplicated and
results bit-identical to an uninterrupted run (every run's randomness comes from its seed
and member index alone). ``docs/sweeps.md`` is the user guide.

Examples
--------
>>> import tempfile, os
>>> from glomsim.sweep import load_spec, run
>>> spec = load_spec({
...     "sweep": {"seeds": 2},
...     "base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
...     "axes": {"beta": {"path": "attention.beta", "values": [0.0, 2.0]}},
...     "scene": {"n_objects": 1, "parts_per_object": 1, "textures_per_part": 1},
... })
>>> ds = run(spec, os.path.join(tempfile.mkdtemp(), "s.zarr"), client="sync", progress=False)
>>> ds.island_count.sel(beta=2.0).dims
('seed', 'level')
>>> int((ds.status == 1).sum())
4
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import numbers
import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Attention, GlomConfig, Mix
from .store import RESERVED

__all__ = [
    "Axis",
    "SweepSpec",
    "load_spec",
    "run",
    "open_sweep",
    "register_cli",
    "MODES",
]

MODES = ("grid", "zip", "random")
MEMBER_VARIES = ("init", "weights")
WEIGHT_KINDS = ("random", "identity")
INIT_STARTS = ("weights", "tokens", "zeros")
SECTIONS = ("sweep", "base", "aliases", "axes", "weights", "init", "scene", "keep")
SWEEP_KEYS = (
    "name",
    "mode",
    "seeds",
    "members",
    "member_varies",
    "samples",
    "sample_seed",
    "batch_size",
)
KEEP_KEYS = ("trajectories", "record_every", "spectral_radius", "islands")
ISLAND_KEYS = ("threshold", "metric", "connectivity", "radius", "linkage")
WEIGHT_KEYS = ("kind", "gain", "positional_scale", "init_scale")
INIT_KEYS = ("start", "noise")
#: Config fields a sweep may not vary: the seed is its own dimension, positions are arrays.
_FIXED_FIELDS = {
    "seed": "the seed is its own dimension; list seeds in sweep.seeds",
    "positions": "positions are an array; sweep a grid instead",
}
#: Paths that change the shape of the embedding (so trajectories cannot share one array).
_SHAPE_FIELDS = ("levels", "dim", "grid", "steps")
#: Auto batches aim at about this many (step x level x column x feature) updates per task:
#: tens of milliseconds, far above Dask's per-task overhead of about a millisecond.
_BATCH_WORK = 1_000_000
#: ... with at most this many runs, so progress and resume stay fine-grained,
_MAX_BATCH = 32
#: ... and at least this many tasks per group of same-shape runs, so all workers get some.
_MIN_TASKS = 16
_PATH_RE = re.compile(r"^([A-Za-z_]\w*)(?:\[(\d+)\])?(?:\.([A-Za-z_]\w*))?$")


class SpecError(ValueError):
    """A bad sweep spec: one line naming the field, the value and what is allowed."""


def _err(where: str, msg: str) -> SpecError:
    return SpecError(f"{where}: {msg}" if where else msg)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _plain(value):
    """Python scalars/lists/dicts from numpy ones, so values hash, print and serialise alike."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _is_scalar(v) -> bool:
    return isinstance(v, (str, bool, numbers.Real))


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------
# paths: where an axis value goes
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Path:
    head: str
    index: int | None
    sub: str | None
    text: str

    @property
    def section(self) -> str:
        """``config`` for config fields; ``scene``, ``weights`` or ``init`` otherwise."""
        return self.head if self.head in ("scene", "weights", "init") else "config"


def _parse_path(text, where: str) -> _Path:
    config_fields = [f.name for f in fields(GlomConfig) if f.name not in _FIXED_FIELDS]
    allowed = (
        f"a config field ({', '.join(config_fields)}), mix.<field>, attention.<field>, "
        "attention[<level>].<field>, mix[<level>].<field>, grid[0|1], scene.<make_scene "
        "argument>, weights.<gain|positional_scale|init_scale>, init.noise"
    )
    if not isinstance(text, str):
        raise _err(where, f"path {text!r} must be a string; allowed: {allowed}")
    m = _PATH_RE.match(text.strip())
    if not m:
        raise _err(where, f"path {text!r} is not a dotted path; allowed: {allowed}")
    head, index, sub = m.group(1), m.group(2), m.group(3)
    index = None if index is None else int(index)
    if head in _FIXED_FIELDS:
        raise _err(where, f"path {text!r} cannot be swept: {_FIXED_FIELDS[head]}")
    if head in ("scene", "weights", "init"):
        if index is not None or sub is None:
            raise _err(where, f"path {text!r} must be {head}.<name>; allowed: {allowed}")
        ok = {
            "scene": _scene_params(),
            "weights": WEIGHT_KEYS[1:],
            "init": ("noise",),
        }[head]
        if sub not in ok:
            raise _err(where, f"path {text!r}: {head}.{sub} is unknown; allowed: {', '.join(ok)}")
        return _Path(head, None, sub, text)
    if head not in config_fields:
        raise _err(where, f"path {text!r}: {head!r} is not a config field; allowed: {allowed}")
    if head in ("mix", "attention"):
        klass = Mix if head == "mix" else Attention
        subs = [f.name for f in fields(klass)]
        if sub is not None and sub not in subs:
            raise _err(where, f"path {text!r}: {head}.{sub} is unknown; allowed: {', '.join(subs)}")
        return _Path(head, index, sub, text)
    if head == "grid":
        if sub is not None or (index is not None and index > 1):
            raise _err(where, f"path {text!r}: use grid, grid[0] (rows) or grid[1] (cols)")
        return _Path(head, index, None, text)
    if index is not None or sub is not None:
        raise _err(where, f"path {text!r}: {head} is a plain field; write just {head!r}")
    return _Path(head, None, None, text)


def _set_config(d: dict, path: _Path, value) -> None:
    """Put ``value`` at ``path`` in a config dict (from ``GlomConfig.to_dict``)."""
    value = copy.deepcopy(value)
    if path.head in ("mix", "attention"):
        cur = d.get(path.head, {})
        if path.index is None:
            if path.sub is None:
                d[path.head] = value
            elif isinstance(cur, list):
                for item in cur:
                    item[path.sub] = value
            else:
                cur[path.sub] = value
                d[path.head] = cur
            return
        levels = d["levels"]
        if isinstance(cur, dict):
            # one object for all levels becomes one per level, so one level can differ
            cur = [copy.deepcopy(cur) for _ in range(levels)]
            d[path.head] = cur
        if path.index >= len(cur):
            raise ValueError(
                f"{path.text}: level index {path.index} is out of range for levels={levels} "
                f"(allowed 0..{levels - 1})"
            )
        if path.sub is None:
            cur[path.index] = value
        else:
            cur[path.index][path.sub] = value
        return
    if path.head == "grid" and path.index is not None:
        if "grid" not in d:
            raise ValueError(f"{path.text}: the base config has positions, not a grid")
        grid = list(d["grid"])
        grid[path.index] = value
        d["grid"] = grid
        return
    d[path.head] = value


@functools.lru_cache(maxsize=1)
def _scene_params() -> tuple[str, ...]:
    import inspect

    from ..scenes import make_scene

    skip = {"grid", "dim", "levels", "seed"}
    return tuple(p for p in inspect.signature(make_scene).parameters if p not in skip)


# ----------------------------------------------------------------------------------------
# the spec
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One sweep axis: a dimension of the result named ``name``, varying ``path``.

    Parameters
    ----------
    name : str
        Dimension (grid mode) or coordinate (zip, random) name: the alias, else the path.
    path : str
        Where the value goes: ``attention.beta`` (every level), ``attention[2].radius``
        (level 2 only), ``mix.attention``, ``top_down_delay``, ``grid[1]``, ``scene.noise``,
        ``weights.gain``, ``init.noise``.
    values : tuple
        The values (grid, zip) or the choices (random).
    labels : tuple, optional
        Coordinate labels, required when values are not scalars (e.g. mix schedules).
    low, high, log, integer
        A random range instead of choices: uniform on [low, high] (log-uniform with
        ``log``; integers low..high inclusive with ``integer``).

    Examples
    --------
    >>> Axis(name="beta", path="attention.beta", values=(1.0, 4.0)).coord_values
    (1.0, 4.0)
    """

    name: str
    path: str
    values: tuple = ()
    labels: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def coord_values(self) -> tuple:
        return self.labels if self.labels is not None else self.values

    def label_of(self, value):
        """The coordinate value of ``value`` (its label when the axis has labels)."""
        if self.labels is None:
            return value
        for v, lab in zip(self.values, self.labels, strict=True):
            if v == value:
                return lab
        raise KeyError(value)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"path": self.path}
        if self.is_range:
            d.update(low=self.low, high=self.high, log=self.log, integer=self.integer)
        else:
            d["values"] = list(self.values)
            if self.labels is not None:
                d["labels"] = list(self.labels)
        return d


@dataclass(frozen=True, eq=False)
class SweepSpec:
    """A validated sweep: base config, axes, seeds, members, inputs and what to keep.

    Build it with :func:`load_spec` (from TOML or a dict); the constructor expects
    normalised fields. Every run is one cell of ``(axes..., seed[, member])``.

    Attributes
    ----------
    base : GlomConfig
    axes : tuple of Axis
    mode : {"grid", "zip", "random"}
        ``grid``: the product of all axes, one dimension each. ``zip``: the i-th values of
        all axes together, along one dimension ``point``. ``random``: ``samples`` points
        drawn with ``sample_seed``, along ``point``.
    seeds : tuple of int
        Each seed picks the scene, the random weights and the initial noise.
    members : int or None
        Ensemble size per (point, seed); adds the ``member`` dimension.
    member_varies : {"init", "weights"}
        What differs between members: the initial noise (``init.noise`` > 0) or the
        random weights.
    weights, init, scene, keep : dict
        Normalised sections (see ``docs/sweeps.md``); ``scene`` is None for zero inputs.
    batch_size : int or "auto"
        Runs of one shape per task.

    Examples
    --------
    >>> spec = load_spec({"base": {"levels": 2, "dim": 4, "grid": [4, 4]}, "scene": False,
    ...                   "axes": {"top_down_delay": [1, 2]}, "sweep": {"seeds": 3}})
    >>> spec.dims, spec.n_runs, spec.unravel(4)
    (('top_down_delay', 'seed'), 6, (1, 1, None))
    """

    base: GlomConfig
    axes: tuple[Axis, ...] = ()
    mode: str = "grid"
    seeds: tuple[int, ...] = (0,)
    members: int | None = None
    member_varies: str = "init"
    samples: int | None = None
    sample_seed: int = 0
    batch_size: int | str = "auto"
    name: str = "sweep"
    weights: dict = field(default_factory=lambda: {"kind": "random"})
    init: dict = field(default_factory=lambda: {"start": "weights", "noise": 0.0})
    scene: dict | None = field(default_factory=dict)
    keep: dict = field(default_factory=dict)

    # ----- structure ---------------------------------------------------------------------
    @property
    def point_dims(self) -> tuple[str, ...]:
        if not self.axes:
            return ()
        return tuple(a.name for a in self.axes) if self.mode == "grid" else ("point",)

    @property
    def dims(self) -> tuple[str, ...]:
        return self.point_dims + ("seed",) + (("member",) if self.members else ())

    @property
    def point_shape(self) -> tuple[int, ...]:
        if not self.axes:
            return ()
        if self.mode == "grid":
            return tuple(len(a.values) for a in self.axes)
        return (len(self.points),)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.point_shape + (len(self.seeds),) + ((self.members,) if self.members else ())

    @property
    def n_runs(self) -> int:
        return int(np.prod(self.shape))

    @functools.cached_property
    def points(self) -> tuple[dict, ...]:
        """Axis values of every point, in the order of the point dimensions (C order)."""
        names = [a.name for a in self.axes]
        if not self.axes:
            return ({},)
        if self.mode == "grid":
            combos = itertools.product(*(a.values for a in self.axes))
        elif self.mode == "zip":
            combos = zip(*(a.values for a in self.axes), strict=True)
        else:
            rng = np.random.default_rng(self.sample_seed)
            combos = [tuple(_sample(a, rng) for a in self.axes) for _ in range(self.samples)]
        return tuple(dict(zip(names, c, strict=True)) for c in combos)

    def unravel(self, index: int) -> tuple[int, int, int | None]:
        """(point position, seed, member) of run ``index`` (C order over :attr:`dims`)."""
        pos = np.unravel_index(int(index), self.shape)
        n_point = len(self.point_shape)
        point = int(np.ravel_multi_index(pos[:n_point], self.point_shape)) if n_point else 0
        seed = self.seeds[int(pos[n_point])]
        member = int(pos[n_point + 1]) if self.members else None
        return point, seed, member

    def settings(self, point: int) -> dict:
        """The run settings of a point: ``config`` (GlomConfig), ``scene``, ``weights``,
        ``init`` dicts. Raises ValueError for an invalid combination of axis values."""
        got = self._settings[point]
        if isinstance(got, Exception):
            raise ValueError(str(got))
        return got

    @functools.cached_property
    def _settings(self) -> list:
        out = []
        for values in self.points:
            try:
                out.append(self._build_settings(values))
            except (ValueError, TypeError) as exc:
                out.append(ValueError(_one_line(str(exc))))
        return out

    def _build_settings(self, values: dict) -> dict:
        d = self.base.to_dict()
        scene = None if self.scene is None else dict(self.scene)
        weights = dict(self.weights)
        init = dict(self.init)
        # shape fields first, so per-level paths expand to the run's number of levels
        order = sorted(self.axes, key=lambda a: a.path.split("[")[0].split(".")[0] != "levels")
        for axis in order:
            path = _parse_path(axis.path, f"axes.{axis.name}")
            value = values[axis.name]
            if path.section == "config":
                _set_config(d, path, value)
            elif path.section == "scene":
                if scene is None:
                    raise ValueError(f"{axis.path}: scene = false, so there is no scene to vary")
                scene[path.sub] = value
            else:
                {"weights": weights, "init": init}[path.section][path.sub] = value
        cfg = GlomConfig.from_dict(d)
        _check_weights(weights, "weights")
        _check_init(init, "init", self)
        if scene is not None:
            if cfg.grid is None:
                raise ValueError("scene: a scene needs a grid config; set scene = false")
            _check_scene_cached(cfg.grid, cfg.dim, cfg.levels, self.seeds[0], _freeze(scene))
        return {"config": cfg, "scene": scene, "weights": weights, "init": init}

    def batches(self) -> list[tuple[int, ...]]:
        """Runs per task: same-shape runs in index order, fixed by the spec alone."""
        groups: dict[Any, list[int]] = {}
        work: dict[Any, int] = {}
        per_point = self.n_runs // max(len(self.points), 1)
        for p in range(len(self.points)):
            try:
                cfg = self.settings(p)["config"]
                key = (cfg.levels, cfg.dim, cfg.n_columns, cfg.steps, cfg.dtype)
                work[key] = max(1, cfg.steps) * cfg.levels * cfg.n_columns * cfg.dim
            except ValueError:
                key = None
                work[key] = _BATCH_WORK
            groups.setdefault(key, []).extend(range(p * per_point, (p + 1) * per_point))
        out = []
        for key, runs in groups.items():
            if self.batch_size == "auto":
                size = min(math.ceil(_BATCH_WORK / work[key]), _MAX_BATCH)
                size = max(1, min(size, len(runs) // _MIN_TASKS))
            else:
                size = int(self.batch_size)
            out.extend(tuple(runs[i : i + size]) for i in range(0, len(runs), size))
        return sorted(out)

    # ----- round trip --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain dict that :func:`load_spec` turns back into an equal spec."""
        sweep: dict[str, Any] = {
            "name": self.name,
            "mode": self.mode,
            "seeds": list(self.seeds),
            "member_varies": self.member_varies,
            "sample_seed": self.sample_seed,
            "batch_size": self.batch_size,
        }
        if self.members is not None:
            sweep["members"] = self.members
        if self.samples is not None:
            sweep["samples"] = self.samples
        d = {
            "sweep": sweep,
            "base": self.base.to_dict(),
            "axes": {a.name: a.to_dict() for a in self.axes},
            "weights": dict(self.weights),
            "init": dict(self.init),
            "scene": False if self.scene is None else dict(self.scene),
            "keep": copy.deepcopy(self.keep),
        }
        return _plain(d)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def content_hash(self) -> str:
        """sha256 of everything that changes results (not ``batch_size`` nor ``name``)."""
        d = self.to_dict()
        d["sweep"].pop("batch_size", None)
        d["sweep"].pop("name", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def __eq__(self, other):
        if not isinstance(other, SweepSpec):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        shape = " x ".join(str(n) for n in self.shape)
        return f"SweepSpec({self.name!r}, {self.mode}, dims={self.dims}, shape={shape})"


def _freeze(d):
    return json.dumps(_plain(d), sort_keys=True)


@functools.lru_cache(maxsize=256)
def _check_scene_cached(grid, dim, levels, seed, frozen):
    from ..scenes import make_scene

    try:
        make_scene(grid=grid, dim=dim, levels=levels, seed=seed, **json.loads(frozen))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scene: {exc}") from None


def _check_weights(w: dict, where: str) -> None:
    if w.get("kind") not in WEIGHT_KINDS:
        raise _err(f"{where}.kind", f"{w.get('kind')!r} is not allowed; allowed: random, identity")
    for key in WEIGHT_KEYS[1:]:
        if key in w:
            if w["kind"] == "identity":
                raise _err(f"{where}.{key}", "only random weights take it (kind = 'random')")
            v = w[key]
            if not _is_real(v) or not math.isfinite(v) or v < 0:
                raise _err(f"{where}.{key}", f"{v!r} must be a finite number >= 0")


def _check_init(init: dict, where: str, spec) -> None:
    if init.get("start") not in INIT_STARTS:
        raise _err(
            f"{where}.start",
            f"{init.get('start')!r} is not allowed; allowed: {', '.join(INIT_STARTS)}",
        )
    noise = init.get("noise", 0.0)
    if not _is_real(noise) or not math.isfinite(noise) or noise < 0:
        raise _err(f"{where}.noise", f"{noise!r} must be a finite number >= 0")
    if init["start"] == "tokens" and spec.scene is None:
        raise _err(f"{where}.start", "'tokens' starts from the scene's tokens; scene = false")


def _sample(axis: Axis, rng: np.random.Generator):
    if not axis.is_range:
        return axis.values[int(rng.integers(len(axis.values)))]
    if axis.integer:
        return int(rng.integers(int(axis.low), int(axis.high) + 1))
    if axis.log:
        return float(math.exp(rng.uniform(math.log(axis.low), math.log(axis.high))))
    return float(rng.uniform(axis.low, axis.high))


# ----------------------------------------------------------------------------------------
# parsing and validation
# ----------------------------------------------------------------------------------------
def _table(d, where: str, allowed) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise _err(where, f"must be a table, got {type(d).__name__}")
    bad = sorted(set(d) - set(allowed))
    if bad:
        raise _err(where, f"unknown key(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return dict(d)


def _int_at_least(v, lo, where):
    if not _is_int(v) or v < lo:
        raise _err(where, f"{v!r} must be an integer >= {lo}")
    return int(v)


def _parse_base(base, root: Path | None):
    where = "base"
    if isinstance(base, GlomConfig):
        return base
    if isinstance(base, (str, os.PathLike)):
        p = Path(base)
        if not p.is_absolute() and root is not None:
            p = root / p
        try:
            return GlomConfig.from_file(p)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            raise _err(where, _one_line(str(exc))) from None
    if isinstance(base, dict):
        try:
            return GlomConfig.from_dict(_plain(base))
        except (ValueError, TypeError) as exc:
            raise _err(where, _one_line(str(exc))) from None
    raise _err(where, "give an inline table of config fields or a path to a .toml/.json config")


def _parse_axis(name, raw, aliases, mode) -> Axis:
    where = f"axes.{name}"
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_][\w.\[\]]*$", name):
        raise _err("axes", f"axis name {name!r} must be a path or an alias")
    path = aliases.get(name, name)
    labels = low = high = None
    log = integer = False
    if isinstance(raw, dict):
        keys = ("path", "values", "labels", "choices", "low", "high", "log", "integer")
        raw = _table(raw, where, keys)
        if "path" in raw:
            if name in aliases:
                raise _err(where, "give the path either in [aliases] or as path =, not both")
            path = raw["path"]
        values = raw.get("values", raw.get("choices"))
        if "values" in raw and "choices" in raw:
            raise _err(where, "give values or choices, not both")
        labels = raw.get("labels")
        if "low" in raw or "high" in raw:
            if mode != "random":
                raise _err(where, f"low/high ranges need sweep.mode = 'random' (mode is {mode!r})")
            if values is not None:
                raise _err(where, "give either choices or low/high, not both")
            low, high = raw.get("low"), raw.get("high")
            log, integer = raw.get("log", False), raw.get("integer", False)
            for k, v in (("low", low), ("high", high)):
                if not _is_real(v) or not math.isfinite(v):
                    raise _err(f"{where}.{k}", f"{v!r} must be a finite number")
            if low > high:
                raise _err(where, f"low={low!r} must be <= high={high!r}")
            for k, v in (("log", log), ("integer", integer)):
                if not isinstance(v, bool):
                    raise _err(f"{where}.{k}", f"{v!r} must be true or false")
            if log and low <= 0:
                raise _err(f"{where}.low", f"{low!r} must be > 0 for a log range")
            if integer and (not float(low).is_integer() or not float(high).is_integer()):
                raise _err(where, "an integer range needs integer low and high")
            values = ()
        elif values is None:
            raise _err(where, "give values = [...] (or choices, or low/high in random mode)")
    else:
        values = raw
    path_obj = _parse_path(path, where)
    if low is None:
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise _err(where, f"values {values!r} must be a non-empty list")
        values = tuple(_inf(_plain(v)) for v in values)
        if labels is not None:
            if not isinstance(labels, (list, tuple)) or len(labels) != len(values):
                raise _err(
                    f"{where}.labels",
                    f"needs one label per value ({len(values)}), got {labels!r}",
                )
            labels = tuple(_plain(v) for v in labels)
            if not all(isinstance(v, (str, numbers.Real)) for v in labels):
                raise _err(f"{where}.labels", "labels must be strings or numbers")
            if len(set(labels)) != len(labels):
                raise _err(f"{where}.labels", f"labels {list(labels)!r} must be distinct")
        elif not all(_is_scalar(v) for v in values):
            raise _err(
                where,
                "values that are lists or tables (e.g. mix schedules) need labels = [...] "
                "to name them on the coordinate",
            )
        kinds = {_kind(v) for v in (labels or values)}
        if len(kinds) > 1:
            raise _err(where, f"values mix {', '.join(sorted(kinds))}; use one type (or labels)")
        coords = labels or values
        if mode == "grid" and len(set(map(_freeze, coords))) != len(coords):
            raise _err(where, f"values {list(coords)!r} repeat; grid axes need distinct values")
    return Axis(
        name=name,
        path=path_obj.text,
        values=values,
        labels=labels,
        low=None if low is None else float(low),
        high=None if high is None else float(high),
        log=log,
        integer=integer,
    )


def _inf(v):
    """'inf' and '-inf' as floats: strict JSON has no infinity, configs accept the strings."""
    if isinstance(v, str) and v.strip().lower() in ("inf", "+inf", "infinity", "-inf"):
        return float(v)
    return v


def _kind(v) -> str:
    if isinstance(v, bool):
        return "booleans"
    if isinstance(v, numbers.Real):
        return "numbers"
    if isinstance(v, str):
        return "strings"
    return "tables/lists"


def _parse(d: dict, root: Path | None) -> SweepSpec:
    if not isinstance(d, dict):
        raise _err("", f"a sweep spec must be a table/dict, got {type(d).__name__}")
    bad = sorted(set(d) - set(SECTIONS))
    if bad:
        raise _err("", f"unknown section(s) {', '.join(bad)}; allowed: {', '.join(SECTIONS)}")
    if "base" not in d:
        raise _err("base", "missing: give [base] config fields or base = 'config.toml'")
    sweep = _table(d.get("sweep"), "sweep", SWEEP_KEYS)
    base = _parse_base(d["base"], root)

    name = sweep.get("name", "sweep")
    if not isinstance(name, str):
        raise _err("sweep.name", f"{name!r} must be a string")
    mode = sweep.get("mode", "grid")
    if mode not in MODES:
        raise _err("sweep.mode", f"{mode!r} is not allowed; allowed: {', '.join(MODES)}")

    seeds = sweep.get("seeds", 1)
    if _is_int(seeds):
        seeds = tuple(range(_int_at_least(seeds, 1, "sweep.seeds")))
    elif isinstance(seeds, (list, tuple)) and seeds:
        if not all(_is_int(s) and s >= 0 for s in seeds):
            raise _err("sweep.seeds", f"{list(seeds)!r}: every seed must be an integer >= 0")
        if len(set(seeds)) != len(seeds):
            raise _err("sweep.seeds", f"{list(seeds)!r}: seeds must be distinct")
        seeds = tuple(int(s) for s in seeds)
    else:
        raise _err("sweep.seeds", f"{seeds!r} must be a count >= 1 or a list of integers >= 0")

    members = sweep.get("members")
    if members is not None:
        members = _int_at_least(members, 1, "sweep.members")
    member_varies = sweep.get("member_varies", "init")
    if member_varies not in MEMBER_VARIES:
        raise _err(
            "sweep.member_varies",
            f"{member_varies!r} is not allowed; allowed: {', '.join(MEMBER_VARIES)}",
        )
    samples = sweep.get("samples")
    if mode == "random":
        if samples is None:
            raise _err("sweep.samples", "random mode needs the number of samples")
        samples = _int_at_least(samples, 1, "sweep.samples")
    elif samples is not None:
        raise _err("sweep.samples", f"only random mode takes samples (mode is {mode!r})")
    sample_seed = _int_at_least(sweep.get("sample_seed", 0), 0, "sweep.sample_seed")
    batch_size = sweep.get("batch_size", "auto")
    if batch_size != "auto":
        batch_size = _int_at_least(batch_size, 1, "sweep.batch_size")

    aliases = d.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise _err("aliases", "must be a table of alias = 'dotted.path'")
    for alias, path in aliases.items():
        _parse_path(path, f"aliases.{alias}")
    raw_axes = d.get("axes") or {}
    if not isinstance(raw_axes, dict):
        raise _err("axes", "must be a table of name = [values]")
    axes = tuple(_parse_axis(n, v, aliases, mode) for n, v in raw_axes.items())
    names = [a.name for a in axes]
    for a in axes:
        if a.name in RESERVED:
            raise _err(
                f"axes.{a.name}", f"the name is taken by the result; alias it, e.g. my_{a.name}"
            )
    paths = Counter(a.path for a in axes)
    dup = [p for p, n in paths.items() if n > 1]
    if dup:
        raise _err("axes", f"path {dup[0]!r} is swept by more than one axis")
    if mode == "zip" and axes:
        lengths = {a.name: len(a.values) for a in axes}
        if len(set(lengths.values())) > 1:
            raise _err("axes", f"zip mode needs axes of one length, got {lengths}")
    del names

    weights = _table(d.get("weights"), "weights", WEIGHT_KEYS)
    weights.setdefault("kind", "random")
    _check_weights(weights, "weights")
    init = _table(d.get("init"), "init", INIT_KEYS)
    init.setdefault("start", "weights")
    init.setdefault("noise", 0.0)
    if _is_int(init["noise"]):
        init["noise"] = float(init["noise"])

    scene = d.get("scene", {})
    if scene is False:
        scene = None
    elif scene is True:
        scene = {}
    else:
        scene = _table(scene, "scene", _scene_params())
        scene = _plain(scene)

    keep = _table(d.get("keep"), "keep", KEEP_KEYS)
    for flag in ("trajectories", "spectral_radius"):
        keep.setdefault(flag, False)
        if not isinstance(keep[flag], bool):
            raise _err(f"keep.{flag}", f"{keep[flag]!r} must be true or false")
    keep["record_every"] = _int_at_least(keep.get("record_every", 1), 1, "keep.record_every")
    keep["islands"] = _parse_islands(keep.get("islands"))

    spec = SweepSpec(
        base=base,
        axes=axes,
        mode=mode,
        seeds=seeds,
        members=members,
        member_varies=member_varies,
        samples=samples,
        sample_seed=sample_seed,
        batch_size=batch_size,
        name=name,
        weights=weights,
        init=init,
        scene=scene,
        keep=keep,
    )
    _check_combinations(spec)
    return spec


def _parse_islands(raw) -> dict:
    isl = _table(raw, "keep.islands", ISLAND_KEYS)
    isl = _plain(isl)
    # a dry run on two columns checks the values with analysis's own messages
    import xarray as xr

    from analysis import islands

    ds = xr.Dataset(
        {"embedding": (("time", "level", "column", "feature"), np.ones((1, 1, 2, 1)))},
        coords={"y": ("column", [0.0, 0.0]), "x": ("column", [0.0, 1.0])},
    )
    try:
        islands(ds, **isl)
    except (ValueError, TypeError) as exc:
        raise _err("keep.islands", _one_line(str(exc))) from None
    return isl


def _check_combinations(spec: SweepSpec) -> None:
    """Errors that no run could escape; invalid combinations are left to the runs."""
    n_valid = 0
    valid_values: dict[str, set] = {a.name: set() for a in spec.axes}
    first_error: dict[str, dict] = {a.name: {} for a in spec.axes}
    errors = []
    for p, values in enumerate(spec.points):
        got = spec._settings[p]
        if isinstance(got, Exception):
            errors.append(str(got))
            for a in spec.axes:
                first_error[a.name].setdefault(_freeze(values[a.name]), str(got))
            continue
        n_valid += 1
        for a in spec.axes:
            valid_values[a.name].add(_freeze(values[a.name]))
    if spec.mode in ("grid", "zip"):
        # a value that fails in every combination is a mistake, not a result
        for a in spec.axes:
            for v in a.values:
                key = _freeze(v)
                if key not in valid_values[a.name]:
                    raise _err(
                        f"axes.{a.name}",
                        f"value {v!r} gives no valid config: {first_error[a.name][key]}",
                    )
    if n_valid == 0:
        raise _err("axes" if spec.axes else "base", f"no run has a valid config: {errors[0]}")
    if spec.members and spec.member_varies == "init" and spec.init["noise"] == 0:
        noisy = any(_parse_path(a.path, "").text == "init.noise" for a in spec.axes)
        if not noisy:
            raise _err(
                "init.noise",
                "is 0, so all members would be identical; set init.noise > 0 or "
                "sweep.member_varies = 'weights'",
            )
    if spec.members and spec.member_varies == "weights" and spec.weights["kind"] == "identity":
        raise _err("sweep.member_varies", "'weights' needs random weights (weights.kind)")
    keep = spec.keep
    if keep["trajectories"]:
        for a in spec.axes:
            head = _parse_path(a.path, "").head
            if head in _SHAPE_FIELDS:
                raise _err(
                    "keep.trajectories",
                    f"axis {a.name} ({a.path}) changes the shape of the embedding; keep "
                    "summaries only or drop the axis",
                )
    if keep["spectral_radius"] and keep["record_every"] > 1:
        delays = {spec.settings(p)["config"].top_down_delay for p in _valid_points(spec)}
        if max(delays) > 1:
            raise _err(
                "keep.record_every",
                f"{keep['record_every']} > 1 with top_down_delay up to {max(delays)}: "
                "the spectral radius needs the last top_down_delay steps; use record_every = 1",
            )


def _valid_points(spec):
    return [p for p, s in enumerate(spec._settings) if not isinstance(s, Exception)]


def load_spec(spec, *, root=None) -> SweepSpec:
    """Read and validate a sweep spec before any work.

    Parameters
    ----------
    spec : SweepSpec, dict, or path to a ``.toml`` (or ``.json``) file
        Sections ``[sweep]``, ``[base]`` (or ``base = "config.toml"``), ``[aliases]``,
        ``[axes]``, ``[weights]``, ``[init]``, ``[scene]`` (or ``scene = false``),
        ``[keep]``; ``docs/sweeps.md`` describes every key.
    root : path, optional
        Folder that a relative ``base`` path is read from; default the spec file's folder
        (the working directory for dicts).

    Returns
    -------
    SweepSpec

    Raises
    ------
    ValueError
        One line naming the field (``axes.beta``, ``sweep.mode``, ...), the value and what
        is allowed.

    Examples
    --------
    >>> spec = load_spec({"base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
    ...                   "aliases": {"radius": "attention[1].radius"},
    ...                   "axes": {"radius": [1.0, 2.0, float("inf")]},
    ...                   "sweep": {"seeds": 2}, "scene": False})
    >>> spec.dims, spec.shape
    (('radius', 'seed'), (3, 2))
    >>> load_spec({"base": {"levels": 2}, "sweep": {"mode": "cube"}})
    Traceback (most recent call last):
    ...
    glomsim.sweep.SpecError: sweep spec: sweep.mode: 'cube' is not allowed; allowed: grid, zip, random
    """
    if isinstance(spec, SweepSpec):
        return spec
    source = "sweep spec"
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        source = f"sweep spec {str(p)!r}"
        if not p.is_file():
            raise SpecError(f"{source}: no such file")
        if p.suffix not in (".toml", ".json"):
            raise SpecError(f"{source}: the suffix must be .toml or .json")
        try:
            if p.suffix == ".json":
                data = json.loads(p.read_text())
            else:
                import tomllib

                data = tomllib.loads(p.read_text())
        except ValueError as exc:
            raise SpecError(
                f"{source}: not valid {p.suffix[1:].upper()}: {_one_line(exc)}"
            ) from None
        root = p.parent if root is None else Path(root)
    elif isinstance(spec, dict):
        data = spec
    else:
        raise TypeError(f"spec must be a SweepSpec, a dict or a path, got {type(spec).__name__}")
    try:
        return _parse(data, None if root is None else Path(root))
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


# ----------------------------------------------------------------------------------------
# one run, one batch (these run on the workers)
# ----------------------------------------------------------------------------------------
def _prepare_run(spec: SweepSpec, index: int):
    """(config, weights, scene, init) of run ``index``: from the spec and index alone."""
    from ..simulation import prepare_init
    from ..weights import identity_weights, random_weights

    point, seed, member = spec.unravel(index)
    s = spec.settings(point)
    cfg = s["config"].replace(seed=seed)
    wkw = {k: v for k, v in s["weights"].items() if k != "kind"}
    if s["weights"]["kind"] == "identity":
        w = identity_weights(cfg)
    elif member is not None and spec.member_varies == "weights":
        w = random_weights(cfg, np.random.default_rng([seed, member, 0]), **wkw)
    else:
        w = random_weights(cfg, seed, **wkw)
    scene = None
    if s["scene"] is not None:
        from ..scenes import make_scene

        scene = make_scene(grid=cfg.grid, dim=cfg.dim, levels=cfg.levels, seed=seed, **s["scene"])
    start, noise = s["init"]["start"], s["init"]["noise"]
    if start == "weights":
        init = prepare_init(cfg, w, None).astype(np.float64)
    elif start == "tokens":
        init = np.repeat(np.asarray(scene.tokens, dtype=np.float64)[None], cfg.levels, axis=0)
    else:
        init = np.zeros((cfg.levels, cfg.n_columns, cfg.dim))
    if noise > 0:
        rng = np.random.default_rng([seed, 0 if member is None else member, 1])
        init = init + noise * rng.standard_normal(init.shape)
    return cfg, w, scene, init


def _measure(spec: SweepSpec, cfg, w, ds, scene) -> dict:
    """The kept summaries (and trajectories) of one simulated run."""
    import analysis as an

    keep = spec.keep
    isl = an.islands(ds, time=-1, **keep["islands"])
    out = {"island_count": isl["count"].values[-1].astype(np.int64)}
    if scene is not None:
        out["ari"] = an.agreement(ds, islands=isl)["ari"].values[-1].astype(np.float64)
    conv = an.convergence(ds)
    out["residual"] = conv["residual"].values[-1].astype(np.float64)
    out["settled_step"] = conv["settled_step"].values.astype(np.int64)
    out["rate"] = conv["rate"].values.astype(np.float64)
    if keep["spectral_radius"]:
        st = an.stability(cfg, w, ds)
        out["spectral_radius"] = np.float64(st["spectral_radius"].values)
        out["spectral_radius_transverse"] = np.float64(st["spectral_radius_transverse"].values)
    if keep["trajectories"]:
        out["embedding"] = ds["embedding"].values
        if scene is not None:
            out["label"] = np.asarray(scene.labels, dtype=np.int64)
    return out


def simulate_run(spec: SweepSpec, index: int) -> dict:
    """Simulate run ``index`` and measure it: arrays keyed by result variable name.

    Deterministic: depends on the spec and ``index`` alone, never on scheduling.

    Examples
    --------
    >>> spec = load_spec({"base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
    ...                   "scene": False})
    >>> sorted(simulate_run(spec, 0))
    ['island_count', 'rate', 'residual', 'settled_step']
    """
    from ..simulation import simulate

    cfg, w, scene, init = _prepare_run(spec, index)
    ds = simulate(cfg, w, inputs=scene, init=init, record_every=spec.keep["record_every"])
    return _measure(spec, cfg, w, ds, scene)


def simulate_runs(spec: SweepSpec, indices) -> dict:
    """Runs that share one sweep point (they differ by seed or member only), simulated as
    one batched ensemble; {index: values}. Each member's trajectory is bit-identical to
    its own :func:`simulate_run`, so batching never changes a result."""
    from ..simulation import simulate_ensemble

    prepared = [_prepare_run(spec, i) for i in indices]
    cfg = prepared[0][0]
    scenes = [p[2] for p in prepared]
    ens = simulate_ensemble(
        cfg,
        [p[1] for p in prepared],
        inputs=None if scenes[0] is None else scenes,
        init=np.stack([p[3] for p in prepared]),
        record_every=spec.keep["record_every"],
    )
    out = {}
    for m, (index, (cfg_m, w, scene, _)) in enumerate(zip(indices, prepared, strict=True)):
        ds = ens.isel(member=m, drop=True)
        ds.attrs["glomsim_config"] = cfg_m.to_json()
        ds.attrs["weights_hash"] = w.content_hash()
        out[index] = _measure(spec, cfg_m, w, ds, scene)
    return out


def _error_text(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def run_batch(spec: SweepSpec, store: str, indices) -> list[tuple[int, int, str]]:
    """Run and write the runs ``indices`` that are not done yet; the task of one batch.

    Each run's data is written to its own region, then its status: a run killed
    between the two stays pending and is redone, identically, on resume. A run that
    raises is recorded as failed with its error; the batch goes on.

    Returns
    -------
    list of (index, status, error)
        status 1 = done, 2 = failed (runs already done are skipped and not listed;
        failed ones are run again, as ``run(..., retry_failed=True)`` asks).
    """
    import numba

    from . import store as st

    layout = st.Layout(spec)
    threads = numba.get_num_threads()
    # one numba thread per task: the sweep is parallel over runs, and numba's threads
    # beside other workers' made small runs 50x slower on 2 cores (set_num_threads is
    # per calling thread, so this does not leak into other tasks)
    numba.set_num_threads(1)
    results = []
    try:
        pending = [int(i) for i in indices if st.read_status(store, layout, i) != st.DONE]
        # runs at the same sweep point share a config: simulate them as one ensemble
        groups: dict = {}
        for index in pending:
            groups.setdefault(spec.unravel(index)[0], []).append(index)
        for group in groups.values():
            batched = {}
            if len(group) > 1:
                try:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore", RuntimeWarning)
                        batched = simulate_runs(spec, group)
                except Exception:  # noqa: BLE001 - redo one by one to attribute the error
                    batched = {}
            for index in group:
                if index in batched:
                    values, error = batched[index], ""
                else:
                    try:
                        # a run's result must not depend on the caller's warning filters
                        # (pytest turns some into errors; workers do not): floating-point
                        # trouble is judged by simulate's finite check
                        with warnings.catch_warnings(), np.errstate(all="ignore"):
                            warnings.simplefilter("ignore", RuntimeWarning)
                            values, error = simulate_run(spec, index), ""
                    except Exception as exc:  # noqa: BLE001 - every failure is a result
                        values, error = None, _error_text(exc)
                status = st.write_run(store, layout, index, values, error)
                results.append((int(index), status, error))
    finally:
        numba.set_num_threads(threads)
    return results


# ----------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _start_cluster(workers):
    from distributed import Client, LocalCluster

    n = _cores() if workers is None else workers
    if not _is_int(n) or n < 1:
        raise ValueError(f"workers={workers!r} must be an integer >= 1 or None (all cores)")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # one numba thread per worker process: N workers use N cores, not N x cores
        env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    return cluster, Client(cluster)


def run(
    spec,
    store,
    *,
    client=None,
    resume: bool = True,
    workers: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
):
    """Run a sweep on Dask and return its results, one Zarr store, as a Dataset.

    Parameters
    ----------
    spec : SweepSpec, dict or path
        Anything :func:`load_spec` takes; validated before any work.
    store : path
        The Zarr store (a folder, ``.zarr`` by convention) on a filesystem every worker
        can reach (shared on a cluster); URLs are not supported.
    client : distributed.Client, str or "sync", optional
        A client, or a scheduler address (``tcp://host:port``), used as it is and never
        shut down here. ``"sync"`` runs the batches one after another in this process (for
        debugging and small tests). Default: an embedded ``LocalCluster`` of ``workers``
        single-threaded worker processes, closed when done.
    resume : bool
        Skip runs already recorded in ``store`` (done, or failed unless
        ``retry_failed``). ``False`` starts over, replacing a previous sweep's store.
    workers : int, optional
        Worker processes of the embedded cluster; default the number of cores.
    progress : bool
        A tqdm bar over runs as they finish.
    retry_failed : bool
        On resume, run again the runs that failed before.

    Returns
    -------
    xarray.Dataset
        Dims: the sweep axes (grid mode) or ``point`` (zip, random), ``seed``, ``member``
        (ensembles), ``level``; coords the axis values, so ``ds.sel(beta=2.0)`` works
        (through a multi-index on ``point`` in zip and random modes). Variables per run:
        ``status`` (0 pending, 1 done, 2 failed), ``error``, ``island_count``, ``ari``,
        ``residual``, ``settled_step``, ``rate``, optional ``spectral_radius``,
        ``embedding``. Attrs ``sweep_done``, ``sweep_failed``, ``sweep_failures`` (JSON
        reasons with counts), the spec as TOML and its hash.

    Raises
    ------
    ValueError
        A bad spec, or a store that holds something else (a different sweep, not a sweep).

    Examples
    --------
    >>> import tempfile, os
    >>> spec = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 4},
    ...         "axes": {"top_down_delay": [1, 2]}, "scene": False}
    >>> ds = run(spec, os.path.join(tempfile.mkdtemp(), "s.zarr"), client="sync",
    ...          progress=False)
    >>> ds.attrs["sweep_done"], ds.residual.dims
    (2, ('top_down_delay', 'seed', 'level'))
    """
    from . import store as st

    spec = load_spec(spec)
    store = str(Path(store).expanduser().resolve())
    layout = st.Layout(spec)
    t0 = time.perf_counter()
    status = st.prepare(store, spec, layout, resume=resume)
    todo = status == st.PENDING
    if retry_failed:
        todo |= status == st.FAILED
    n_before = int((~todo).sum())
    batches = []
    for batch in spec.batches():
        left = tuple(i for i in batch if todo.flat[i])
        if left:
            batches.append(left)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.n_runs, initial=n_before, desc=f"sweep {spec.name}", unit="run")
    try:
        if client == "sync":
            for batch in batches:
                done = run_batch(spec, store, batch)
                if bar is not None:
                    bar.update(len(batch))
                del done
        elif batches:
            _run_distributed(spec, store, layout, batches, client, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    st.finish(store, layout, seconds=seconds, skipped=n_before)
    return open_sweep(store)


def _run_distributed(spec, store, layout, batches, client, workers, bar):
    import uuid

    from distributed import Client, as_completed

    from . import store as st

    cluster = own = None
    if client is None:
        cluster, client = _start_cluster(workers)
        own = client
    elif isinstance(client, str):
        client = own = Client(client)
    elif not hasattr(client, "submit"):
        raise TypeError(
            f"client={client!r} must be a distributed.Client, a scheduler address, 'sync' or None"
        )
    token = uuid.uuid4().hex[:8]
    futures = {}
    try:
        # the spec is shipped once and shared by every task
        spec_future = client.scatter(spec, broadcast=True)
        for k, batch in enumerate(batches):
            fut = client.submit(
                run_batch, spec_future, store, batch, key=f"glomsim-sweep-{token}-{k}", pure=False
            )
            futures[fut] = batch
        for fut in as_completed(futures):
            batch = futures.pop(fut)
            if fut.status == "error":
                # the whole task died (e.g. its worker was killed): its unfinished runs fail
                exc = fut.exception()
                msg = _one_line(f"task failed: {type(exc).__name__}: {exc}")
                for index in batch:
                    if st.read_status(store, layout, index) == st.PENDING:
                        st.write_run(store, layout, index, None, msg)
            if bar is not None:
                bar.update(len(batch))
            fut.release()
    except BaseException:
        for fut in list(futures):
            fut.cancel()
        raise
    finally:
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()


def open_sweep(store):
    """Open a sweep store as a Dataset (lazy: arrays load on access).

    In zip and random modes the axis coordinates along ``point`` get a multi-index, so
    ``ds.sel(beta=2.0)`` works there too.

    Examples
    --------
    >>> import tempfile, os
    >>> spec = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 2},
    ...         "sweep": {"mode": "zip"}, "scene": False,
    ...         "axes": {"attention.beta": [0.0, 1.0], "attention.radius": [1.0, 2.0]}}
    >>> path = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> _ = run(spec, path, client="sync", progress=False)
    >>> ds = open_sweep(path)
    >>> ds.sel({"attention.beta": 1.0, "attention.radius": 2.0}).rate.dims
    ('seed', 'level')
    >>> ds.sel({"attention.beta": 1.0}).rate.dims  # the other axis is left along point
    ('attention.radius', 'seed', 'level')
    """
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=False, chunks=None)
    # Python strings, as pandas and xarray's where/fillna expect them (numpy's StringDType,
    # which the store holds, cannot be mixed with the NaN that where() fills in)
    ds["error"] = ds["error"].astype(object)
    if "point" in ds.dims:
        names = json.loads(ds.attrs.get("sweep_axes", "[]"))
        if names:
            import xarray.indexes

            ds = ds.set_xindex(names, xarray.indexes.PandasMultiIndex)
    return ds


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def _add_arguments(p) -> None:
    import argparse

    p.add_argument("spec", metavar="SWEEP.toml", help="sweep spec (.toml or .json)")
    p.add_argument(
        "-o", "--output", metavar="OUT.zarr", required=True, help="the Zarr store to fill"
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:port)"
    )
    p.add_argument(
        "--workers", metavar="N", type=int, help="processes of the local cluster (all cores)"
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip runs already in OUT (default); --no-resume starts over",
    )
    p.add_argument("--retry-failed", action="store_true", help="on resume, redo failed runs")
    p.add_argument("--sync", action="store_true", help="no Dask: run in this process")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def cmd_sweep(args) -> int:
    """Run ``glomsim sweep``; a bad spec raises ValueError (one line naming the field)."""
    spec = load_spec(args.spec)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers={args.workers} must be >= 1")
    if args.scheduler and args.sync:
        raise ValueError("--scheduler and --sync were both given; pick one")
    client = args.scheduler or ("sync" if args.sync else None)
    ds = run(
        spec,
        args.output,
        client=client,
        resume=args.resume,
        workers=args.workers,
        progress=not args.quiet,
        retry_failed=args.retry_failed,
    )
    print(summary_text(ds, args.output))
    return 0


def summary_text(ds, path=None) -> str:
    """A few lines on a finished sweep: runs done and failed (with reasons) and time."""
    a = ds.attrs
    shape = " x ".join(f"{ds.sizes[d]} {d}" for d in json.loads(a["sweep_dims"]))
    lines = [
        f"sweep {a.get('sweep_name', '')!r}: {a['sweep_runs']} runs ({shape})"
        + (f" -> {path}" if path else ""),
        f"done {a['sweep_done']}, failed {a['sweep_failed']}, pending {a['sweep_pending']} "
        f"in {a['sweep_seconds']:.1f} s ({a['sweep_skipped']} recorded before)",
    ]
    for item in json.loads(a.get("sweep_failures", "[]"))[:5]:
        lines.append(f"  failed {item['count']} x {item['error']}")
    return "\n".join(lines)


def register_cli(subparsers):
    """Add ``glomsim sweep SPEC -o OUT.zarr [--scheduler ADDR] [--workers N] [--no-resume]``.

    The subcommand's ``func(args)`` returns 0 and prints a summary; a bad spec raises
    ValueError with a one-line message naming the field.

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="glomsim").add_subparsers()
    >>> register_cli(sub).prog
    'glomsim sweep'
    """
    p = subparsers.add_parser(
        "sweep", help="run a parameter sweep on Dask into one resumable Zarr store"
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_sweep)
    return p


def main(argv=None) -> int:
    """``python -m glomsim.sweep SPEC -o OUT.zarr ...`` (the same as ``glomsim sweep``)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m glomsim.sweep", description=__doc__.split("\n")[0])
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_sweep(args)
    except ValueError as exc:
        print(f"glomsim sweep: error: {_one_line(exc)}", file=sys.stderr)
        return 2
