"""Never hurt the host: broken or stuck telemetry leaves user calls correct and on time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, SamplingResult, TraceIdRatioBased

import otel_migration
from otel_migration import versioned

from .conftest import Harness, make_harness


@versioned("2.0", operation="compute")
def compute(x: int) -> int:
    return x * x


class RaisingProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise RuntimeError("processor broke on start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor broke on end")


class EndRaisingProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor broke on end")


class RaisingSampler(Sampler):
    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        raise RuntimeError("sampler broke")

    def get_description(self) -> str:
        return "raising"


class HangingExporter(SpanExporter):
    """Blocks every export until released, like a collector that accepts and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.release.wait()
        return SpanExportResult.SUCCESS


@pytest.fixture
def tmp_cwd(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("processor", [RaisingProcessor(), EndRaisingProcessor()])
def test_raising_span_processor_never_reaches_user_code(
    tmp_cwd: None, processor: SpanProcessor, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness()
    h.tracer_provider.add_span_processor(processor)
    assert [compute(i) for i in range(5)] == [0, 1, 4, 9, 16]
    assert h.value("migration.requests", migration_operation="compute") == 5
    assert caplog.text.count("otel-migration: failed") <= 2  # logged once per place, not per call


def test_raising_sampler_runs_the_call_untraced(tmp_cwd: None) -> None:
    h = make_harness(sampler=RaisingSampler())
    assert compute(3) == 9
    assert h.spans() == []
    assert h.value("migration.requests", migration_operation="compute") == 1  # still counted


def test_hanging_exporter_does_not_block_calls(tmp_cwd: None) -> None:
    exporter = HangingExporter()
    h = make_harness()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=64, schedule_delay_millis=1, max_export_batch_size=8
    )
    h.tracer_provider.add_span_processor(processor)
    try:
        deadline = time.monotonic() + 30
        results = [compute(i) for i in range(2000)]  # far more than the exporter's queue holds
        assert time.monotonic() < deadline  # liveness, not speed: the stuck export never blocked a call
        assert exporter.calls >= 1 and not exporter.release.is_set()
        assert results == [i * i for i in range(2000)]
        assert h.value("migration.requests", migration_operation="compute") == 2000
    finally:
        exporter.release.set()
        processor.shutdown()


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise OSError("disk full")


def test_raising_exporter_does_not_reach_user_code(tmp_cwd: None) -> None:
    h = make_harness()
    processor = BatchSpanProcessor(RaisingExporter(), schedule_delay_millis=1)
    h.tracer_provider.add_span_processor(processor)
    try:
        assert [compute(i) for i in range(50)] == [i * i for i in range(50)]
        processor.force_flush()
        assert h.value("migration.requests", migration_operation="compute") == 50
    finally:
        processor.shutdown()


def test_counts_are_exact_at_one_percent_trace_sampling(tmp_cwd: None) -> None:
    h = make_harness(sampler=ParentBased(TraceIdRatioBased(0.01)))

    @versioned("1.0", operation="lookup")
    def lookup(i: int) -> int:
        if i % 10 == 0:
            raise KeyError(i)
        return i

    for i in range(5000):
        with contextlib.suppress(KeyError):
            lookup(i)
    sampled = len(h.spans("lookup"))
    assert 10 <= sampled <= 150  # ~50 sampled spans...
    assert h.value("migration.requests", migration_outcome="ok") == 4500  # ...but every call counted
    assert h.value("migration.requests", migration_outcome="error") == 500
    assert h.value("migration.errors", error_type="KeyError") == 500
    assert h.value("migration.duration", migration_operation="lookup") == 5000


def test_counts_are_exact_under_many_threads(harness: Harness) -> None:
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for i in range(500):
            compute(i)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert harness.value("migration.requests", migration_operation="compute") == 4000
    assert harness.value("migration.duration", migration_operation="compute") == 4000


def test_full_queue_is_counted_and_reported_not_silent(
    tmp_cwd: None, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(max_queue_size=10)
    recorder = h.telemetry.recorder
    with recorder_paused(recorder):
        for i in range(25):
            compute(i)
    assert recorder.dropped == 15
    (point,) = h.points("migration.telemetry.dropped")
    assert point.value == 15
    assert h.value("migration.requests", migration_operation="compute") == 10
    assert caplog.text.count("call queue full") == 1


class recorder_paused:
    """Hold the aggregator's drain from another thread, as a drain that takes long does: the queue
    fills (callers find the drain busy, so they cannot help) and what does not fit is dropped."""

    def __init__(self, recorder: otel_migration.Telemetry | object) -> None:
        self.recorder = recorder
        self._held = threading.Event()
        self._release = threading.Event()
        self._holder = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        lock = self.recorder._drain_lock  # type: ignore[attr-defined]
        with lock:
            self.recorder._drain_owner = threading.get_ident()  # type: ignore[attr-defined]
            self._held.set()
            self._release.wait(30)
            self.recorder._drain_owner = None  # type: ignore[attr-defined]

    def __enter__(self) -> None:
        self._holder.start()
        self._held.wait(30)

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._holder.join(30)


def test_failing_listener_is_isolated(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    class Broken:
        def on_call(self, record: object) -> None:
            raise ValueError("listener bug")

    class Good:
        def on_call(self, record: object) -> None:
            seen.append(record)

    harness.telemetry.recorder.add_listener(Broken())
    harness.telemetry.recorder.add_listener(Good())
    assert compute(2) == 4
    harness.telemetry.recorder.drain()
    assert len(seen) == 1
    assert "listener" in caplog.text
