"""Imports point one way: the package's import graph, read from the source with ``ast``, has no cycle.

Every ``import`` counts, the ones inside functions too: an import moved into a function to dodge a
cycle hides the cycle without removing it. The graph is the one import-linter draws: an edge from a
module to each tinyevo module it names (``from a.b import c`` names ``a.b.c`` when that is a module,
else ``a.b``); importing a submodule does not count as importing its package's ``__init__``.
Third-party imports are not edges. The oracle is networkx's strongly connected components.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "tinyevo"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(tree: ast.AST, current: str, is_package: bool, known: set[str]) -> set[str]:
    """The tinyevo modules one module's source names, wherever the import statement is."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node, current, is_package)
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in known else source)
    return {name for name in found if name in known and name != current}


def import_graph() -> nx.DiGraph:
    known = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in imported(tree, name, path.name == "__init__.py", set(known)):
            graph.add_edge(name, target)
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one module."""
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            sub = graph.subgraph(component)
            start = min(component)
            back = min((nx.shortest_path(sub, target, start) for target in sub.successors(start)),
                       key=len)
            found.append([start] + back)
    return sorted(found)


def test_the_graph_sees_function_level_imports():
    tree = ast.parse("def f():\n    from tinyevo.arch import ops\n    import tinyevo.errors\n")
    known = {"tinyevo.arch", "tinyevo.arch.ops", "tinyevo.errors", "tinyevo.x"}
    assert imported(tree, "tinyevo.x", False, known) == {"tinyevo.arch.ops", "tinyevo.errors"}


def test_relative_imports_resolve_against_the_module():
    tree = ast.parse("from . import ops\nfrom ..errors import TinyevoError\n")
    known = {"tinyevo.arch.ops", "tinyevo.arch.graph", "tinyevo.errors"}
    assert imported(tree, "tinyevo.arch.graph", False, known) == {"tinyevo.arch.ops", "tinyevo.errors"}


def test_a_cycle_is_found_and_named():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (break each; do not hide it in a function):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found)
