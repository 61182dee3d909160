"""The sweep spec's parser: TOML/JSON/dict sections in, normalised fields out.

One function per section (and per kind of axis), each raising a :class:`SpecError` that
names the field. :func:`parse` returns plain keyword arguments of
:class:`glomsim.sweep.SweepSpec` (axes as keyword arguments of ``Axis``), which
:func:`glomsim.sweep.load_spec` builds and checks as a whole; so this module needs neither
class, and the spec module imports it, not the other way round.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections import Counter
from pathlib import Path

from .._validate import (
    check_bool,
    check_choice,
    check_int,
    check_island_options,
    check_real,
    check_table,
    is_int,
    one_line,
    parse_float,
)
from ..config import GlomConfig
from ._fields import (
    INIT_KEYS,
    REFINE_KEYS,
    WEIGHT_KEYS,
    SpecError,
    check_weights,
    checked,
    file_sha256,
    freeze,
    is_start_file,
    kept_measures,
    movie_params,
    parse_path,
    plain,
    scene_params,
    spec_error,
    split_movie,
    start_array,
)
from .store import RESERVED

MODES = ("grid", "zip", "random")
MEMBER_VARIES = ("init", "weights")
SECTIONS = ("sweep", "base", "aliases", "axes", "weights", "init", "scene", "movie", "keep")
SECTIONS += ("refine",)
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
AXIS_KEYS = ("path", "values", "labels", "choices", "low", "high", "log", "integer")
KEEP_KEYS = ("trajectories", "record_every", "spectral_radius", "islands")
ISLAND_KEYS = ("threshold", "metric", "connectivity", "radius", "linkage")
_NAME_RE = re.compile(r"^[A-Za-z_][\w.\[\]]*$")


def parse(d, root: Path | None) -> dict:
    """The keyword arguments of ``SweepSpec`` from a spec's sections.

    ``root`` is the folder a relative ``base`` path is read from (None: the working
    directory). Combinations of axis values are checked later, on the built spec.
    """
    if not isinstance(d, dict):
        raise spec_error("", f"a sweep spec must be a table/dict, got {type(d).__name__}")
    bad = sorted(set(d) - set(SECTIONS))
    if bad:
        raise spec_error("", f"unknown section(s) {', '.join(bad)}; allowed: {', '.join(SECTIONS)}")
    if "base" not in d:
        raise spec_error("base", "missing: give [base] config fields or base = 'config.toml'")
    if "movie" in d and "scene" in d:
        raise spec_error(
            "movie", "a spec has a [scene] (one input) or a [movie] (frames), not both; drop one"
        )
    sweep = checked(check_table, "sweep", d.get("sweep"), SWEEP_KEYS)
    base = _parse_base(d["base"], root)
    fields = _parse_sweep(sweep)
    movie = _parse_movie(d.get("movie"))
    fields.update(
        base=base,
        axes=_parse_axes(d.get("aliases"), d.get("axes"), fields["mode"]),
        weights=_parse_weights(d.get("weights")),
        init=_parse_init(d.get("init"), root),
        scene=None if movie is not None else _parse_scene(d.get("scene", {})),
        movie=movie,
        keep=_parse_keep(d.get("keep")),
    )
    _check_input_axes(fields["axes"], fields["scene"], movie)
    fields["refine"] = _parse_refine(d.get("refine"), fields)
    return fields


def read(path: Path, source: str) -> dict:
    """The sections of a spec file (TOML or JSON), or a SpecError naming ``source``."""
    if not path.is_file():
        raise SpecError(f"{source}: no such file")
    if path.suffix not in (".toml", ".json"):
        raise SpecError(f"{source}: the suffix must be .toml or .json")
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        import tomllib

        return tomllib.loads(path.read_text())
    except ValueError as exc:
        raise SpecError(f"{source}: not valid {path.suffix[1:].upper()}: {one_line(exc)}") from None


# ----- [base] and [sweep] ------------------------------------------------------------------
def _parse_base(base, root: Path | None) -> GlomConfig:
    if isinstance(base, GlomConfig):
        return base
    try:
        if isinstance(base, (str, os.PathLike)):
            p = Path(base)
            if not p.is_absolute() and root is not None:
                p = root / p
            return GlomConfig.from_file(p)
        if isinstance(base, dict):
            return GlomConfig.from_dict(plain(base))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise spec_error("base", one_line(str(exc))) from None
    raise spec_error(
        "base", "give an inline table of config fields or a path to a .toml/.json config"
    )


def _parse_sweep(sweep: dict) -> dict:
    name = sweep.get("name", "sweep")
    if not isinstance(name, str):
        raise spec_error("sweep.name", f"{name!r} must be a string")
    mode = checked(check_choice, "sweep.mode", sweep.get("mode", "grid"), MODES)
    members = sweep.get("members")
    if members is not None:
        members = checked(check_int, "sweep.members", members, lo=1)
    varies = sweep.get("member_varies", "init")
    batch_size = sweep.get("batch_size", "auto")
    if batch_size != "auto":
        batch_size = checked(check_int, "sweep.batch_size", batch_size, lo=1)
    return {
        "name": name,
        "mode": mode,
        "seeds": _parse_seeds(sweep.get("seeds", 1)),
        "members": members,
        "member_varies": checked(check_choice, "sweep.member_varies", varies, MEMBER_VARIES),
        "samples": _parse_samples(sweep.get("samples"), mode),
        "sample_seed": checked(check_int, "sweep.sample_seed", sweep.get("sample_seed", 0), lo=0),
        "batch_size": batch_size,
    }


def _parse_seeds(seeds) -> tuple[int, ...]:
    """A count n (seeds 0..n-1) or a list of distinct integers >= 0."""
    if is_int(seeds):
        return tuple(range(checked(check_int, "sweep.seeds", seeds, lo=1)))
    if isinstance(seeds, (list, tuple)) and seeds:
        if not all(is_int(s) and s >= 0 for s in seeds):
            raise spec_error("sweep.seeds", f"{list(seeds)!r}: every seed must be an integer >= 0")
        if len(set(seeds)) != len(seeds):
            raise spec_error("sweep.seeds", f"{list(seeds)!r}: seeds must be distinct")
        return tuple(int(s) for s in seeds)
    raise spec_error("sweep.seeds", f"{seeds!r} must be a count >= 1 or a list of integers >= 0")


def _parse_samples(samples, mode: str) -> int | None:
    if mode == "random":
        if samples is None:
            raise spec_error("sweep.samples", "random mode needs the number of samples")
        return checked(check_int, "sweep.samples", samples, lo=1)
    if samples is not None:
        raise spec_error("sweep.samples", f"only random mode takes samples (mode is {mode!r})")
    return None


# ----- [aliases] and [axes] ----------------------------------------------------------------
def _parse_axes(aliases, raw_axes, mode: str) -> list[dict]:
    aliases = aliases or {}
    if not isinstance(aliases, dict):
        raise spec_error("aliases", "must be a table of alias = 'dotted.path'")
    for alias, path in aliases.items():
        parse_path(path, f"aliases.{alias}")
    raw_axes = raw_axes or {}
    if not isinstance(raw_axes, dict):
        raise spec_error("axes", "must be a table of name = [values]")
    axes = [_parse_axis(n, v, aliases, mode) for n, v in raw_axes.items()]
    for a in axes:
        if a["name"] in RESERVED:
            raise spec_error(
                f"axes.{a['name']}",
                f"the name is taken by the result; alias it, e.g. my_{a['name']}",
            )
    dup = [p for p, n in Counter(a["path"] for a in axes).items() if n > 1]
    if dup:
        raise spec_error("axes", f"path {dup[0]!r} is swept by more than one axis")
    if mode == "zip" and axes:
        lengths = {a["name"]: len(a["values"]) for a in axes}
        if len(set(lengths.values())) > 1:
            raise spec_error("axes", f"zip mode needs axes of one length, got {lengths}")
    return axes


def _parse_axis(name, raw, aliases: dict, mode: str) -> dict:
    """One axis: ``name = [values]`` or a table with values, choices or a range."""
    where = f"axes.{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise spec_error("axes", f"axis name {name!r} must be a path or an alias")
    table = _axis_table(raw, name in aliases, where, mode) if isinstance(raw, dict) else {}
    span = _parse_range(table, where) if "low" in table else None
    path = parse_path(table.get("path", aliases.get(name, name)), where).text
    if span is not None:
        return {"name": name, "path": path, **span}
    values = raw if not isinstance(raw, dict) else table["values"]
    values, labels = _parse_values(values, table.get("labels"), where, mode)
    return {"name": name, "path": path, "values": values, "labels": labels}


def _axis_table(raw: dict, aliased: bool, where: str, mode: str) -> dict:
    """The keys of an axis table, with ``choices`` read as values; a range has no values."""
    raw = checked(check_table, where, raw, AXIS_KEYS)
    if "path" in raw and aliased:
        raise spec_error(where, "give the path either in [aliases] or as path =, not both")
    if "values" in raw and "choices" in raw:
        raise spec_error(where, "give values or choices, not both")
    table = dict(raw)
    table["values"] = table.pop("values", table.pop("choices", None))
    if "low" in raw or "high" in raw:
        if mode != "random":
            raise spec_error(
                where, f"low/high ranges need sweep.mode = 'random' (mode is {mode!r})"
            )
        if table["values"] is not None:
            raise spec_error(where, "give either choices or low/high, not both")
        if "labels" in raw:
            raise spec_error(f"{where}.labels", "labels name values; a low/high range has none")
        table.setdefault("low", None)
    elif table["values"] is None:
        raise spec_error(where, "give values = [...] (or choices, or low/high in random mode)")
    return table


def _parse_range(table: dict, where: str) -> dict:
    """A random range: uniform, log-uniform (``log``) or integers (``integer``)."""
    low = checked(check_real, f"{where}.low", table["low"])
    high = checked(check_real, f"{where}.high", table.get("high"))
    if low > high:
        raise spec_error(where, f"low={table['low']!r} must be <= high={table['high']!r}")
    log = checked(check_bool, f"{where}.log", table.get("log", False))
    integer = checked(check_bool, f"{where}.integer", table.get("integer", False))
    if log and low <= 0:
        raise spec_error(f"{where}.low", f"{table['low']!r} must be > 0 for a log range")
    if integer and not (low.is_integer() and high.is_integer()):
        raise spec_error(where, "an integer range needs integer low and high")
    return {"values": (), "low": low, "high": high, "log": log, "integer": integer}


def _parse_values(values, labels, where: str, mode: str) -> tuple[tuple, tuple | None]:
    """An axis's values (and labels): one type, distinct along a grid axis."""
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise spec_error(where, f"values {values!r} must be a non-empty list")
    values = tuple(parse_float(plain(v)) for v in values)
    if labels is not None:
        labels = _parse_labels(labels, len(values), where)
    elif not all(isinstance(v, (str, bool, numbers.Real)) for v in values):
        raise spec_error(
            where,
            "values that are lists or tables (e.g. mix schedules) need labels = [...] "
            "to name them on the coordinate",
        )
    coords = labels or values
    kinds = {_kind(v) for v in coords}
    if len(kinds) > 1:
        raise spec_error(where, f"values mix {', '.join(sorted(kinds))}; use one type (or labels)")
    if mode == "grid" and len(set(map(freeze, coords))) != len(coords):
        raise spec_error(where, f"values {list(coords)!r} repeat; grid axes need distinct values")
    return values, labels


def _parse_labels(labels, n: int, where: str) -> tuple:
    if not isinstance(labels, (list, tuple)) or len(labels) != n:
        raise spec_error(f"{where}.labels", f"needs one label per value ({n}), got {labels!r}")
    labels = tuple(plain(v) for v in labels)
    if not all(isinstance(v, (str, numbers.Real)) for v in labels):
        raise spec_error(f"{where}.labels", "labels must be strings or numbers")
    if len(set(labels)) != len(labels):
        raise spec_error(f"{where}.labels", f"labels {list(labels)!r} must be distinct")
    return labels


def _kind(v) -> str:
    if isinstance(v, bool):
        return "booleans"
    if isinstance(v, numbers.Real):
        return "numbers"
    if isinstance(v, str):
        return "strings"
    return "tables/lists"


# ----- [weights], [init], [scene], [keep] --------------------------------------------------
def _parse_weights(raw) -> dict:
    weights = checked(check_table, "weights", raw, WEIGHT_KEYS)
    weights.setdefault("kind", "random")
    check_weights(weights)
    return weights


def _parse_init(raw, root: Path | None) -> dict:
    # checked per point, as an axis may vary init.noise
    init = checked(check_table, "init", raw, INIT_KEYS)
    init.setdefault("start", "weights")
    init.setdefault("noise", 0.0)
    if is_int(init["noise"]):
        init["noise"] = float(init["noise"])
    if is_start_file(init["start"]):
        # an explicit start: an absolute path (workers parse the spec anywhere) and the
        # file's hash, so that a changed file is a different sweep, never a quiet resume
        p = Path(init["start"]).expanduser()
        if not p.is_absolute():
            p = (root if root is not None else Path.cwd()) / p
        init["start"] = str(p.resolve())
        start_array(init["start"], init.get("start_sha256"))  # readable and unchanged
        init.setdefault("start_sha256", file_sha256(init["start"]))
    elif "start_sha256" in init:
        raise spec_error("init.start_sha256", "only a start file (start = 'path.npy') takes it")
    return init


# ----- [refine] ----------------------------------------------------------------------------
def _parse_refine(raw, fields: dict) -> dict | None:
    """``[refine]``: every key checked on one line; the whole spec is checked later."""
    if raw is None:
        return None
    r = checked(check_table, "refine", raw, REFINE_KEYS)
    for key in REFINE_KEYS[:4]:
        if key not in r:
            raise spec_error(
                f"refine.{key}", f"missing; [refine] needs {', '.join(REFINE_KEYS[:4])}"
            )
    names = [a["name"] for a in fields["axes"]]
    if not names:
        raise spec_error("refine.axis", "the sweep has no [axes] to refine along")
    measures = kept_measures(fields["scene"] is not None, fields["keep"])
    level = r.get("level")
    return {
        "axis": checked(check_choice, "refine.axis", r["axis"], names),
        "measure": checked(check_choice, "refine.measure", r["measure"], measures),
        "crossing": checked(check_real, "refine.crossing", r["crossing"]),
        "tolerance": checked(check_real, "refine.tolerance", r["tolerance"], lo=0, lo_open=True),
        "level": None if level is None else checked(check_int, "refine.level", level, lo=0),
        "max_rounds": checked(check_int, "refine.max_rounds", r.get("max_rounds", 10), lo=1, hi=60),
    }


def _parse_scene(raw) -> dict | None:
    if raw is False:
        return None
    if raw is True:
        return {}
    return plain(checked(check_table, "scene", raw, scene_params()))


def _parse_movie(raw) -> dict | None:
    """The ``[movie]`` table (``movie = true``: the default movie), with its
    ``steps_per_frame``; keys given as None (TOML has none) are the defaults, so dropped."""
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    movie = plain(checked(check_table, "movie", raw, movie_params()))
    movie = {k: v for k, v in movie.items() if v is not None}
    movie["steps_per_frame"] = checked(
        check_int, "movie.steps_per_frame", split_movie(movie)[1], lo=1
    )
    return movie


def _check_input_axes(axes: list[dict], scene: dict | None, movie: dict | None) -> None:
    """Axes over ``scene.*`` need a [scene], over ``movie.*`` a [movie]."""
    for a in axes:
        head = parse_path(a["path"], "").head
        if head == "movie" and movie is None:
            raise spec_error(
                f"axes.{a['name']}", f"path {a['path']!r} varies the movie; the spec has no [movie]"
            )
        if head == "scene" and movie is not None:
            raise spec_error(
                f"axes.{a['name']}",
                f"path {a['path']!r} varies the scene, but the spec has a [movie]; vary "
                f"{'movie.' + a['path'].split('.', 1)[1]!r} instead",
            )


def _parse_keep(raw) -> dict:
    keep = checked(check_table, "keep", raw, KEEP_KEYS)
    for flag in ("trajectories", "spectral_radius"):
        keep[flag] = checked(check_bool, f"keep.{flag}", keep.get(flag, False))
    every = keep.get("record_every", 1)
    keep["record_every"] = checked(check_int, "keep.record_every", every, lo=1)
    isl = plain(checked(check_table, "keep.islands", keep.get("islands"), ISLAND_KEYS))
    try:
        check_island_options(**isl, where="keep.islands")
    except (ValueError, TypeError) as exc:
        raise spec_error("", one_line(str(exc))) from None
    keep["islands"] = isl
    return keep
