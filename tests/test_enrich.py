"""Foreign LLM spans (the SDK's own, another instrumentation's) are enriched, never duplicated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_migration
from otel_migration._llm.enrich import LLMSpanEnricher
from otel_migration._llm.pricing import PriceTable


@pytest.fixture
def pipeline(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(LLMSpanEnricher(SimpleSpanProcessor(exporter)))
    otel_migration.configure(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
    )
    yield provider, exporter
    otel_migration.shutdown()


def test_foreign_llm_span_gets_version_phase_cost_and_tier(
    pipeline: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = pipeline
    tracer = provider.get_tracer("anthropic")  # another library's tracer on the same provider
    llm_attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-3-5-haiku-latest"}
    with (
        otel_migration.versioned("2.0", operation="summarize"),
        otel_migration.phase("synthesis"),
        tracer.start_as_current_span("chat claude-3-5-haiku", attributes=llm_attributes) as span,
    ):
        span.set_attributes(
            {
                "gen_ai.response.model": "claude-3-5-haiku-20241022",
                "gen_ai.usage.input_tokens": 10_000,
                "gen_ai.usage.output_tokens": 1_000,
            }
        )
    (llm,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    price = PriceTable.load().lookup("claude-3-5-haiku")
    assert price is not None
    assert llm.attributes["migration.llm.cost"] == pytest.approx(
        price.cost(input_tokens=10_000, output_tokens=1_000)
    )
    assert llm.attributes["migration.llm.tier"] == "haiku"
    assert llm.attributes["migration.version"] == "2.0" and llm.attributes["migration.phase"] == "synthesis"
    assert (
        len([s for s in exporter.get_finished_spans() if "gen_ai.request.model" in (s.attributes or {})]) == 1
    )


def test_other_spans_pass_through_untouched(pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = pipeline
    with (
        otel_migration.versioned("1.0", operation="load"),
        provider.get_tracer("db").start_as_current_span("SELECT"),
    ):
        pass
    select = next(s for s in exporter.get_finished_spans() if s.name == "SELECT")
    assert "migration.version" not in (select.attributes or {})
    assert "migration.llm.cost" not in (select.attributes or {})
