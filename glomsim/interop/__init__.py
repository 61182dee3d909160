"""Conversion between glomsim and other GLOM implementations.

Nothing here imports torch at ``import glomsim`` time: the converters import it inside
their bodies, so torch stays an optional dependency.

Examples
--------
>>> from glomsim.interop import from_glom_pytorch, to_glom_pytorch  # doctest: +SKIP
"""

from __future__ import annotations

from .glom_pytorch import from_glom_pytorch, glom_kwargs, to_glom_pytorch

__all__ = ["from_glom_pytorch", "to_glom_pytorch", "glom_kwargs"]
