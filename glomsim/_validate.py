"""The shared field checks and their one-line error wording.

Every check raises before any work starts, with a message that names the field, the value
and what is allowed: ``steps=-1 is not allowed; allowed: an integer >= 0``. Config, runs,
sweeps, training, analysis and the CLI all check through these functions, so one kind of
mistake reads the same wherever it is made.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "is_int",
    "is_real",
    "parse_float",
    "one_line",
    "not_allowed",
    "check_int",
    "check_real",
    "check_choice",
    "check_bool",
    "check_table",
    "check_island_options",
    "METRICS",
    "CONNECTIVITIES",
    "LINKAGES",
]


def is_int(x) -> bool:
    """An integer (numpy's included), not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_real(x) -> bool:
    """A real number (numpy's and integers included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def parse_float(x):
    """Accept the strings 'inf'/'-inf'/'nan' that strict JSON and TOML files spell out."""
    if isinstance(x, str) and x.strip().lower() in ("inf", "+inf", "infinity", "-inf", "nan"):
        return float(x)
    return x


def one_line(text, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def not_allowed(name: str, value, allowed: str, cls=ValueError) -> Exception:
    """The error for a bad field: ``name=value is not allowed; allowed: ...``."""
    return cls(f"{name}={value!r} is not allowed; allowed: {allowed}")


def _bounds(lo, hi, lo_open=False, hi_open=False) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return " and ".join(parts)


def _allowed(kind: str, bounds: str, note: str) -> str:
    return " ".join(part for part in (kind, bounds, note) if part)


def check_int(name: str, value, *, lo=None, hi=None, note: str = "") -> int:
    """``value`` as an int, or a ValueError naming ``name`` and the allowed range.

    ``note`` is added to what is allowed, e.g. ``"or None (4 * dim)"``.

    Examples
    --------
    >>> check_int("steps", -1, lo=0)
    Traceback (most recent call last):
    ...
    ValueError: steps=-1 is not allowed; allowed: an integer >= 0
    """
    ok = is_int(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        raise not_allowed(name, value, _allowed("an integer", _bounds(lo, hi), note))
    return int(value)


def check_real(
    name: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False, finite=True, note=""
) -> float:
    """``value`` as a float, or a ValueError naming ``name`` and the allowed range.

    ``finite=False`` admits infinities (never NaN); ``note`` is added to what is allowed.
    """
    ok = is_real(value) and not (isinstance(value, float) and math.isnan(value))
    ok = ok and (not finite or math.isfinite(value))
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        kind = "a finite number" if finite else "a number"
        raise not_allowed(name, value, _allowed(kind, _bounds(lo, hi, lo_open, hi_open), note))
    return float(value)


def check_choice(name: str, value, allowed):
    """``value`` if it is one of ``allowed``, else a ValueError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise not_allowed(name, value, ", ".join(map(str, allowed)))
    return value


def vector_bits_setting() -> int | None:
    """``GLOMSIM_VECTOR_BITS`` (the nets' SIMD width, :data:`glomsim._kernels.jit.VECTOR_BITS`)
    as 256 or 512, None when unset; any other value is a ValueError naming the variable."""
    import os

    raw = os.environ.get("GLOMSIM_VECTOR_BITS", "").strip()
    return int(check_choice("GLOMSIM_VECTOR_BITS", raw, ("256", "512"))) if raw else None


def check_bool(name: str, value) -> bool:
    """``value`` if it is True or False (numpy's too), else a TypeError."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise not_allowed(name, value, "True or False", TypeError)
    return bool(value)


def check_table(name: str, value, allowed) -> dict:
    """A dict whose keys are all in ``allowed`` (None is an empty table)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: must be a table, got {type(value).__name__}")
    bad = sorted(set(value) - set(allowed))
    if bad:
        raise ValueError(f"{name}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return dict(value)


#: Options of ``analysis.islands``, checked here so that a sweep spec's ``[keep.islands]``
#: is checked at parse time without importing analysis (the core never does, but to measure).
METRICS = ("cosine", "euclidean")
CONNECTIVITIES = ("spatial", "global")
LINKAGES = ("single", "average", "complete", "weighted")


def check_island_options(
    *,
    threshold=0.99,
    metric="cosine",
    connectivity="spatial",
    radius=1.0,
    baseline_seed=0,
    linkage="single",
    where="islands",
) -> None:
    """Check the options of :func:`analysis.islands`; errors start with ``where``.

    Examples
    --------
    >>> check_island_options(threshold=2.0)
    Traceback (most recent call last):
    ...
    ValueError: islands: threshold=2.0 is not allowed; allowed: [-1, 1] for metric='cosine'
    """
    for name, value, allowed in (
        ("metric", metric, METRICS),
        ("connectivity", connectivity, CONNECTIVITIES),
        ("linkage", linkage, LINKAGES),
    ):
        check_choice(f"{where}: {name}", value, allowed)
    cosine = metric == "cosine"
    lo = -1.0 if cosine else -math.inf
    if not (is_real(threshold) and math.isfinite(threshold) and lo <= threshold <= 1.0):
        allowed = "[-1, 1] for metric='cosine'" if cosine else "a finite number <= 1"
        raise not_allowed(f"{where}: threshold", threshold, allowed)
    check_real(f"{where}: radius", radius, lo=0, finite=False, note="(inf: all columns)")
    check_int(f"{where}: baseline_seed", baseline_seed, lo=0)
