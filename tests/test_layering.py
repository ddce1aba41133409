"""The layers of docs/architecture.md hold, read from the source (every import, also those inside
functions): ``server/`` is the faces, what happens when (flows), the domain services, the Gmail
adapter and the base, and each layer imports only those below it; no import circle; the rule engine
imports nothing of ``server``."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The layers of ``server``, top first; a module may import its own layer and those after it.
LAYERS = ("server.faces", "server.flows", "server.services", "server.gmail", "server.base")
#: The one way the Gmail adapter reaches up (DESIGN: sync files mail through the ticket actions,
#: which write each change's audit Event); it still never reaches the flows or the faces.
ADAPTER_USES = ("server.services.tickets",)
#: Modules still longer than the ~400 lines of one concept, each with its size today: none may grow
#: and no other may join them (splitting these is work left, named in docs/architecture.md).
LONG_MODULES = {
    "server.base.models": 810,
    "server.gmail.sandbox.store": 790,
    "server.services.action_kinds": 660,
    "server.gmail.sync": 660,
    "server.services.tickets.actions": 620,
    "server.services.figures.metrics": 610,
    "server.gmail.mime": 560,
    "server.flows.reminders": 530,
    "server.gmail.client": 483,
    "server.gmail.sandbox.api": 510,
    "server.faces.reports.views": 460,
    "server.services.accounts": 440,
    "server.services.labels": 420,
    "server.services.sla": 410,
}
ONE_CONCEPT_LINES = 400


def layer_of(module: str) -> int | None:
    return next(
        (n for n, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")), None
    )


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


@cache
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
    assert "server.services.tickets" in edges["server.gmail.sync"]  # `from server import tickets`
    assert "server.services.automation" in edges["server.flows.sync_runner"]


def test_no_import_circle_in_server_or_rules() -> None:
    edges = graph()
    # The app factory wires every blueprint and command: the package itself is the top, not a layer.
    edges = {name: {t for t in targets if t != "server"} for name, targets in edges.items()}
    assert cycles(edges) == []


def test_every_module_of_server_is_in_a_layer() -> None:
    assert [m for m in modules() if m.startswith("server.") and layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("server.")))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    """Faces → flows → services → the Gmail adapter → the base: nothing below the faces imports a
    face, no service imports a flow, the base imports nothing of the layers above it."""
    own = layer_of(module)
    assert own is not None
    upward = {
        target for target in graph()[module] if target.startswith("server.") and (layer_of(target) or 0) < own
    }
    if module.startswith("server.gmail"):
        upward = {t for t in upward if not t.startswith(ADAPTER_USES)}
    assert upward == set(), f"{module} ({LAYERS[own]}) imports from a layer above it: {sorted(upward)}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("server.gmail")))
def test_the_gmail_adapter_never_reaches_what_orchestrates_it(module: str) -> None:
    edges = graph()
    reached: set[str] = set()
    todo = [module]
    while todo:  # what it imports, and what those import in turn
        for target in edges[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert not {m for m in reached if m.startswith(("server.flows", "server.faces"))}


def test_one_name_per_concept_below_the_faces() -> None:
    """Below the faces a module's name is its concept, so two modules never share one (there were
    ``server/actions.py`` and ``server/tickets/actions.py``). Faces mirror each other on purpose:
    the CLI's ``agents`` and the settings page's ``agents`` are two faces of one service."""
    names: dict[str, list[str]] = {}
    for module in modules():
        if module.startswith("server.") and not module.startswith(("server.faces", "server.gmail.sandbox")):
            names.setdefault(module.rsplit(".", 1)[-1], []).append(module)
    assert {name: found for name, found in names.items() if len(found) > 1} == {}


def test_no_module_is_longer_than_one_concept() -> None:
    found = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    longer = {n: lines for n, lines in found.items() if lines > ONE_CONCEPT_LINES and n not in LONG_MODULES}
    grown = {n: (found[n], limit) for n, limit in LONG_MODULES.items() if found.get(n, 0) > limit}
    assert longer == {} and grown == {}


def test_the_rule_engine_imports_nothing_of_server() -> None:
    edges = graph()
    assert not {
        t
        for name, targets in edges.items()
        if name.startswith("rules")
        for t in targets
        if t.startswith("server")
    }
