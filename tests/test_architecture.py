"""The shape of the code: imports point one way, the API and the review UI stand apart.

Read from the source with `ast`, not by importing it: every `import` and `from ... import`, at the
top of a module or inside a function, is an edge of the graph. A function-level import still ties
two modules together; it only hides the tie from a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("broker", "audit", "keys", "schemas")
LIBRARIES = ("audit", "keys", "schemas")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "versions" in parts:  # Alembic revisions import nothing of ours but the models
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """The first-party modules `module` imports (a name imported from a package counts as its module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            if submodules:
                yield from submodules
            elif base in MODULES:
                yield base


GRAPH = {m: {t for t in _imported(m, p) if t != m} for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    """The graph sees what it checks: a known top-level and a known function-level import."""
    assert "broker.auditing.step" in GRAPH["broker.exchange.recording"]
    assert "broker.breaches.gauges" in GRAPH["broker"]  # imported inside create_app


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_libraries_know_nothing_of_the_broker_or_flask(library: str) -> None:
    """audit/, keys/ and schemas/ are plain libraries: no Flask, no broker, no database session."""
    for module, path in MODULES.items():
        if module.split(".")[0] != library:
            continue
        assert not any(t.startswith("broker") for t in GRAPH[module]), module
        text = path.read_text(encoding="utf-8")
        assert "import flask" not in text and "from flask" not in text, module


def test_the_api_and_the_review_interface_do_not_import_each_other() -> None:
    for module, targets in GRAPH.items():
        if module.startswith("broker.api"):
            assert not [t for t in targets if t.startswith("broker.review")], module
        if module.startswith("broker.review"):
            assert not [t for t in targets if t.startswith("broker.api")], module


def test_only_the_unit_of_work_commits_audit_entries() -> None:
    """`audited_step` owns the audited commit: no view, command or service appends entries itself."""
    for module, path in MODULES.items():
        if module == "broker.auditing.step":
            continue
        text = path.read_text(encoding="utf-8")
        assert "commit_audited" not in text, module
        assert "append_entries(" not in text or module == "broker.auditing.store", module
