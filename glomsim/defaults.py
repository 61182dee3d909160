"""The built-in run: the config ``glomsim run`` and ``glomsim train`` use when given none.

A scene with ground truth on a 16x16 grid, 5 levels, and local attention that widens with
level (the paper's suggestion). It lives in the library, not in the CLI, so that every
command and script reads the same one.
"""

from __future__ import annotations

import tomllib

from .config import GlomConfig

__all__ = ["DEFAULT_RUN", "default_config"]

#: The built-in run's config as TOML (``glomsim default-config`` prints it).
DEFAULT_RUN = """\
levels = 5
dim = 32
grid = [16, 16]
steps = 60
top_down_delay = 1
normalize = "l2"
dtype = "float32"
seed = 0

[mix]
bottom_up = 1.0
top_down = 0.5
previous = 1.0
attention = 2.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 1.5

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 2.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 3.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = 4.0

[[attention]]
kernel = "cosine"
beta = 8.0
radius = inf
"""


def default_config() -> GlomConfig:
    """The built-in run (:data:`DEFAULT_RUN`) as a :class:`~glomsim.GlomConfig`.

    Examples
    --------
    >>> cfg = default_config()
    >>> cfg.levels, cfg.grid
    (5, (16, 16))
    """
    return GlomConfig.from_dict(tomllib.loads(DEFAULT_RUN))
