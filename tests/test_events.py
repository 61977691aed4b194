"""otel_migration.event(): OTel events (log records with an event name) in the trace and migration scope,
counted by name, migration and version in ``migration.events``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_migration
from otel_migration import EventName
from otel_migration._core import semconv as sc
from otel_migration._events import emitter


@dataclass
class Setup:
    logs: InMemoryLogRecordExporter
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def counts(self) -> dict[tuple[str, str, str], int]:
        data = self.reader.get_metrics_data()
        found: dict[tuple[str, str, str], int] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == sc.METRIC_EVENTS:
                        for p in metric.data.data_points:
                            a = dict(p.attributes)
                            key = (
                                str(a.get(sc.MIGRATION_EVENT_NAME, "<overflow>")),
                                str(a.get(sc.MIGRATION_NAME, "")),
                                str(a.get(sc.MIGRATION_VERSION, "")),
                            )
                            found[key] = int(p.value)
        return found


@pytest.fixture
def setup(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    logs, spans, reader = InMemoryLogRecordExporter(), InMemorySpanExporter(), InMemoryMetricReader()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    otel_migration.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        migration="payments",
    )
    yield Setup(logs, spans, reader)
    otel_migration.shutdown()
    for provider in (logger_provider, tracer_provider, meter_provider):
        provider.shutdown()


def test_an_event_carries_its_name_attributes_scope_and_trace(setup: Setup) -> None:
    with otel_migration.versioned("2.0", operation="charge"), otel_migration.phase("gateway"):
        otel_migration.event(EventName.RETRY_ATTEMPTED, attempt=2, **{"error.type": "TimeoutError"})
    otel_migration.event("payments.refund.issued", amount_cents=1250)

    retry, refund = [r.log_record for r in setup.logs.get_finished_logs()]
    assert retry.event_name == "migration.retry.attempted"
    assert dict(retry.attributes or {}) == {
        "migration.name": "payments",
        "migration.operation": "charge",
        "migration.version": "2.0",
        "migration.phase": "gateway",
        "attempt": 2,
        "error.type": "TimeoutError",
    }
    phase_span = next(s for s in setup.spans.get_finished_spans() if s.name == "gateway")
    assert retry.trace_id == phase_span.context.trace_id
    assert retry.span_id == phase_span.context.span_id  # the span current when it happened
    assert retry.severity_text == "INFO"
    assert refund.event_name == "payments.refund.issued"
    assert dict(refund.attributes or {}) == {"amount_cents": 1250}  # no scope: no migration attributes
    assert refund.trace_id == 0


def test_failures_are_warnings(setup: Setup) -> None:
    for name in (EventName.RETRY_FAILED, EventName.CIRCUIT_BREAKER_OPENED, EventName.CIRCUIT_BREAKER_CLOSED):
        otel_migration.event(name)
    severities = [r.log_record.severity_text for r in setup.logs.get_finished_logs()]
    assert severities == ["WARN", "WARN", "INFO"]


def test_counted_by_name_migration_and_version(setup: Setup) -> None:
    for _ in range(3):
        with otel_migration.versioned("1.0", operation="charge"):
            otel_migration.event(EventName.CACHE_MISS)
    for _ in range(5):
        with otel_migration.versioned("2.0", operation="charge"):
            otel_migration.event(EventName.CACHE_HIT)
    with otel_migration.versioned("2.0", operation="charge"):
        otel_migration.event(EventName.CACHE_MISS)
    otel_migration.event(EventName.USER_ACTION, action="export")
    assert setup.counts() == {
        ("migration.cache.miss", "payments", "1.0"): 3,
        ("migration.cache.hit", "payments", "2.0"): 5,
        ("migration.cache.miss", "payments", "2.0"): 1,
        ("migration.user.action", "payments", ""): 1,
    }
    assert len(setup.logs.get_finished_logs()) == 10


def test_series_past_the_cap_overflow_into_one(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emitter, "MAX_SERIES", 3)
    for i in range(5):
        otel_migration.event(f"app.custom.e{i}")
    otel_migration.event("app.custom.e0")
    counts = setup.counts()
    assert counts[("app.custom.e0", "payments", "")] == 2
    assert counts[("<overflow>", "", "")] == 2  # e3, e4
    assert len(counts) == 4


def test_bad_names_are_refused_and_nothing_else_raises(setup: Setup) -> None:
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="name must be a non-empty string"):
            otel_migration.event(bad)  # type: ignore[arg-type]
    otel_migration.event("app.odd", value=object())  # type: ignore[arg-type]  # the SDK drops it, we go on
    (record,) = [r.log_record for r in setup.logs.get_finished_logs()]
    assert record.event_name == "app.odd"


def test_without_configuration_it_does_nothing() -> None:
    otel_migration.shutdown()
    otel_migration.event(EventName.FALLBACK, to="1.0")  # no telemetry: silently nothing


def test_every_ready_name_is_in_semconv() -> None:
    names = {
        value for key, value in vars(sc).items() if key.startswith("EVENT_") and key != "EVENT_STATE_SKETCH"
    }
    assert {str(n) for n in EventName} == names
    assert len(names) == 13


def test_a_forked_child_counts_from_zero(setup: Setup) -> None:
    import os

    otel_migration.event(EventName.CACHE_HIT)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own count only
        try:
            otel_migration.event(EventName.CACHE_MISS)
            os.write(write, repr(sorted(setup.counts().items())).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode()
    os.waitpid(pid, 0)
    assert child == repr([(("migration.cache.miss", "payments", ""), 1)])
    assert setup.counts() == {("migration.cache.hit", "payments", ""): 1}


def test_emitting_never_waits_for_the_exporter(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the exporter stuck inside an export, events still return at once (the batch processor's
    queue takes them, and drops past its bound), and they are counted all the same."""
    import threading
    from collections.abc import Sequence

    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )

    entered, release = threading.Event(), threading.Event()

    class Stuck(LogRecordExporter):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            entered.set()
            release.wait(30)
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            release.set()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(Stuck(), max_queue_size=64, max_export_batch_size=8, schedule_delay_millis=1)
    )
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel_migration.configure(
        tracer_provider=TracerProvider(), meter_provider=meter_provider, logger_provider=logger_provider
    )
    try:
        otel_migration.event(EventName.CACHE_MISS)
        assert entered.wait(10)  # the exporter is now stuck in export()
        for _ in range(5000):  # far past the queue's 64: returns, never waits
            otel_migration.event(EventName.CACHE_MISS)
        assert not release.is_set()  # all of it happened while the export was still stuck
        setup = Setup(InMemoryLogRecordExporter(), InMemorySpanExporter(), reader)
        assert setup.counts() == {("migration.cache.miss", "default", ""): 5001}
    finally:
        release.set()
        otel_migration.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()
