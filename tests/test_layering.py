"""The layers of DESIGN.md hold: dependencies point down, and no module of ``server`` imports itself
back through others. Read from the source (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What the Gmail adapter must never import: the code that orchestrates the domain, and the faces.
ABOVE_THE_ADAPTER = ("server.automation", "server.reminders", "server.addon_api", "server.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in ("server", "rules"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    return {name: imports_of(name, path, names) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_from_package_imports() -> None:
    edges = graph()
    assert "server.tickets" in edges["server.gmail.sync"]  # `from server import tickets`
    assert "server.automation" in edges["server.sync_runner"]


def test_no_import_circle_in_server_or_rules() -> None:
    edges = graph()
    # The app factory wires every blueprint and command: the package itself is the top, not a layer.
    edges = {name: {t for t in targets if t != "server"} for name, targets in edges.items()}
    assert cycles(edges) == []


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("server.gmail")))
def test_the_gmail_adapter_imports_nothing_that_orchestrates_it(module: str) -> None:
    edges = graph()
    reached: set[str] = set()
    todo = [module]
    while todo:  # what it imports, and what those import in turn
        for target in edges[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert not {m for m in reached if m.startswith(ABOVE_THE_ADAPTER)}


def test_the_rule_engine_imports_nothing_of_server() -> None:
    edges = graph()
    assert not {
        t
        for name, targets in edges.items()
        if name.startswith("rules")
        for t in targets
        if t.startswith("server")
    }
