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


def check_int(name: str, value, *, lo=None, hi=None) -> int:
    """``value`` as an int, or a ValueError naming ``name`` and the allowed range."""
    ok = is_int(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        raise not_allowed(name, value, f"an integer {_bounds(lo, hi)}".rstrip())
    return int(value)


def check_real(
    name: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False, finite=True
) -> float:
    """``value`` as a float, or a ValueError naming ``name`` and the allowed range."""
    ok = is_real(value) and not (isinstance(value, float) and math.isnan(value))
    ok = ok and (not finite or math.isfinite(value))
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        kind = "a finite number" if finite else "a number"
        raise not_allowed(name, value, f"{kind} {_bounds(lo, hi, lo_open, hi_open)}".rstrip())
    return float(value)


def check_choice(name: str, value, allowed):
    """``value`` if it is one of ``allowed``, else a ValueError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise not_allowed(name, value, ", ".join(map(str, allowed)))
    return value


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
    """Check the options of :func:`analysis.islands`; errors start with ``where``."""
    for name, value, allowed in (
        ("metric", metric, METRICS),
        ("connectivity", connectivity, CONNECTIVITIES),
        ("linkage", linkage, LINKAGES),
    ):
        if value not in allowed:
            raise ValueError(
                f"{where}: {name}={value!r} is not allowed; allowed: {', '.join(allowed)}"
            )
    if not is_real(threshold):
        raise ValueError(f"{where}: threshold={threshold!r} must be a real number")
    lo = -1.0 if metric == "cosine" else -math.inf
    if not (math.isfinite(threshold) and lo <= threshold <= 1.0):
        allowed = "[-1, 1] for metric='cosine'" if metric == "cosine" else "a finite number <= 1"
        raise ValueError(f"{where}: threshold={threshold!r} is not allowed; allowed: {allowed}")
    if not is_real(radius) or math.isnan(radius) or radius < 0:
        raise ValueError(f"{where}: radius={radius!r} must be a number >= 0 (inf: all columns)")
    if not is_int(baseline_seed) or baseline_seed < 0:
        raise ValueError(f"{where}: baseline_seed={baseline_seed!r} must be an integer >= 0")
