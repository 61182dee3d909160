"""Sphinx configuration of the glomsim documentation.

Build (warnings are errors, as in ``tests/test_docs.py``)::

    python -m pip install -r docs/requirements.txt
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages are Markdown (MyST); the API reference comes from the numpydoc docstrings, the CLI
reference from ``glomsim.cli.build_parser()`` (sphinx-argparse), and the studies page
includes every ``studies/*/README.md`` that exists (``_ext/glomsim_docs.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the packages from this checkout, whether or not it is installed; the local extension
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import glomsim  # noqa: E402

project = "glomsim"
author = "the glomsim developers"
copyright = "2026, the glomsim developers"
release = glomsim.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinxarg.ext",
    "glomsim_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "requirements.txt"]
glomsim_repo_root = str(ROOT)

# ----- MyST --------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "html_image"]
# "#section" links and {ref} targets for every heading down to ###
myst_heading_anchors = 3

# ----- API reference -----------------------------------------------------------------------
# autosummary only draws tables (no :toctree:), so no stub pages are generated into docs/
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections already give the types
autodoc_default_options = {"undoc-members": False}
numpydoc_show_class_members = False  # members are listed by autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# ----- HTML --------------------------------------------------------------------------------
html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"glomsim {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# ----- warnings ----------------------------------------------------------------------------
# The build runs with -W (tests/test_docs.py), so every entry here hides a class of warning
# on purpose:
# - myst.header: the studies page includes each studies/*/README.md one heading level down;
#   READMEs are written to read well on their own and may skip a level (# then ###), which
#   MyST reports as "Non-consecutive header level increase" though it renders fine.
suppress_warnings = ["myst.header"]

# ----- the site's toctrees (index.md), in this order; pages that do not exist yet are left
# out and pages not matched here go under "More" (see _ext/glomsim_docs.py) -------------------
glomsim_toctree = [
    (
        "User guide",
        ["user-guide", "update-rule", "maths", "analysis-*", "training", "sweeps", "interop"],
    ),
    ("Studies", ["studies", "gallery"]),
    ("Reference", ["cli", "api", "architecture", "performance"]),
]
