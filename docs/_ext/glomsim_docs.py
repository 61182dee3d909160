"""Sphinx helpers for the glomsim docs.

The page-level ones work on a page's source text as it is read (``source-read``), so
nothing is written into the source tree and a build never leaves generated files behind:

- ``% glomsim-docs: toctree`` becomes the site's toctrees: ``glomsim_toctree`` in conf.py
  gives captions and page patterns in order; only pages that exist are listed (pages still
  being written never break ``-W``), and any other page lands in a last "More" toctree.
- ``% glomsim-docs: studies`` becomes one MyST ``{include}`` per existing
  ``studies/*/README.md``, in name order (each study's ``#`` title becomes a section), and
  the links and images in those READMEs are resolved from the study's own folder.
- ``.. glomsim-docs: optional-api`` (in reST: autodoc output is reST, which MyST pages would
  read as Markdown) becomes an ``automodule`` section for each module of
  ``OPTIONAL_MODULES`` that imports, so a module still being written never breaks ``-W``.

The markers are comments (``%`` in MyST, ``..`` in reST), so without this extension they
vanish. Docstrings get one fix: a bare ``|x - y|`` in prose is escaped, as reST would read
it as a substitution reference (see :func:`escape_bars`).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

STUDIES_MARKER = "% glomsim-docs: studies"
API_MARKER = ".. glomsim-docs: optional-api"
TOCTREE_MARKER = "% glomsim-docs: toctree"

#: (module, section title, one-line summary) documented only when the module imports.
OPTIONAL_MODULES = (
    ("glomsim.sweep", "Parameter sweeps", "Sweeps on Dask with results in one Zarr store."),
    ("glomsim.train", "Learned weights", "Training the bottom-up and top-down nets."),
)


def study_readmes(root: Path) -> list[Path]:
    """The README.md of each study folder under ``root/studies``, sorted by folder name."""
    return sorted((root / "studies").glob("*/README.md"), key=lambda p: p.parent.name)


def _studies_text(app, docname: str) -> str:
    doc_dir = (Path(app.srcdir) / docname).parent
    readmes = study_readmes(Path(app.config.glomsim_repo_root))
    if not readmes:
        return "No study has been written yet.\n"
    blocks = []
    for readme in readmes:
        rel = Path(_relpath(readme, doc_dir)).as_posix()
        # heading-offset 1: a study's "# Title" becomes a section of this page;
        # relative-images: figure paths are written relative to the study's folder
        blocks.append(
            f"({_label(readme)})=\n"
            f"```{{include}} {rel}\n"
            ":heading-offset: 1\n"
            ":relative-images:\n"
            "```\n"
        )
    return "\n".join(blocks)


def _label(readme: Path) -> str:
    return "study-" + readme.parent.name.replace("_", "-").lower()


def _relpath(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def _fix_study_links(app, doctree):
    """Resolve links written in a study's README relative to the study's folder.

    MyST resolves links in included text relative to the including page (docs/), so a
    README's ``[run.py](run.py)`` or ``[maths](../../docs/maths.md)`` would be missing
    targets. Here, before Sphinx collects downloads: a link to another study's README goes
    to that study's section, one to a page of the docs to that page, and one to any other
    file in the repository becomes a download of it. Links to nothing stay broken, so the
    ``-W`` build still reports them.
    """
    readmes = {p.resolve(): _label(p) for p in study_readmes(Path(app.config.glomsim_repo_root))}
    if not readmes:
        return
    docname = app.env.docname
    doc_dir = (Path(app.srcdir) / docname).parent
    for node in doctree.findall(nodes.image):
        # Markdown images are already relative to the page (:relative-images:); HTML <img>
        # tags are not
        uri = node.get("uri", "")
        if not node.source or Path(node.source).resolve() not in readmes or "://" in uri:
            continue
        here = Path(node.source).resolve().parent / uri
        if not (doc_dir / uri).is_file() and here.is_file():
            node["uri"] = Path(_relpath(here, doc_dir)).as_posix()
    for node in list(doctree.findall(addnodes.pending_xref)):
        if node.get("reftype") != "myst" or node.get("refdomain") or not node.source:
            continue
        source = Path(node.source).resolve()
        if source not in readmes:
            continue
        path, _, anchor = node["reftarget"].partition("#")
        if not path or "://" in path:
            continue
        target = (source.parent / path).resolve()
        if target in readmes:
            new = addnodes.pending_xref(
                "",
                *node.children,
                refdomain="std",
                reftype="ref",
                reftarget=readmes[target],
                refexplicit=True,
                refwarn=True,
                refdoc=docname,
            )
        elif target.is_file() and app.env.path2doc(str(target)):
            node["refdomain"] = "doc"
            node["reftarget"] = app.env.path2doc(str(target))
            node["reftargetid"] = anchor or None
            continue
        elif target.is_file():
            new = addnodes.download_reference(
                "",
                "",  # a TextElement: the second argument is its text
                *node.children,
                refdomain=None,
                reftype="myst",
                reftarget=_relpath(target, doc_dir),
                refexplicit=True,
                refdoc=docname,
            )
            new["classes"] = ["xref", "download", "myst"]
        else:
            continue
        new.source, new.line = node.source, node.line
        node.replace_self(new)


def _api_text() -> str:
    parts = []
    for module, title, summary in OPTIONAL_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a module still being written: leave it out, say so
            logger.info(f"glomsim-docs: {module} not documented ({type(exc).__name__}: {exc})")
            continue
        heading = f"{title}: ``{module}``"
        parts.append(
            f"{heading}\n{'-' * len(heading)}\n\n{summary}\n\n"
            f".. automodule:: {module}\n   :members:\n"
        )
    return "\n".join(parts)


def _toctree_text(app, docname: str) -> str:
    found = sorted(d for d in app.env.found_docs if d != docname)
    listed: set[str] = set()
    groups = []
    for caption, patterns in app.config.glomsim_toctree:
        pages = []
        for pattern in patterns:
            for page in fnmatch.filter(found, pattern):
                if page not in listed:
                    listed.add(page)
                    pages.append(page)
        groups.append((caption, pages))
    rest = [d for d in found if d not in listed]
    groups.append(("More", rest))
    return "\n".join(
        f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 2\n\n" + "\n".join(pages) + "\n```\n"
        for caption, pages in groups
        if pages
    )


_BAR = re.compile(r"(?<!\\)\|")
_QUOTED = re.compile(r"(``.*?``|`[^`]*`)")


def escape_bars(lines: list[str]) -> list[str]:
    """Escape ``|`` in docstring prose, where reST would read ``|x - y|`` as a substitution.

    Docstrings write norms as ``|x - y|`` in plain text; reST takes ``|...|`` for a
    substitution reference and fails the ``-W`` build. Bars inside inline literals, literal
    blocks (after ``::``, which covers directives such as ``.. math::``), doctest blocks
    (``>>>``), line blocks, tables and backquoted text (literals, roles) are left alone.
    """
    out = []
    block_indent = None  # indentation of the paragraph that opened a literal block
    in_doctest = False
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_indent is not None:
            if stripped and indent <= block_indent:
                block_indent = None
            else:
                out.append(line)
                continue
        if stripped.startswith(">>>"):
            in_doctest = True
        elif not stripped:
            in_doctest = False
        if in_doctest or stripped.startswith(("| ", "+-", "+=")) or "|" not in line:
            out.append(line)
        else:
            # even pieces are prose; odd ones are inline literals and interpreted text
            # (roles such as :math:`|x|`, whose content must stay as written)
            pieces = _QUOTED.split(line)
            out.append(
                "".join(_BAR.sub(r"\\|", p) if i % 2 == 0 else p for i, p in enumerate(pieces))
            )
        if stripped.endswith("::") and not in_doctest:
            block_indent = indent
    return out


def _process_docstring(app, what, name, obj, options, lines):
    escaped = escape_bars(lines)
    if escaped != lines:
        logger.verbose(f"glomsim-docs: escaped '|' in the docstring of {name}")
        lines[:] = escaped


def _source_read(app, docname, source):
    text = source[0]
    if TOCTREE_MARKER in text:
        text = text.replace(TOCTREE_MARKER, _toctree_text(app, docname))
    if STUDIES_MARKER in text:
        text = text.replace(STUDIES_MARKER, _studies_text(app, docname))
    if API_MARKER in text:
        text = text.replace(API_MARKER, _api_text())
    source[0] = text


def _always_reread(app, env, added, changed, removed):
    # the pages depend on files outside docs/ (studies appear, modules start importing),
    # which Sphinx cannot see: read them again on every build, they are cheap
    return [d for d in ("studies", "api", env.config.root_doc) if d in env.found_docs]


def setup(app):
    app.add_config_value(
        "glomsim_repo_root", str(Path(__file__).resolve().parents[2]), "env", types=[str]
    )
    app.add_config_value("glomsim_toctree", [], "env", types=[list, tuple])
    app.connect("source-read", _source_read)
    # after numpydoc (priority 500), on the reST it produced
    app.connect("autodoc-process-docstring", _process_docstring, priority=600)
    app.connect("env-get-outdated", _always_reread)
    # before Sphinx's own collectors (priority 500) gather downloads from the doctree
    app.connect("doctree-read", _fix_study_links, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
