"""``glomsim default-config``: print the built-in run's config (TOML)."""

from __future__ import annotations


def register(subparsers):
    """Add the ``default-config`` subcommand to an argparse ``subparsers`` object."""
    c = subparsers.add_parser("default-config", help="print the built-in run's config (TOML)")
    c.set_defaults(func=cmd_default_config)
    return c


def cmd_default_config(args):
    from ..defaults import DEFAULT_RUN

    print(DEFAULT_RUN, end="")
    return 0
