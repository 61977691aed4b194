"""Shadow runs: the caller always gets the control's outcome; the candidate can never hurt it."""

from __future__ import annotations

import uuid

import pytest

import otel_migration
from otel_migration import ExperimentResult, experiment

from .conftest import Harness


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_match_returns_control_and_records_both_sides(harness: Harness) -> None:
    name = unique("price")
    results: list[ExperimentResult[int]] = []
    assert experiment(name, control=lambda: 42, candidate=lambda: 42, on_result=results.append) == 42
    (result,) = results
    assert result.outcome == "match"
    assert result.candidate is not None and result.candidate.wall_s >= 0 and result.control.cpu_s >= 0
    (parent,) = harness.spans(f"experiment {name}")
    assert parent.attributes["migration.experiment.outcome"] == "match"
    sides = harness.spans(name)
    assert sorted(s.attributes["migration.version"] for s in sides) == ["1.0", "2.0"]
    assert all(s.parent is not None and s.parent.span_id == parent.context.span_id for s in sides)
    runs = {
        p.attributes["migration.experiment.outcome"]: p.value
        for p in harness.points("migration.experiment.runs")
        if p.attributes["migration.experiment.name"] == name
    }
    assert runs == {"match": 1}


def test_mismatch_and_ignore_and_custom_compare(harness: Harness) -> None:
    name = unique("round")
    outcomes = []
    record = outcomes.append
    assert (
        experiment(
            name, control=lambda: 1.0, candidate=lambda: 1.0000001, on_result=lambda r: record(r.outcome)
        )
        == 1.0
    )
    experiment(
        name,
        control=lambda: 1.0,
        candidate=lambda: 1.0000001,
        compare=lambda a, b: abs(a - b) < 1e-3,
        on_result=lambda r: record(r.outcome),
    )
    experiment(
        name,
        control=lambda: 1.0,
        candidate=lambda: 2.0,
        ignore=lambda a, b: b == 2 * a,
        on_result=lambda r: record(r.outcome),
    )
    assert outcomes == ["mismatch", "match", "ignored"]


def test_candidate_exception_never_reaches_the_caller(harness: Harness) -> None:
    name = unique("boom")
    results: list[ExperimentResult[str]] = []

    def candidate() -> str:
        raise ZeroDivisionError("candidate bug")

    assert experiment(name, control=lambda: "ok", candidate=candidate, on_result=results.append) == "ok"
    assert results[0].outcome == "candidate_error"
    assert isinstance(results[0].candidate.error, ZeroDivisionError)  # type: ignore[union-attr]


def test_control_exception_is_reraised_unchanged(harness: Harness) -> None:
    error = KeyError("missing")

    def control() -> int:
        raise error

    with pytest.raises(KeyError) as caught:
        experiment(unique("ctl"), control=control, candidate=lambda: 1)
    assert caught.value is error


def test_comparator_failure_is_isolated(harness: Harness) -> None:
    results: list[ExperimentResult[int]] = []

    def broken(a: int, b: int) -> bool:
        raise TypeError("bad comparator")

    assert (
        experiment(
            unique("cmp"), control=lambda: 1, candidate=lambda: 1, compare=broken, on_result=results.append
        )
        == 1
    )
    assert results[0].outcome == "compare_error"


def test_values_are_exported_only_through_clean(harness: Harness) -> None:
    name = unique("pii")
    experiment(
        name, control=lambda: {"email": "a@b.c", "total": 3}, candidate=lambda: {"email": "a@b.c", "total": 4}
    )
    (span,) = harness.spans(f"experiment {name}")
    assert "a@b.c" not in str(span.to_json())
    name = unique("clean")
    experiment(
        name,
        control=lambda: {"email": "a@b.c", "total": 3},
        candidate=lambda: {"email": "a@b.c", "total": 4},
        clean=lambda v: v["total"],
    )
    (span,) = harness.spans(f"experiment {name}")
    assert span.attributes["migration.experiment.control.value"] == "3"
    assert span.attributes["migration.experiment.candidate.value"] == "4"


def test_sampling_percent_and_order_is_random(harness: Harness) -> None:
    name = unique("sampled")
    order: list[str] = []
    results: list[ExperimentResult[str]] = []
    for _ in range(400):
        experiment(
            name,
            control=lambda: order.append("c") or "c",
            candidate=lambda: order.append("t") or "c",
            percent=25,
            on_result=results.append,
        )
    ran = [r for r in results if r.outcome != "skipped"]
    assert 60 <= len(ran) <= 140  # 25 % of 400 = 100, binomial sd ~ 8.7
    firsts = []
    index = 0
    for r in results:
        if r.outcome == "skipped":
            index += 1
        else:
            firsts.append(order[index])
            index += 2
    assert 0.3 < firsts.count("t") / len(firsts) < 0.7  # candidate first about half the time


def test_bad_percent() -> None:
    with pytest.raises(ValueError, match="150"):
        experiment("x", control=lambda: 1, candidate=lambda: 1, percent=150)


def test_experiments_feed_the_migration_verdicts(harness: Harness) -> None:
    import time

    name = unique("shadow")

    def slow() -> int:
        time.sleep(0.002)
        return 1

    for _ in range(40):
        experiment(name, control=lambda: 1, candidate=slow)
    snap = otel_migration.snapshot()
    stats = {s.version: s for s in snap.migrations["default"].latency if s.operation == name}
    assert stats["1.0"].n == stats["2.0"].n == 40
    assert stats["2.0"].p50 > stats["1.0"].p50
