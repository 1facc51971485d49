"""Issue 7 §6: no import cycle among the modules of ``accounts`` (``access``, ``roles`` and
``identity/orgs`` used to import each other). Module-level imports only: an import inside a function,
or under ``TYPE_CHECKING``, runs after both modules are loaded and cannot deadlock the import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_graph() -> dict[str, set[str]]:
    """Module name -> the ``accounts`` modules it imports at module level."""
    files = {}
    for path in (ROOT / "accounts").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        files[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for statement in ast.parse(path.read_text()).body:
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                continue
            if not isinstance(statement, (ast.Import, ast.ImportFrom, ast.If, ast.Try)):
                continue
            for node in ast.walk(statement):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    deps |= {c for c in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if c in files}
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name in files}
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_sees_the_modules_named_in_the_issue():
    graph = module_graph()
    assert {"accounts.access", "accounts.roles", "accounts.identity.orgs"} <= set(graph)
    assert "accounts.access" in graph["accounts.identity.orgs"]  # orgs -> access, never back


def test_no_module_level_import_cycle_in_accounts():
    assert cycles(module_graph()) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
