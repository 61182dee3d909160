"""The sweep spec: what a sweep is (:class:`SweepSpec`, :class:`Axis`) and :func:`load_spec`.

A spec is read from TOML, JSON or a dict by the parser (:mod:`glomsim.sweep._spec_parse`),
which turns what is written into normalised fields; this module builds the spec from them,
derives its structure (points, runs, batches) and each point's settings, and refuses
combinations that no run could escape. Everything here depends on the spec alone, so any
worker derives the same runs from it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import one_line
from ..config import GlomConfig
from . import _spec_parse
from ._fields import (
    SHAPE_FIELDS,
    SpecError,
    check_init,
    check_movie,
    check_refine,
    check_scene,
    check_weights,
    freeze,
    parse_path,
    plain,
    set_config,
    spec_error,
)
from ._memory import check_memory

__all__ = ["Axis", "SweepSpec", "SpecError", "load_spec", "MODES"]

MODES = _spec_parse.MODES
#: Auto batches aim at about this many (step x level x column x feature) updates per task:
#: tens of milliseconds, far above Dask's per-task overhead of about a millisecond.
_BATCH_WORK = 1_000_000
#: ... with at most this many runs, so progress and resume stay fine-grained,
_MAX_BATCH = 32
#: ... and at least this many tasks per group of same-shape runs, so all workers get some.
_MIN_TASKS = 16


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
        ``movie.velocities``, ``movie.steps_per_frame``, ``weights.gain``, ``init.noise``.
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

    def sample(self, rng: np.random.Generator):
        """One value drawn with ``rng``: a choice, or a point of the range."""
        if not self.is_range:
            return self.values[int(rng.integers(len(self.values)))]
        if self.integer:
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

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
    weights, init, scene, movie, keep : dict
        Normalised sections (see ``docs/sweeps.md``); ``scene`` is None for zero inputs or
        a movie; ``movie`` (``make_movie`` arguments and ``steps_per_frame``) is None
        without one.
    refine : dict or None
        ``[refine]``: the axis, measure, level, crossing, tolerance and max_rounds of an
        adaptive sweep (:mod:`glomsim.sweep.refine`).
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
    movie: dict | None = None

    refine: dict | None = None  # [refine]: bisect a crossing along one axis (sweep.refine)

    @property
    def has_labels(self) -> bool:
        """Whether runs have ground truth (a scene or a movie), so ARIs are kept."""
        return self.scene is not None or self.movie is not None

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
            combos = [tuple(a.sample(rng) for a in self.axes) for _ in range(self.samples)]
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
        """The run settings of a point: ``config`` (GlomConfig), ``scene``, ``movie``,
        ``weights``, ``init`` dicts (``scene``/``movie`` None when absent). Raises
        ValueError for an invalid combination of axis values."""
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
                out.append(ValueError(one_line(str(exc))))
        return out

    def valid_points(self) -> list[int]:
        """The points whose axis values give a valid config."""
        return [p for p, s in enumerate(self._settings) if not isinstance(s, Exception)]

    def _build_settings(self, values: dict) -> dict:
        d = self.base.to_dict()
        sections = {
            name: None if table is None else dict(table)
            for name, table in (("scene", self.scene), ("movie", self.movie),
                                ("weights", self.weights), ("init", self.init))
        }  # fmt: skip
        # shape fields first, so per-level paths expand to the run's number of levels
        order = sorted(self.axes, key=lambda a: a.path.split("[")[0].split(".")[0] != "levels")
        for axis in order:
            path = parse_path(axis.path, f"axes.{axis.name}")
            value = values[axis.name]
            if path.section == "config":
                set_config(d, path, value)
            elif sections[path.section] is None:
                # the parser refuses movie paths without a movie, scene paths with one
                raise ValueError(f"{axis.path}: scene = false, so there is no scene to vary")
            else:
                sections[path.section][path.sub] = value
        cfg = GlomConfig.from_dict(d)
        check_weights(sections["weights"])
        check_init(sections["init"], has_scene=self.has_labels, cfg=cfg)
        for name, check in (("scene", check_scene), ("movie", check_movie)):
            if sections[name] is not None:
                if cfg.grid is None:
                    fix = "set scene = false" if name == "scene" else "drop the [movie]"
                    raise ValueError(f"{name}: a {name} needs a grid config; {fix}")
                check(cfg.grid, cfg.dim, cfg.levels, self.seeds[0], sections[name])
        return {"config": cfg, **sections}

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
        if self.movie is not None:
            # a [movie] in place of the [scene]; specs without one keep their old hash
            del d["scene"]
            d["movie"] = dict(self.movie)
        if self.refine is not None:
            d["refine"] = {k: v for k, v in self.refine.items() if v is not None}
        return plain(d)

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


# ----------------------------------------------------------------------------------------
# combinations: errors that no run could escape (invalid combinations are left to the runs)
# ----------------------------------------------------------------------------------------
def _check_combinations(spec: SweepSpec) -> None:
    _check_some_valid(spec)
    if spec.members and spec.member_varies == "init" and spec.init["noise"] == 0:
        noisy = any(parse_path(a.path, "").text == "init.noise" for a in spec.axes)
        if not noisy:
            raise spec_error(
                "init.noise",
                "is 0, so all members would be identical; set init.noise > 0 or "
                "sweep.member_varies = 'weights'",
            )
    if spec.members and spec.member_varies == "weights" and spec.weights["kind"] == "identity":
        raise spec_error("sweep.member_varies", "'weights' needs random weights (weights.kind)")
    _check_keep(spec)
    if spec.refine is not None:
        check_refine(spec)
    check_memory(spec)


def _check_some_valid(spec: SweepSpec) -> None:
    """Some run is valid, and (grid, zip) every axis value is valid in some run: a value
    that fails in every combination is a mistake, not a result."""
    valid_values: dict[str, set] = {a.name: set() for a in spec.axes}
    first_error: dict[str, dict] = {a.name: {} for a in spec.axes}
    errors = []
    for values, got in zip(spec.points, spec._settings, strict=True):
        for a in spec.axes:
            key = freeze(values[a.name])
            if isinstance(got, Exception):
                first_error[a.name].setdefault(key, str(got))
            else:
                valid_values[a.name].add(key)
        if isinstance(got, Exception):
            errors.append(str(got))
    if spec.mode in ("grid", "zip"):
        for a in spec.axes:
            for v in a.values:
                key = freeze(v)
                if key not in valid_values[a.name]:
                    raise spec_error(
                        f"axes.{a.name}",
                        f"value {v!r} gives no valid config: {first_error[a.name][key]}",
                    )
    if len(errors) == len(spec.points):
        where = "axes" if spec.axes else "base"
        raise spec_error(where, f"no run has a valid config: {errors[0]}")


def _check_keep(spec: SweepSpec) -> None:
    keep = spec.keep
    if keep["trajectories"]:
        for a in spec.axes:
            if parse_path(a.path, "").head in SHAPE_FIELDS:
                raise spec_error(
                    "keep.trajectories",
                    f"axis {a.name} ({a.path}) changes the shape of the embedding; keep "
                    "summaries only or drop the axis",
                )
    if keep["spectral_radius"] and keep["record_every"] > 1:
        delays = {spec.settings(p)["config"].top_down_delay for p in spec.valid_points()}
        if max(delays) > 1:
            raise spec_error(
                "keep.record_every",
                f"{keep['record_every']} > 1 with top_down_delay up to {max(delays)}: "
                "the spectral radius needs the last top_down_delay steps; use record_every = 1",
            )


# ----------------------------------------------------------------------------------------
# reading a spec
# ----------------------------------------------------------------------------------------
def load_spec(spec, *, root=None) -> SweepSpec:
    """Read and validate a sweep spec before any work.

    Parameters
    ----------
    spec : SweepSpec, dict, or path to a ``.toml`` (or ``.json``) file
        Sections ``[sweep]``, ``[base]`` (or ``base = "config.toml"``), ``[aliases]``,
        ``[axes]``, ``[weights]``, ``[init]``, ``[scene]`` (or ``scene = false``) or
        ``[movie]``, ``[keep]``; ``docs/sweeps.md`` describes every key.
    root : path, optional
        Folder that a relative ``base`` path is read from; default the spec file's folder
        (the working directory for dicts).

    Returns
    -------
    SweepSpec

    Raises
    ------
    ValueError
        A :class:`SpecError`: one line naming the field (``axes.beta``, ``sweep.mode``,
        ...), the value and what is allowed.

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
    glomsim.sweep.SpecError: sweep spec: sweep.mode='cube' is not allowed; allowed: grid, zip, random
    """
    if isinstance(spec, SweepSpec):
        return spec
    source = "sweep spec"
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        source = f"sweep spec {str(path)!r}"
        data = _spec_parse.read(path, source)
        root = path.parent if root is None else Path(root)
    elif isinstance(spec, dict):
        data = spec
    else:
        raise TypeError(f"spec must be a SweepSpec, a dict or a path, got {type(spec).__name__}")
    try:
        fields = _spec_parse.parse(data, None if root is None else Path(root))
        fields["axes"] = tuple(Axis(**a) for a in fields["axes"])
        spec = SweepSpec(**fields)
        _check_combinations(spec)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    return spec
