"""The package's layout holds: dependencies point one way and no module imports itself in a circle.

Every import in the package is read from the source, deferred ones (inside functions) and
``TYPE_CHECKING`` ones included, since each is a dependency a reader has to follow. The rules:

- the core (``_core``) imports no other part of the package;
- a feature imports the core and only the features below it in :data:`LAYERS`;
- only the top level (``otel_migration/*.py``) imports everything;
- there is no import cycle between modules, whatever the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otel_migration"

#: Each part may import the parts of lower layers (and its own), never those of higher ones.
LAYERS: dict[str, int] = {
    "_core": 0,
    "_export": 1,
    "_calls": 1,
    "_analytics": 1,
    "_llm": 1,
    "_events": 1,  # events: the core only
    "_rollouts": 2,  # routers run versioned calls
    "instrumentation": 2,  # SDK wrappers start LLM calls
    "_report": 2,  # reads analytics
    "top": 9,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def _imports(path: Path) -> Iterator[str]:
    """Every otel_migration module ``path`` imports, absolute names, wherever the import stands."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("otel_migration"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                # "from . import x" imports the module x; "from .x import y" imports x
                yield (
                    candidate
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                    or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                    else target
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("otel_migration"):
                    yield alias.name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        graph[_module_name(path)] = {target for target in _imports(path) if target != _module_name(path)}
    return graph


def test_the_graph_is_read() -> None:
    graph = _graph()
    # a sanity check, so the rules below cannot pass on an empty or misread graph
    assert "otel_migration._core.runtime" in graph
    assert "otel_migration._core.config" in graph["otel_migration._core.runtime"]
    assert any(target.startswith("otel_migration._core") for target in graph["otel_migration._llm.call"])


def test_every_part_has_a_layer() -> None:
    parts = {_part(module) for module in _graph()}
    assert parts <= set(LAYERS), f"parts without a layer: {parts - set(LAYERS)}"


def test_dependencies_point_one_way() -> None:
    wrong = []
    for module, targets in sorted(_graph().items()):
        source = _part(module)
        for target in sorted(targets):
            destination = _part(target)
            if destination == "top" and target == "otel_migration.version":
                continue  # the version string is a leaf everyone may read
            if destination != source and LAYERS[destination] >= LAYERS[source]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_no_import_cycles() -> None:
    graph = _graph()
    # The package's __init__ re-exports everything: an edge into it from a submodule would be a
    # cycle, and so would any other; parents importing their children are ordinary.
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert _cycle(graph) == expected
