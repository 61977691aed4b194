"""The plain-call path (a synchronous versioned call, written out in one frame) and the general path
produce the same spans, records and metrics; the plain path hands every rare case to the general one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import otel_migration
from otel_migration._calls import wrappers
from otel_migration._core import semconv
from otel_migration._core.batch import CallBatch
from otel_migration._core.lifecycle import reentry

from .conftest import Harness, make_harness


class Cancelled(BaseException):
    """Not an Exception: the outcome is "cancelled", like asyncio.CancelledError or KeyboardInterrupt."""


def _general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Functions decorated from now on take the general path on every call."""
    monkeypatch.setattr(wrappers, "_plain_call_wrapper", lambda spec, general: general)


def _scenario(h: Harness) -> list[Any]:
    """Every kind of outcome, a subject, and nesting; what the spans and the recorder saw, comparable."""

    @otel_migration.versioned("2.0", operation="inner", migration="paths")
    def inner(x: int) -> int:
        return x + 1

    @otel_migration.versioned("2.0", operation="outer", migration="paths")
    def outer(x: int) -> int:
        if x == 1:
            raise ValueError("bad input")
        if x == 2:
            raise Cancelled()
        return inner(x)

    recorder = h.telemetry.recorder
    seen: list[Any] = []
    with recorder._drain_lock:  # keep what is queued to read it
        for x in (0, 1, 2, 3):
            try:
                with otel_migration.subject("user-7", session="session-1") if x == 3 else nullcontext():
                    outer(x)
            except (ValueError, Cancelled):
                pass
        queued = list(recorder._queue)
    for record in CallBatch(queued).records:
        seen.append(
            (
                record.scope,
                record.outcome,
                record.error_type,
                record.error_category,
                record.cpu_time_s is None,
            )
        )
    spans = h.spans()
    by_id = {s.context.span_id: s.name for s in spans}
    for span in spans:
        seen.append(
            (
                span.name,
                dict(span.attributes or {}),
                span.status.status_code,
                span.status.description,
                [e.name for e in span.events],
                by_id.get(span.parent.span_id) if span.parent else None,
            )
        )
    seen.append(h.value("migration.requests", migration_name="paths", migration_outcome="ok"))
    seen.append(h.value("migration.requests", migration_name="paths", migration_outcome="error"))
    seen.append(h.value("migration.requests", migration_name="paths", migration_outcome="cancelled"))
    seen.append(h.value("migration.errors", migration_name="paths", error_type="ValueError"))
    seen.append(h.value(semconv.METRIC_CALLS_IN_FLIGHT, migration_name="paths"))
    return seen


@pytest.fixture
def fresh(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Harness]]:
    monkeypatch.chdir(tmp_path)
    made: list[Harness] = []

    def make(**settings: Any) -> Harness:
        h = make_harness(**settings)
        made.append(h)
        return h

    yield make
    otel_migration.shutdown()
    for h in made:
        h.tracer_provider.shutdown()
        h.meter_provider.shutdown()


@pytest.mark.parametrize("measure_cpu", [True, False])
def test_the_plain_path_and_the_general_path_emit_the_same(
    fresh: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch, measure_cpu: bool
) -> None:
    plain = _scenario(fresh(measure_cpu=measure_cpu))
    otel_migration.shutdown()
    with monkeypatch.context() as patch:
        _general_only(patch)
        general = _scenario(fresh(measure_cpu=measure_cpu))
    assert plain == general
    # And what they emitted is right, not only alike.
    assert plain[-5:] == [4.0, 1.0, 1.0, 1.0, 0.0]  # ok: outer and inner for 0 and 3; in flight: none
    error_span = next(
        s for s in plain if isinstance(s, tuple) and s[0] == "outer" and s[2] == StatusCode.ERROR
    )
    assert error_span[1]["error.type"] == "ValueError" and error_span[4] == ["exception"]
    inner_spans = [s for s in plain if isinstance(s, tuple) and s[0] == "inner"]
    assert inner_spans and all(s[5] == "outer" for s in inner_spans)
    subjects = {r[0].subject for r in plain if isinstance(r, tuple) and hasattr(r[0], "subject")}
    assert len(subjects - {None}) == 1  # the pseudonym, not the raw id
    assert "user-7" not in subjects


def test_later_calls_skip_the_general_start(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[object] = []
    start_call = wrappers.start_call
    monkeypatch.setattr(wrappers, "start_call", lambda *a: starts.append(a) or start_call(*a))
    work = otel_migration.versioned("2.0", operation="hot")(lambda x: x * 2)
    assert [work(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert len(starts) == 1  # the first call binds the spec; the other nine take the plain path
    assert len(harness.spans("hot")) == 10
    assert harness.value("migration.requests", migration_operation="hot") == 10


def test_a_call_that_raises_on_the_plain_path_is_counted_and_leaves_no_call_in_flight(
    harness: Harness,
) -> None:
    @otel_migration.versioned("2.0", operation="fails")
    def fails(x: int) -> int:
        if x:
            raise KeyError(x)
        return x

    fails(0)  # binds
    for i in range(1, 6):
        with pytest.raises(KeyError):
            fails(i)
    assert harness.value("migration.requests", migration_operation="fails", migration_outcome="error") == 5
    assert harness.value("migration.errors", migration_operation="fails", error_type="KeyError") == 5
    assert harness.value(semconv.METRIC_CALLS_IN_FLIGHT, migration_operation="fails") == 0
    assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored every time


def test_a_call_from_inside_our_own_work_runs_untraced(harness: Harness) -> None:
    work = otel_migration.versioned("2.0", operation="reentered")(lambda x: x + 1)
    work(0)  # binds
    assert reentry.enter()  # this thread is now inside our own work (an exporter, a sampler)
    try:
        assert work(1) == 2
    finally:
        reentry.exit()
    assert len(harness.spans("reentered")) == 1
    assert harness.value("migration.requests", migration_operation="reentered") == 1
