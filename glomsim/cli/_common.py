"""What the command modules share: the usage error, the built-in config, opening a run.

Kept apart from ``cli/__init__.py`` so that the command modules import it without
importing the package that imports them (no cycle).
"""

from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """A user error: printed on one line, exit code 2."""


def load_config(path):
    """The config at ``path``, or the built-in run when ``path`` is None; a UsageError
    naming the file (or the built-in config) when it cannot be read."""
    import tomllib

    from ..config import GlomConfig
    from ..defaults import default_config

    try:
        if path is None:
            return default_config()
        return GlomConfig.from_file(path)
    except (ValueError, TypeError, FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        where = "built-in config" if path is None else str(path)
        raise UsageError(f"{where}: {exc}") from exc


def open_run(path):
    """The Dataset saved at ``path``, or a UsageError saying why it cannot be opened."""
    from ..dataset import open_dataset

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such dataset")
    try:
        return open_dataset(p)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path}: cannot be opened as a glomsim dataset ({exc})") from exc


def is_single_run(ds) -> bool:
    """``ds`` is one run of ``glomsim run`` (not a sweep store)."""
    return "member" not in ds.dims and "embedding" in ds
