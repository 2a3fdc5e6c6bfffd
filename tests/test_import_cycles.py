"""No import cycles between the modules of ``cds_service``, function-local imports included.

A cycle hidden by a function-local import still ties the two modules
together: neither can be read, tested or moved without the other, and the
import order decides whether start-up works.  This walks every module's AST
(every ``import``, wherever it is, except under ``if TYPE_CHECKING:``),
resolves relative imports, and fails with each cycle's modules and the lines
that make it.

Edges follow what Python executes: ``from .a import b`` is an edge to the
module ``a.b`` if that is a module, else to ``a`` (``b`` is a name in it).
Edges to parent packages are not added, so a package ``__init__`` re-exporting
its submodules is not a cycle with them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "cds_service"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, dict[str, list[int]]]:
    """module -> {imported module -> [line numbers]} for modules inside the package."""
    modules = _modules()
    graph: dict[str, dict[str, list[int]]] = {m: {} for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".")
                    if not is_package:
                        base = base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    sub = f"{prefix}.{alias.name}"
                    targets.append(sub if sub in modules else prefix)
            for target in targets:
                # "import a.b.c" of a non-module name: the longest prefix that is a module
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, []).append(node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(graph, component: list[str]) -> str:
    members = set(component)
    edges = [f"  {a} -> {b} (line {', '.join(map(str, lines))})"
             for a in component for b, lines in sorted(graph[a].items()) if b in members]
    return " <-> ".join(component) + "\n" + "\n".join(edges)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_walker_sees_relative_and_function_local_imports(graph):
    assert "cds_service.protocol.discovery" in graph["cds_service.protocol.hooks"]  # from .discovery import
    assert "cds_service.core.knowledge" in graph["cds_service.app"]  # function-local in create_app


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": [1]}, "b": {"c": [2]}, "c": {"a": [3]}, "d": {"a": [4]}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(graph, c) for c in found)
