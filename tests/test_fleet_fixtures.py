"""The shared fixtures of the fleet still say what the Python functions compute.

``tests/fixtures/fleet_statistics.json`` (statistics, sketches, verdicts) and
``tests/fixtures/fleet_health.json`` (health score, anomalies, error trends) are what the collector
component's Go tests check themselves against; these tests recompute every expected output with the
project's own functions, so a change on the Python side that is not carried to the fixtures (and
thus to Go) fails here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from otel_migration._analytics.sketch import HyperLogLog
from tests.fixtures import make_fleet_health
from tests.fixtures.make_fleet_statistics import PATH, build, expand, splitmix64


def _close(actual: Any, expected: Any, path: str, tolerance: dict[str, float]) -> list[str]:
    """Every place where two JSON documents differ beyond the fixture's tolerance."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or actual.keys() != expected.keys():
            keys = sorted(actual) if isinstance(actual, dict) else actual
            return [f"{path}: keys {keys!r} != {sorted(expected)}"]
        return [d for k in expected for d in _close(actual[k], expected[k], f"{path}.{k}", tolerance)]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} != {expected!r}"]
        return [
            d
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for d in _close(a, e, f"{path}[{i}]", tolerance)
        ]
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        ok = math.isclose(actual, expected, rel_tol=tolerance["relative"], abs_tol=tolerance["absolute"])
        return [] if ok else [f"{path}: {actual!r} != {expected!r}"]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def test_the_fixture_matches_the_python_functions() -> None:
    stored = json.loads(PATH.read_text())
    assert stored["mann_whitney"] and stored["verdicts"]["comparisons"], (
        "an empty fixture would prove nothing"
    )
    assert _close(build(), stored, "$", stored["tolerance"]) == []


def test_the_fixture_covers_every_branch() -> None:
    stored = json.loads(PATH.read_text())
    assert {c["method"] for c in stored["mann_whitney"]} == {"exact", "asymptotic"}
    assert any(c["low"] is None for c in stored["hodges_lehmann"]), "no case with an unreachable interval"
    comparisons = stored["verdicts"]["comparisons"]
    assert {c["expected"]["state"] for c in comparisons} == {"better", "worse", "inconclusive"}
    cpu = {c["operation"]: c["expected"]["state"] for c in comparisons if c["metric"] == "cpu"}
    assert cpu == {"checkout": "worse", "search": "inconclusive"}  # 30 % more CPU is worse; 1 % is not
    assert {len(c["observed"]) for c in stored["sample_ratio_mismatch"]} >= {2, 3, 4}


@pytest.mark.parametrize(
    "case", json.loads(PATH.read_text())["hyperloglog"]["sketches"], ids=lambda c: f"n={c['n']}"
)
def test_the_sketch_registers_are_the_python_sketch(case: dict[str, Any]) -> None:
    sketch = HyperLogLog(np.frombuffer(bytes.fromhex(case["registers"]), dtype=np.uint8).copy())
    assert sketch.estimate() == case["estimate"]
    if case["n"] >= 1000:
        assert abs(sketch.estimate() - case["n"]) <= 3 * 1.04 / 64 * case["n"]


def test_expand_and_mixer() -> None:
    assert expand([[1.5, 2], [3.0, 1]]).tolist() == [1.5, 1.5, 3.0]
    # The reference value of splitmix64 from 0 (Vigna's splitmix64.c, first output for seed 0).
    assert splitmix64(0) == 0xE220A8397B1DCDAF


def test_the_health_fixture_matches_the_python_functions() -> None:
    stored = json.loads(make_fleet_health.PATH.read_text())
    assert _close(make_fleet_health.build(), stored, "$", stored["tolerance"]) == []


def test_the_health_fixture_covers_every_branch() -> None:
    stored = json.loads(make_fleet_health.PATH.read_text())
    scores = [c["score"] for c in stored["health_score"]]
    assert min(scores) == pytest.approx(0) and max(scores) == pytest.approx(100) and len(set(scores)) > 10
    judged = [c["expected"] for c in stored["robust_z"]]
    assert None in judged, "no case with too little baseline"
    assert {e["anomalous"] for e in judged if e} == {True, False}
    assert {c["direction"] for c in stored["robust_z"]} == {"both", "up"}
    assert {c["state"] for c in stored["error_trend"]} == {"rising", "falling", "stable"}
    assert any(c["state"] == "rising" and c["slope_per_minute"] == 0 for c in stored["error_trend"])
    versions = {c["name"]: c for c in stored["versions"]}
    flagged = {
        name: sorted(k for k, a in c["anomalies"].items() if a["anomalous"]) for name, c in versions.items()
    }
    assert flagged["request surge"] == ["request_rate"]
    assert flagged["error-rate step"] == ["error_rate"]
    assert flagged["latency step"] == ["latency"]
    assert flagged["steady"] == [] and versions["the judged minute is empty"]["anomalies"] == {}
    assert versions["rising category"]["trends"]["timeout"]["state"] == "rising"
    assert (
        versions["rising category"]["trends"]["resource"]["state"] == "stable"
    )  # only in the current minute
