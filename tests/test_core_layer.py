"""The pure core (``cds_service.core``) does no I/O and imports nothing of the shell.

The walk is the same AST walk as the import-cycle test (every import,
function-local ones included); the forbidden list is what would let the core
reach a network, a database or a request context.  A second check imports the
core in a fresh interpreter and looks at what actually got loaded, so an
indirect import through a third-party package is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from test_import_cycles import ROOT, _imports, _modules, import_graph

CORE = "cds_service.core"
FORBIDDEN = ("flask", "werkzeug", "sqlalchemy", "requests", "urllib3", "alembic", "psycopg", "gunicorn",
             "prometheus_client", "socket", "http", "urllib.request", "subprocess", "sqlite3", "logging")


def _third_party_imports(path) -> list[tuple[str, int]]:
    out = []
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif not node.level and node.module:
            out.append((node.module, node.lineno))
    return out


def layer_violations(graph: dict, third_party: dict) -> list[str]:
    """What a core module imports that it may not: a shell module, or a forbidden library."""
    bad = []
    for module in sorted(set(graph) | set(third_party)):
        if not module.startswith(CORE):
            continue
        for target, lines in graph.get(module, {}).items():
            if target.startswith("cds_service") and not target.startswith(CORE) and target != "cds_service.fhir_profiles":
                bad.append(f"{module} imports shell module {target} (line {lines[0]})")
        for name, line in third_party.get(module, ()):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{module} imports {name} (line {line})")
    return bad


def test_the_layer_check_sees_a_violation():
    graph = {"cds_service.core.cards": {"cds_service.metrics": [7]}, "cds_service.app": {}}
    assert layer_violations(graph, {"cds_service.core.x": [("flask", 3)]}) == [
        "cds_service.core.cards imports shell module cds_service.metrics (line 7)",
        "cds_service.core.x imports flask (line 3)"]


def test_the_core_imports_no_shell_module_and_no_io_library():
    modules = _modules()
    third = {m: _third_party_imports(p) for m, p in modules.items() if m.startswith(CORE)}
    assert any(m.startswith(CORE + ".criteria") for m in third), "the core moved: fix CORE"
    assert not layer_violations(import_graph(), third)


@pytest.mark.parametrize("module", ["cds_service", "cds_service.core.advice", "cds_service.core.knowledge"])
def test_importing_the_core_loads_no_web_or_database_library(module):
    code = (f"import sys, {module}\n"
            "print(','.join(sorted(m for m in ('flask', 'werkzeug', 'sqlalchemy', 'requests', 'alembic')"
            " if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT.parent).stdout.strip()
    assert loaded == "", f"importing {module} loaded {loaded}"


def test_the_prefetch_gathering_needs_no_flask():
    """``protocol.prefetch`` runs outside a request (tools, tests): the hooks hand it the request id.

    Same fresh-interpreter look as above, so an indirect import (a log helper that reads
    ``flask.g``) is caught too.
    """
    code = ("import sys, cds_service.protocol.prefetch\n"
            "print(','.join(sorted(m for m in ('flask', 'werkzeug') if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT.parent).stdout.strip()
    assert loaded == "", f"importing cds_service.protocol.prefetch loaded {loaded}"
