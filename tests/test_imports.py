"""The import graph of glomsim and analysis: no cycles (function-level imports included),
and the simulation core never imports analysis except where it measures or presents.

The graph is read from the source (AST), not by importing: every ``import``/``from``
statement anywhere in a module counts, relative ones resolved, except those under
``if TYPE_CHECKING:``, which never run. An edge goes to the module named; importing
``a.b`` also runs ``a/__init__``, but that is the package's own loading, not a
dependency of the importer, so it is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("glomsim", "analysis")
#: The only modules of glomsim that may import analysis: the sweep's per-run measuring
#: and the CLI, which present measurements.
MAY_IMPORT_ANALYSIS = ("glomsim.sweep.runs", "glomsim.cli")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        stack.extend(children)


def _targets(module: str, is_package: bool, node, known) -> set[str]:
    """Modules of ``known`` that one import statement loads by name."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module
        # ``from pkg import name``: name is a submodule, or an attribute of pkg
        names = [
            f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
            for alias in node.names
        ]
    return {n for n in names if n in known}


def import_graph() -> dict[str, set[str]]:
    """{module: modules it imports}, over glomsim and analysis."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in _import_nodes(tree):
            edges |= _targets(name, is_package, node, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a
    cycle path through it, sorted."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_cycle_path(graph, comp) for comp in comps)


def _cycle_path(graph, comp) -> list[str]:
    """One cycle through the first module of a strongly connected component."""
    members = set(comp)
    start = comp[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return comp


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    # analysis.islands imports the registry at the top; stability's set-up imports
    # glomsim inside a function, relative ``from ._common import`` resolves too
    assert "glomsim.variables" in graph["analysis.islands"]
    assert "glomsim" in graph["analysis._linearisation"]
    assert "analysis._common" in graph["analysis.islands"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _analysis_importers(graph, allowed):
    return sorted(
        m
        for m, edges in graph.items()
        if m.split(".")[0] == "glomsim"
        and not _within(m, allowed)
        and any(e.split(".")[0] == "analysis" for e in edges)
    )


def test_the_core_imports_analysis_only_to_measure():
    bad = _analysis_importers(import_graph(), MAY_IMPORT_ANALYSIS)
    assert not bad, f"modules of glomsim that import analysis: {bad}"
