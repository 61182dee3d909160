"""``glomsim train``: learn the nets from synthetic scenes and save the weights (.npz).

Bad input raises ValueError naming the option; :func:`glomsim.cli.main` prints it on one
line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

from .._validate import check_choice, check_int, check_real, not_allowed
from ..train import TARGETS


def register(subparsers):
    """Add the ``train`` subcommand to an argparse ``subparsers`` object.

    ``glomsim train [CONFIG] -o WEIGHTS.npz [--scenes N] [--epochs E] [--seed S]
    [--progress]`` makes ``N`` synthetic scenes for the config, trains, and saves the
    weights with their settings in the file's metadata.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="glomsim")
    >>> p = register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["train", "-o", "w.npz", "--epochs", "3"])
    >>> args.epochs, args.func is cmd_train
    (3, True)
    """
    p = subparsers.add_parser(
        "train",
        help="learn the nets from synthetic scenes and save the weights (.npz)",
        description="Learn bottom-up and top-down nets from synthetic scenes (no torch).",
    )
    p.add_argument("config", nargs="?", help="config .toml/.json (default: the built-in run)")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.npz)")
    p.add_argument("--scenes", type=int, default=16, help="training scenes (default 16)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the scenes (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of scenes, weights and noise")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam step size (default 3e-3)")
    p.add_argument("--batch-size", type=int, default=4, help="scenes per step (default 4)")
    p.add_argument("--noise", type=float, default=0.1, help="input corruption (default 0.1)")
    p.add_argument("--island-weight", type=float, default=1.0)
    p.add_argument("--contrastive-weight", type=float, default=3.0)
    p.add_argument("--targets", default="bottom_up", help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    # the library's checks raise ValueError naming the field: a usage error, exit code 2
    p.set_defaults(func=cmd_train, usage_errors=(ValueError,))
    return p


def _settings(args) -> dict:
    """The options as :func:`glomsim.train.train` settings, each checked under its
    option's name."""
    return {
        "epochs": check_int("--epochs", args.epochs, lo=1),
        "seed": check_int("--seed", args.seed, lo=0),
        "lr": check_real("--lr", args.lr, lo=0, lo_open=True),
        "batch_size": check_int("--batch-size", args.batch_size, lo=1),
        "noise": check_real("--noise", args.noise, lo=0),
        "island_weight": check_real("--island-weight", args.island_weight, lo=0),
        "contrastive_weight": check_real("--contrastive-weight", args.contrastive_weight, lo=0),
        "targets": check_choice("--targets", args.targets, TARGETS),
    }


def _config(path):
    from ..config import GlomConfig
    from ..defaults import default_config

    if path is None:
        return default_config()
    try:
        cfg = GlomConfig.from_file(path)
    except Exception as exc:  # bad TOML, unknown field, missing file: one message
        raise ValueError(f"config {path!r}: {exc}") from exc
    if cfg.grid is None:
        raise ValueError(f"config {path!r} uses positions=; training scenes need a grid config")
    return cfg


def cmd_train(args) -> int:
    """Run ``glomsim train``: returns 0; bad input raises ValueError naming the option."""
    from ..train import make_training_scenes, train

    out = Path(args.output)
    if out.suffix != ".npz":
        raise not_allowed("--output", str(out), "a path ending in .npz")
    n = check_int("--scenes", args.scenes, lo=1)
    settings = _settings(args)
    cfg = _config(args.config)
    scenes = make_training_scenes(cfg, n, settings["seed"])
    weights, history = train(cfg, scenes, progress=bool(args.progress), **settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = weights.save(out)
    first, last = float(history.total[0]), float(history.total[-1])
    epochs = settings["epochs"]
    print(f"wrote {path} ({n} scenes, {epochs} epochs; loss {first:.4g} -> {last:.4g})")
    return 0
