"""The fields of a sweep spec that a run's settings are built from.

Paths (``attention[2].radius``, ``scene.noise``, ``movie.velocities``, ...) say where an
axis value goes, and the checks of the ``[weights]``, ``[init]``, ``[scene]`` and ``[movie]``
sections run twice: on the spec as
written, and on every point once its axis values are in. Both the parser
(:mod:`glomsim.sweep._spec_parse`) and the spec's per-point settings
(:mod:`glomsim.sweep.spec`) build on this module, which imports neither.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, fields

import numpy as np

from .._validate import check_choice, check_int, check_real, one_line
from ..config import Attention, GlomConfig, Mix

WEIGHT_KINDS = ("random", "identity")
WEIGHT_KEYS = ("kind", "gain", "positional_scale", "init_scale")
INIT_STARTS = ("weights", "tokens", "zeros")
INIT_KEYS = ("start", "noise", "start_sha256")
#: The keys of ``[refine]``; the first four are required.
REFINE_KEYS = ("axis", "measure", "crossing", "tolerance", "level", "max_rounds")
#: Config fields a sweep may not vary: the seed is its own dimension, positions are arrays.
FIXED_FIELDS = {
    "seed": "the seed is its own dimension; list seeds in sweep.seeds",
    "positions": "positions are an array; sweep a grid instead",
}
#: Paths that change the shape of the embedding (so trajectories cannot share one array).
SHAPE_FIELDS = ("levels", "dim", "grid", "steps")
#: Path heads that are not config fields, with the names each one takes.
_OTHER_HEADS = ("scene", "movie", "weights", "init")
#: The ``[movie]`` key that is not a ``make_movie`` argument: steps each frame is shown.
STEPS_PER_FRAME = "steps_per_frame"
_PATH_RE = re.compile(r"^([A-Za-z_]\w*)(?:\[(\d+)\])?(?:\.([A-Za-z_]\w*))?$")


class SpecError(ValueError):
    """A bad sweep spec: one line naming the field, the value and what is allowed."""


# shown as glomsim.sweep.SpecError in tracebacks, where users import it from
SpecError.__module__ = "glomsim.sweep"


def spec_error(where: str, msg: str) -> SpecError:
    """A SpecError whose message starts with the field ``where`` (when there is one)."""
    return SpecError(f"{where}: {msg}" if where else msg)


def checked(check, *args, **kwargs):
    """``check(*args, **kwargs)`` of :mod:`glomsim._validate`, its error as a SpecError.

    The shared checks raise ValueError or TypeError; a spec's mistakes are all SpecErrors,
    so that ``load_spec`` names the source and the CLI reports them on one line.
    """
    try:
        return check(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise SpecError(str(exc)) from None


def plain(value):
    """Python scalars/lists/dicts from numpy ones, so values hash, print and serialise alike."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def freeze(d) -> str:
    """A hashable, order-independent text of a value (for sets and caches)."""
    return json.dumps(plain(d), sort_keys=True)


# ----------------------------------------------------------------------------------------
# paths: where an axis value goes
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    """A parsed axis path: ``head[index].sub``, as written in ``text``."""

    head: str
    index: int | None
    sub: str | None
    text: str

    @property
    def section(self) -> str:
        """``config`` for config fields; ``scene``, ``movie``, ``weights`` or ``init``
        otherwise."""
        return self.head if self.head in _OTHER_HEADS else "config"


def _config_fields() -> list[str]:
    return [f.name for f in fields(GlomConfig) if f.name not in FIXED_FIELDS]


def _allowed_paths() -> str:
    return (
        f"a config field ({', '.join(_config_fields())}), mix.<field>, attention.<field>, "
        "attention[<level>].<field>, mix[<level>].<field>, grid[0|1], scene.<make_scene "
        "argument>, movie.<make_movie argument|steps_per_frame>, "
        "weights.<gain|positional_scale|init_scale>, init.noise"
    )


def parse_path(text, where: str) -> Path:
    """The :class:`Path` of ``text``, or a SpecError at ``where`` saying what is allowed."""
    if not isinstance(text, str):
        raise spec_error(where, f"path {text!r} must be a string; allowed: {_allowed_paths()}")
    m = _PATH_RE.match(text.strip())
    if not m:
        raise spec_error(where, f"path {text!r} is not a dotted path; allowed: {_allowed_paths()}")
    head, index, sub = m.group(1), m.group(2), m.group(3)
    path = Path(head, None if index is None else int(index), sub, text)
    if head in FIXED_FIELDS:
        raise spec_error(where, f"path {text!r} cannot be swept: {FIXED_FIELDS[head]}")
    if head in _OTHER_HEADS:
        _check_other_path(path, where)
    elif head not in _config_fields():
        raise spec_error(
            where, f"path {text!r}: {head!r} is not a config field; allowed: {_allowed_paths()}"
        )
    else:
        _check_config_path(path, where)
    return path


def _check_other_path(path: Path, where: str) -> None:
    head, text = path.head, path.text
    if path.index is not None or path.sub is None:
        raise spec_error(where, f"path {text!r} must be {head}.<name>; allowed: {_allowed_paths()}")
    ok = {"scene": scene_params(), "movie": movie_params(), "weights": WEIGHT_KEYS[1:],
          "init": ("noise",)}[head]  # fmt: skip
    if path.sub not in ok:
        raise spec_error(
            where, f"path {text!r}: {head}.{path.sub} is unknown; allowed: {', '.join(ok)}"
        )


def _check_config_path(path: Path, where: str) -> None:
    head, sub, text = path.head, path.sub, path.text
    if head in ("mix", "attention"):
        subs = [f.name for f in fields(Mix if head == "mix" else Attention)]
        if sub is not None and sub not in subs:
            raise spec_error(
                where, f"path {text!r}: {head}.{sub} is unknown; allowed: {', '.join(subs)}"
            )
    elif head == "grid":
        if sub is not None or (path.index is not None and path.index > 1):
            raise spec_error(where, f"path {text!r}: use grid, grid[0] (rows) or grid[1] (cols)")
    elif path.index is not None or sub is not None:
        raise spec_error(where, f"path {text!r}: {head} is a plain field; write just {head!r}")


def set_config(d: dict, path: Path, value) -> None:
    """Put ``value`` at ``path`` in a config dict (from ``GlomConfig.to_dict``)."""
    value = copy.deepcopy(value)
    if path.head in ("mix", "attention"):
        if path.index is None:
            _set_every_level(d, path, value)
        else:
            _set_one_level(d, path, value)
    elif path.head == "grid" and path.index is not None:
        if "grid" not in d:
            raise ValueError(f"{path.text}: the base config has positions, not a grid")
        grid = list(d["grid"])
        grid[path.index] = value
        d["grid"] = grid
    else:
        d[path.head] = value


def _set_every_level(d: dict, path: Path, value) -> None:
    cur = d.get(path.head, {})
    if path.sub is None:
        d[path.head] = value
    elif isinstance(cur, list):
        for item in cur:
            item[path.sub] = value
    else:
        cur[path.sub] = value
        d[path.head] = cur


def _set_one_level(d: dict, path: Path, value) -> None:
    cur = d.get(path.head, {})
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


@functools.lru_cache(maxsize=1)
def scene_params() -> tuple[str, ...]:
    """The ``make_scene`` arguments a spec may give (the run's config gives the rest)."""
    import inspect

    from ..scenes import make_scene

    skip = {"grid", "dim", "levels", "seed"}
    return tuple(p for p in inspect.signature(make_scene).parameters if p not in skip)


@functools.lru_cache(maxsize=1)
def movie_params() -> tuple[str, ...]:
    """The ``[movie]`` keys: ``make_movie``'s own arguments, the ``make_scene`` arguments it
    passes on (the run's config and seed give grid, dim, levels and seed) and
    ``steps_per_frame``."""
    import inspect

    from .._movie import SCENE_ARGUMENTS, make_movie

    skip = {"grid", "dim", "levels", "seed"}
    own = [
        p.name
        for p in inspect.signature(make_movie).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    scene = [a for a in SCENE_ARGUMENTS if a not in skip]
    return tuple(own + scene + [STEPS_PER_FRAME])


def split_movie(movie: dict) -> tuple[dict, int]:
    """A ``[movie]`` table as (``make_movie`` keyword arguments, steps per frame)."""
    kwargs = {k: v for k, v in movie.items() if k != STEPS_PER_FRAME}
    return kwargs, movie.get(STEPS_PER_FRAME, 1)


# ----------------------------------------------------------------------------------------
# section checks: on the spec as written, and on every point with its axis values
# ----------------------------------------------------------------------------------------
def check_weights(w: dict, where: str = "weights") -> None:
    """The ``[weights]`` section: a kind, and the random kind's non-negative scales."""
    checked(check_choice, f"{where}.kind", w.get("kind"), WEIGHT_KINDS)
    for key in WEIGHT_KEYS[1:]:
        if key in w:
            if w["kind"] == "identity":
                raise spec_error(f"{where}.{key}", "only random weights take it (kind = 'random')")
            checked(check_real, f"{where}.{key}", w[key], lo=0)


def check_init(init: dict, has_scene: bool, where: str = "init", cfg=None) -> None:
    """The ``[init]`` section: a start, non-negative noise; tokens need a scene; a start
    file (``start = "path.npy"``) fits ``cfg``: (levels, columns, dim) or (levels, dim)."""
    start = init.get("start")
    if not is_start_file(start):
        checked(check_choice, f"{where}.start", start, INIT_STARTS + ("<path>.npy",))
    checked(check_real, f"{where}.noise", init.get("noise", 0.0), lo=0)
    if start == "tokens" and not has_scene:
        raise spec_error(f"{where}.start", "'tokens' starts from the scene's tokens; scene = false")
    if is_start_file(start) and cfg is not None:
        shape = start_array(start, init.get("start_sha256")).shape
        L, N, D = cfg.levels, cfg.n_columns, cfg.dim
        if shape not in ((L, N, D), (L, D)):
            raise spec_error(
                f"{where}.start",
                f"{start!r} holds an array of shape {shape}; allowed: ({L}, {N}, {D}) = "
                f"(levels, columns, dim) or ({L}, {D}) = (levels, dim) for every column",
            )


def is_start_file(start) -> bool:
    """Whether an ``init.start`` names a ``.npy`` file rather than a kind of start."""
    return isinstance(start, str) and start.endswith(".npy")


def file_sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def start_array(path: str, sha256: str | None = None) -> np.ndarray:
    """The explicit start in ``path`` (float64, read-only), checked against ``sha256``
    (the file's hash when the spec was first read) so that a sweep never resumes, nor a
    worker runs, from a file that changed meanwhile."""
    return _start_array(path, sha256, _mtime(path))


def start_state(init: dict, cfg) -> np.ndarray:
    """The (levels, columns, dim) float64 start of a run whose ``init.start`` is a file."""
    arr = start_array(init["start"], init.get("start_sha256"))
    if arr.ndim == 2:
        arr = arr[:, None, :]
    return np.array(np.broadcast_to(arr, (cfg.levels, cfg.n_columns, cfg.dim)))


def _mtime(path: str):
    import os

    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _start_array(path: str, sha256, _mtime) -> np.ndarray:
    where = "init.start"
    try:
        digest = file_sha256(path)
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise spec_error(where, f"{path!r} cannot be read as a .npy array: {exc}") from None
    if sha256 is not None and digest != sha256:
        raise spec_error(
            where,
            f"{path!r} changed since the sweep was specified (sha256 {digest[:12]}..., "
            f"start_sha256 {sha256[:12]}...); restore it, or start over with the new file",
        )
    if arr.dtype.kind not in "fiu" or arr.ndim not in (2, 3):
        raise spec_error(
            where,
            f"{path!r} holds a {arr.dtype} array of shape {arr.shape}; allowed: a numeric "
            "(levels, columns, dim) or (levels, dim) array",
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise spec_error(where, f"{path!r} holds non-finite values; allowed: finite numbers")
    arr.flags.writeable = False
    return arr


def check_scene(grid, dim: int, levels: int, seed: int, scene: dict) -> None:
    """Make the scene once, so that bad ``[scene]`` values fail before any run."""
    _check_scene_cached(grid, dim, levels, seed, freeze(scene))


def check_movie(grid, dim: int, levels: int, seed: int, movie: dict) -> None:
    """Check ``steps_per_frame`` and make the movie once, so that bad ``[movie]`` values
    fail before any run."""
    kwargs, per_frame = split_movie(movie)
    checked(check_int, f"movie.{STEPS_PER_FRAME}", per_frame, lo=1)
    _check_scene_cached(grid, dim, levels, seed, freeze(kwargs), "movie")


@functools.lru_cache(maxsize=256)
def _check_scene_cached(grid, dim, levels, seed, frozen, section="scene"):
    # points of one sweep share their scene settings; make each distinct scene once
    from ..scenes import make_movie, make_scene

    make = make_scene if section == "scene" else make_movie
    try:
        make(grid=grid, dim=dim, levels=levels, seed=seed, **json.loads(frozen))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{section}: {exc}") from None


# ----------------------------------------------------------------------------------------
# [refine]: the measures a refinement may follow, and its checks on the whole spec
# ----------------------------------------------------------------------------------------
def kept_measures(has_scene: bool, keep: dict) -> tuple[str, ...]:
    """The per-run measures a sweep with these sections keeps (what ``[refine]`` may follow)."""
    names = ["island_count", "residual", "settled_step", "rate"]
    names += ["ari", "ari_objects", "boundary_leak"] * has_scene
    names += ["spectral_radius", "spectral_radius_transverse"] * bool(keep.get("spectral_radius"))
    return tuple(names)


def per_level(measure: str) -> bool:
    """Whether a kept measure has one value per level."""
    from ..variables import VARIABLES

    return "level" in VARIABLES[measure].dims


def check_refine(spec) -> None:
    """``[refine]`` against the built spec: a grid sweep, a numeric axis to bisect, a level
    the measure has, and values between the grid's that still give valid configs."""
    r = spec.refine
    if spec.mode != "grid":
        raise spec_error("refine", f"needs sweep.mode = 'grid' (mode is {spec.mode!r})")
    if spec.keep["trajectories"]:
        raise spec_error("refine", "keep.trajectories = true is not allowed with [refine]")
    axis = next(a for a in spec.axes if a.name == r["axis"])
    values = axis.values
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if axis.labels is not None or not numeric or not all(np.isfinite(values)):
        raise spec_error(
            "refine.axis",
            f"{axis.name!r} has values {list(axis.coord_values)!r}; allowed: an axis of "
            "finite numbers, without labels",
        )
    if len(values) < 2:
        raise spec_error("refine.axis", f"{axis.name!r} needs at least 2 values to bracket")
    labelled = [a.name for a in spec.axes if a.labels is not None]
    if labelled:
        raise spec_error(
            "refine", f"axis {labelled[0]!r} has labels; refinement needs axes of plain values"
        )
    levels = max(spec.settings(p)["config"].levels for p in spec.valid_points())
    if r["level"] is not None and not per_level(r["measure"]):
        raise spec_error("refine.level", f"{r['measure']!r} has no levels; leave level out")
    if r["level"] is not None and r["level"] >= levels:
        raise spec_error(
            "", f"refine.level={r['level']} is not allowed; allowed: 0..{levels - 1} (levels)"
        )
    _check_midpoint(spec, axis)


def _check_midpoint(spec, axis) -> None:
    lo, hi = sorted(axis.values)[:2]
    mid = (lo + hi) / 2
    errors = []
    for p in spec.valid_points():
        values = dict(spec.points[p], **{axis.name: mid})
        try:
            spec._build_settings(values)
            return
        except (ValueError, TypeError) as exc:
            errors.append(one_line(str(exc)))
    raise spec_error(
        "refine.axis",
        f"{axis.name!r} cannot be bisected: the value {mid!r} between {lo!r} and {hi!r} "
        f"gives no valid config: {errors[0] if errors else 'no valid point'}",
    )
