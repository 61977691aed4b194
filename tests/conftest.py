"""Fixtures: the real SDK with in-memory exporters, configured per test and always torn down."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

import otel_migration

from .llm_server import LLMServer


@dataclass
class Harness:
    """A configured otel_migration on fresh SDK providers, with readers for what it emitted."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    telemetry: otel_migration.Telemetry

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """Data points of one metric after draining queued calls into it."""
        self.telemetry.recorder.drain()
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for m in scope_metrics.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def value(self, metric: str, **attributes: str) -> float:
        """Sum (or histogram count) over the points whose attributes include ``attributes``."""
        total = 0.0
        for point in self.points(metric):
            attrs = dict(point.attributes)
            if all(attrs.get(k.replace("_", ".")) == v for k, v in attributes.items()):
                total += point.count if hasattr(point, "count") else point.value
        return total


def make_harness(sampler: Sampler | None = None, **settings: Any) -> Harness:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = otel_migration.configure(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **settings
    )
    return Harness(exporter, reader, tracer_provider, meter_provider, telemetry)


@pytest.fixture
def harness(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.chdir(tmp_path)  # no stray config file from the repository
    h = make_harness()
    yield h
    otel_migration.shutdown()
    h.tracer_provider.shutdown()
    h.meter_provider.shutdown()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith(("OTEL_", "OTEL_MIGRATION_")):
            monkeypatch.delenv(name)
    yield
    otel_migration.shutdown()


@pytest.fixture(autouse=True)
def _own_flag_file(_clean_environment: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollouts live in a flag file: every test gets its own, never one in the working directory."""
    monkeypatch.setenv("OTEL_MIGRATION_FLAG_FILE", str(tmp_path / "otel-migration-flags.json"))


# -- LLM calls through the real SDKs ----------------------------------------------------------------
@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """The loopback server answering like the Anthropic and OpenAI APIs, with no proxy in the way."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LLMServer() as running:
        yield running


@pytest.fixture
def instrumented(harness: Harness) -> Iterator[Harness]:
    """The harness with the anthropic and openai SDKs instrumented; budgets reset afterwards."""
    from otel_migration._setup import BUDGETS
    from otel_migration.instrumentation.anthropic import AnthropicInstrumentor
    from otel_migration.instrumentation.openai import OpenAIInstrumentor

    AnthropicInstrumentor().instrument()
    OpenAIInstrumentor().instrument()
    yield harness
    AnthropicInstrumentor().uninstrument()
    OpenAIInstrumentor().uninstrument()
    BUDGETS.configure(())


# -- exit -----------------------------------------------------------------------------------------
# gRPC's C++ core, whose channels the exporters under test leave behind, can abort the interpreter
# at its final teardown ("terminate called without an active exception") after every test passed,
# turning a green run red. Once pytest has reported, leave with its own exit status and skip that
# teardown. Seen once in ~20 full runs; the cause is left open in the session note.
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _exit_status and not hasattr(config, "workerinput"):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        __import__("os")._exit(_exit_status[-1])
