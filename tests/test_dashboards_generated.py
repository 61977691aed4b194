"""The committed Grafana dashboards are exactly what collector_config/dashboards/generate.py makes.

Also checks what the generator promises: every series name a query reads comes from its one table
(so switching to other series is a one-place edit), and every query is filtered by the dashboard's
variables. tests/e2e/test_dashboards.py runs the queries; `make dashboards-check` type-checks the
JSON against Grafana's published schema.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DASHBOARDS = Path(__file__).resolve().parents[1] / "collector_config" / "dashboards"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_json_is_what_the_generator_makes(generator: ModuleType) -> None:
    committed = {path.name for path in DASHBOARDS.glob("*.json")}
    assert committed == set(generator.DASHBOARDS), "a dashboard file without a generator, or the reverse"
    for name, build in generator.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == generator.render(build), f"{name}: run make dashboards"


def _queries(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            yield f"{panel['title']} {target['refId']}", target["expr"]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["query"]


# A name directly followed by a label matcher, or the first argument of label_values().
_SERIES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{|label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)")


def test_every_series_name_comes_from_the_one_table(generator: ModuleType) -> None:
    names = set(generator.METRICS.values())
    used = set()
    for name in generator.DASHBOARDS:
        for where, expr in _queries(json.loads((DASHBOARDS / name).read_text())):
            found = {a or b for a, b in _SERIES.findall(expr)}
            assert found, f"{name} {where}: no series read in {expr}"
            assert found <= names, f"{name} {where}: {found - names} not in METRICS"
            used |= found
    assert used == names, f"METRICS entries no query reads: {names - used}"


def test_every_panel_query_uses_the_variables() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        model = json.loads(path.read_text())
        declared = {v["name"] for v in model["templating"]["list"]}
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                app = "$service" in expr and "$migration" in expr
                collector = "$collector" in expr and "$service" not in expr
                assert app or collector, f"{path.name} {panel['title']}: {expr}"
                assert {m for m in re.findall(r"\$(\w+)", expr) if not m.startswith("__")} <= declared


def test_panels_fit_the_grid_without_overlapping() -> None:
    """Grafana's grid is 24 columns wide; overlapping or overflowing panels get pushed around on import."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        taken: dict[tuple[int, int], str] = {}
        for panel in json.loads(path.read_text())["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{path.name} {panel['title']}: {grid}"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in taken, f"{path.name}: {panel['title']} overlaps {taken[(x, y)]}"
                    taken[(x, y)] = panel["title"]
