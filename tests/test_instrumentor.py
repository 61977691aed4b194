"""MigrationInstrumentor: the BaseInstrumentor lifecycle contrib users expect."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

import otel_migration
from otel_migration import MigrationInstrumentor

TARGETS = {"tests.sample_app.legacy:charge": {"version": "1.0", "operation": "charge"}}


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("tests.sample_app.legacy", None)
    module = importlib.import_module("tests.sample_app.legacy")
    yield module
    MigrationInstrumentor().uninstrument()
    sys.modules.pop("tests.sample_app.legacy", None)


def providers() -> tuple[InMemorySpanExporter, TracerProvider, MeterProvider, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return exporter, tracer_provider, MeterProvider(metric_readers=[reader]), reader


def test_instrument_uninstrument_reinstrument(legacy: object) -> None:
    original = legacy.charge  # type: ignore[attr-defined]
    exporter, tracer_provider, meter_provider, _ = providers()
    instrumentor = MigrationInstrumentor()
    assert instrumentor.instrumentation_dependencies() == ()

    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, targets=TARGETS)
    assert legacy.charge(1) == "legacy:1"  # type: ignore[attr-defined]
    assert len(exporter.get_finished_spans()) == 1

    instrumentor.uninstrument()
    assert legacy.charge is original  # type: ignore[attr-defined]
    assert legacy.charge(2) == "legacy:2"  # type: ignore[attr-defined]
    assert len(exporter.get_finished_spans()) == 1  # nothing recorded once uninstrumented

    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, targets=TARGETS)
    legacy.charge(3)  # type: ignore[attr-defined]
    assert len(exporter.get_finished_spans()) == 2
    assert legacy.charge.__wrapped__ is original  # type: ignore[attr-defined]


def test_noop_providers_leave_calls_working(legacy: object) -> None:
    MigrationInstrumentor().instrument(
        tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider(), targets=TARGETS
    )
    assert legacy.charge(4) == "legacy:4"  # type: ignore[attr-defined]
    with otel_migration.versioned("2.0", operation="charge"):
        assert otel_migration.current_scope().version == "2.0"  # type: ignore[union-attr]


def test_non_recording_span_is_still_counted(legacy: object) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    _, _, meter_provider, reader = providers()
    MigrationInstrumentor().instrument(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=meter_provider, targets=TARGETS
    )
    legacy.charge(5)  # type: ignore[attr-defined]
    otel_migration.force_flush()
    names = {
        m.name: m
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    (point,) = names["migration.requests"].data.data_points
    assert point.value == 1
