"""The ``glomsim`` command: argparse and printing only, one module per subcommand.

Each command module (``run``, ``analyze``, ``plot``, ``warmup``, ``info``, ``bench``,
``default_config``, ``demo``, ``train``) exposes ``register(subparsers)``, which adds its
subcommand with a ``func(args)`` that returns the exit code; what a command computes lives
in the library (``glomsim``, ``analysis``). Bad input gets a one-line error naming the
field and exit code 2, before any work.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..defaults import DEFAULT_RUN
from . import analyze, bench, default_config, demo, info, plot, run, train, warmup
from ._common import UsageError
from ._common import load_config as _load_config  # noqa: F401  (the name tests import)

__all__ = ["main", "build_parser", "UsageError", "DEFAULT_RUN"]

#: The subcommands in the order ``glomsim --help`` lists them (``sweep`` comes last).
COMMANDS = (run, analyze, plot, warmup, info, bench, default_config, demo, train)


def build_parser() -> argparse.ArgumentParser:
    """The ``glomsim`` parser with every subcommand.

    Examples
    --------
    >>> args = build_parser().parse_args(["run", "--steps", "5"])
    >>> args.command, args.steps
    ('run', 5)
    """
    p = argparse.ArgumentParser(
        prog="glomsim",
        description="Simulate and analyse GLOM's part-whole consensus dynamics.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)

    from .sweep import register as register_sweep

    register_sweep(sub)
    # a bad sweep spec is a ValueError naming the field: a usage error, exit code 2
    sub.choices["sweep"].set_defaults(usage_errors=(ValueError,))
    return p


def _error_line(command: str, exc: BaseException) -> str:
    """The one line a usage error prints: ``glomsim CMD: error: <first line of exc>``."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"glomsim {command}: error: {msg}"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null after its reader went away (``glomsim run | head -1``),
    so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (tests)
        pass


def main(argv=None) -> int:
    """Run ``glomsim`` with ``argv`` (default: the process's arguments); returns the exit
    code: 2 with a one-line error on bad input (a run too large for this machine's memory
    included); 0, quietly, when the reader of stdout goes away (``| head -1``)."""
    from .._memory import RunMemoryError
    from .._validate import vector_bits_setting

    parser = build_parser()
    args = parser.parse_args(argv)
    usage_errors = (UsageError, RunMemoryError) + tuple(getattr(args, "usage_errors", ()))
    try:
        vector_bits_setting()  # an environment the kernels would refuse, refused first
    except ValueError as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except usage_errors as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return 2
