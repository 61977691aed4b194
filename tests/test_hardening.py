"""Issue 10: the host is never hurt and nothing is lost silently, one reproduction per numbered item.

Each test reproduces what the issue found (a leak, an export broken for good, a hang, a flood, a
loss miscounted) against the real SDK, its real encoders and exporters, and loopback servers.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import http.server
import importlib
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler, SamplingResult

import otel_migration
from otel_migration import ConfigError, record_llm_call, versioned
from otel_migration._core import limits
from otel_migration._core.context import current_subject
from otel_migration._core.lifecycle import RateLimitedLog, rate_limited
from otel_migration._export.file import JsonLinesSpanExporter
from otel_migration._export.health import CountingMetricExporter, CountingSpanExporter
from otel_migration._llm.budgets import BudgetExceeded
from otel_migration._setup import BUDGETS

from .conftest import Harness, make_harness
from .otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cardinality caps are per process: start and end each test with none spent."""
    monkeypatch.chdir(tmp_path)
    limits.reset()
    rate_limited.reset()
    yield
    limits.reset()
    rate_limited.reset()


def _metric_points(h: Harness, name: str) -> list[Any]:
    return h.points(name)


class _Opened(SpanProcessor):
    """Counts spans started and ended: a span started and never ended is an open span."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


# -- 2: no leak per versioned/phase object ----------------------------------------------------------
def test_2_a_new_versioned_object_per_block_leaves_nothing_in_the_context(harness: Harness) -> None:
    def blocks(n: int) -> None:
        for _ in range(n):
            with versioned("2.0", operation="charge"), otel_migration.phase("fetch"):
                pass

    blocks(10)
    before = len(contextvars.copy_context())
    blocks(2000)
    # Before the fix every object created a ContextVar the thread's context kept forever.
    assert len(contextvars.copy_context()) == before

    probe = versioned("2.0", operation="charge")
    with probe:
        pass
    ref = weakref.ref(probe)
    del probe
    gc.collect()
    assert ref() is None
    assert harness.value("migration.requests", migration_operation="charge") == 2011


def test_2_nested_and_shared_blocks_still_pair_up(harness: Harness) -> None:
    shared = versioned("2.0", operation="outer")
    with shared, versioned("1.0", operation="inner"), shared:
        pass
    assert harness.value("migration.requests", migration_operation="outer") == 2
    assert harness.value("migration.requests", migration_operation="inner") == 1
    assert otel_migration.current_scope() is None


# -- 10: a shared subject() object across threads and tasks -----------------------------------------
def test_10_a_subject_shared_by_threads_detaches_each_thread(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    shared = otel_migration.subject("user-1")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    after: dict[str, object] = {}

    def thread_a() -> None:
        with shared:
            a_in.set()
            b_in.wait(5)
        a_out.set()
        after["a"] = current_subject()
        with versioned("2.0", operation="unrelated"):
            after["a_scope"] = otel_migration.current_scope()

    def thread_b() -> None:
        a_in.wait(5)
        with shared:
            b_in.set()
            a_out.wait(5)
            after["b_inside"] = current_subject()
        after["b"] = current_subject()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    with caplog.at_level(logging.ERROR):
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert after["a"] is None and after["b"] is None
    assert after["b_inside"] is not None
    scope = after["a_scope"]
    assert scope is not None and scope.subject is None  # type: ignore[attr-defined]
    assert "Failed to detach context" not in caplog.text


def test_10_a_subject_shared_by_asyncio_tasks(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    shared = otel_migration.subject("user-2")

    async def main() -> list[object]:
        a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def task_a() -> object:
            async with shared:
                a_in.set()
                await b_in.wait()
            a_out.set()
            return current_subject()

        async def task_b() -> object:
            await a_in.wait()
            async with shared:
                b_in.set()
                await a_out.wait()
            return current_subject()

        return list(await asyncio.gather(task_a(), task_b()))

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(main()) == [None, None]
    assert "Failed to detach context" not in caplog.text


# -- 6: types checked at the call, values bounded and cleaned, cardinality capped -------------------
@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: versioned("2.0", operation=123), "operation"),  # type: ignore[arg-type]
        (lambda: versioned(2.0), "version"),  # type: ignore[arg-type]
        (lambda: versioned("2.0", migration=b"m"), "migration"),  # type: ignore[arg-type]
        (lambda: otel_migration.phase(7), "name"),  # type: ignore[arg-type]
        (lambda: record_llm_call(model=123, input_tokens=1, output_tokens=1), "model"),  # type: ignore[arg-type]
        (lambda: record_llm_call(model="gpt-4o", input_tokens=1, output_tokens=1, provider=1), "provider"),  # type: ignore[arg-type]
    ],
)
def test_6_wrong_types_are_a_type_error_naming_the_argument(
    harness: Harness, make: Any, argument: str
) -> None:
    with pytest.raises(TypeError, match=argument):
        make()
    assert harness.spans() == []


def test_6_a_lone_surrogate_never_breaks_an_export(harness: Harness) -> None:
    with versioned("2.0", operation="charge\ud800"):
        pass
    with versioned("2.0", operation="good"):
        pass
    spans = harness.spans()
    assert len(spans) == 2
    encode_spans(spans).SerializeToString()  # raised UnicodeEncodeError, losing the good span too
    harness.telemetry.recorder.drain()
    data = harness.reader.get_metrics_data()
    assert data is not None
    encode_metrics(data).SerializeToString()
    assert otel_migration.snapshot().migrations  # raised at every evaluation before
    names = sorted(s.name for s in spans)
    assert names == ["charge\ufffd", "good"]


def test_6_a_megabyte_of_user_input_stays_within_export_limits(harness: Harness) -> None:
    huge = "x" * 1_000_000
    with versioned("2.0", operation=huge, migration="y" * 1_000_000):
        pass
    (span,) = harness.spans()
    assert len(span.name) == limits.MAX_NAME_LENGTH
    assert all(len(str(v)) <= limits.MAX_NAME_LENGTH for v in span.attributes.values())
    request = encode_spans([span]).SerializeToString()
    assert len(request) < 4 * limits.MAX_NAME_LENGTH + 2048
    harness.telemetry.recorder.drain()
    data = harness.reader.get_metrics_data()
    assert data is not None
    assert len(encode_metrics(data).SerializeToString()) < 64 * 1024  # gRPC's limit is 4 MiB


def test_6_a_megabyte_operation_from_a_configured_target(tmp_path: Path) -> None:
    sys.modules.pop("tests.sample_app.legacy", None)
    h = make_harness(
        targets={"tests.sample_app.legacy:charge": {"version": "1.0", "operation": "z" * 1_000_000}}
    )
    try:
        legacy = importlib.import_module("tests.sample_app.legacy")
        assert legacy.charge(5) == "legacy:5"
        (span,) = h.spans()
        assert len(span.name) == limits.MAX_NAME_LENGTH
        assert len(encode_spans([span]).SerializeToString()) < 4096
    finally:
        otel_migration.shutdown()
        sys.modules.pop("tests.sample_app.legacy", None)


def test_6_distinct_operations_are_capped_with_one_warning_and_exact_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make_harness(sampler=ALWAYS_OFF)
    n = 100_000
    try:
        with caplog.at_level(logging.WARNING, logger="otel_migration"):
            for i in range(n):
                with versioned("2.0", operation=f"op-{i}"):
                    pass
        h.telemetry.recorder.drain()
        points = h.points("migration.requests")
        operations = {p.attributes["migration.operation"] for p in points}
        assert len(operations) == limits.MAX_OPERATIONS + 1
        assert limits.OVERFLOW in operations
        assert sum(p.value for p in points) == n  # exact: the overflow is counted, not dropped
        overflow = [p for p in points if p.attributes["migration.operation"] == limits.OVERFLOW]
        assert sum(p.value for p in overflow) == n - limits.MAX_OPERATIONS
        warnings = [r for r in caplog.records if "distinct" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        # Collection stays bounded: every metric together has a bounded number of series.
        data = h.reader.get_metrics_data()
        assert data is not None
        series = sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        assert series < 20 * limits.MAX_OPERATIONS
    finally:
        otel_migration.shutdown()


def test_6_distinct_models_are_capped(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(limits.MAX_MODELS + 50):
        record_llm_call(model=f"model-{i}", input_tokens=1, output_tokens=1)
    harness.telemetry.recorder.drain()
    models = {p.attributes["gen_ai.request.model"] for p in harness.points("migration.llm.calls")}
    assert len(models) == limits.MAX_MODELS + 1 and limits.OVERFLOW in models
    assert sum(p.value for p in harness.points("migration.llm.calls")) == limits.MAX_MODELS + 50


# -- 7: numbers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[analytics]\nevaluate_every_s = inf\n", "analytics"),
        ("[analytics]\nalpha = nan\n", "analytics"),
        ("[budgets.daily]\ndaily_usd = nan\nhard_stop = true\n", "budgets"),
        ("[budgets.daily]\nmonthly_usd = inf\n", "budgets"),
    ],
)
def test_7_nan_and_inf_in_the_config_file_are_refused(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "otel-migration.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        otel_migration.load_settings(config_file=path)
    assert caught.value.field == field


def test_7_nan_prices_are_refused(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[models."my-model"]\nprovider = "me"\ntier = "small"\nas_of = "2026-01-01"\n'
        "input = nan\noutput = 1.0\ncache_read = 0.1\ncache_write = 1.0\n"
    )
    with pytest.raises(ConfigError) as caught:
        make_harness(pricing_file=str(prices))
    assert caught.value.field == "models['my-model'].input"


def test_7_nan_in_an_otel_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "nan")
    with pytest.raises(ConfigError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        otel_migration.load_settings()


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"duration_s": math.nan}, ValueError, "duration_s"),
        ({"duration_s": math.inf}, ValueError, "duration_s"),
        ({"duration_s": -5}, ValueError, "duration_s"),
        ({"duration_s": "1"}, TypeError, "duration_s"),
        ({"input_tokens": 10**30}, ValueError, "input_tokens"),
        ({"output_tokens": 10**30}, ValueError, "output_tokens"),
        ({"model": 123}, TypeError, "model"),
        ({"model": ""}, ValueError, "model"),
        ({"version": 2}, TypeError, "version"),
    ],
)
def test_7_bad_numbers_and_types_in_record_llm_call(
    harness: Harness, kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    opened = _Opened()
    harness.tracer_provider.add_span_processor(opened)
    call: dict[str, Any] = {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, **kwargs}
    with pytest.raises(error, match=argument):
        record_llm_call(**call)
    assert opened.started == opened.ended == 0
    assert harness.spans() == []


def test_7_a_refused_call_never_leaves_its_span_open(harness: Harness) -> None:
    opened = _Opened()
    harness.tracer_provider.add_span_processor(opened)
    BUDGETS.configure(
        otel_migration.load_settings({"budgets": {"b": {"daily_usd": 0.0001, "hard_stop": True}}}).budgets
    )
    try:
        record_llm_call(model="gpt-4o", input_tokens=100_000, output_tokens=10_000, duration_s=0.5)
        with pytest.raises(BudgetExceeded):
            record_llm_call(model="gpt-4o", input_tokens=10, output_tokens=5, duration_s=0.5)
    finally:
        BUDGETS.configure(())
    assert opened.started == opened.ended


def test_7_negative_usage_from_an_sdk_response_is_clamped_and_counted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    anthropic = pytest.importorskip("anthropic")
    from otel_migration.instrumentation.anthropic import AnthropicInstrumentor

    from .llm_server import LLMServer, Usage

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    AnthropicInstrumentor().instrument()
    try:
        with LLMServer(usage=Usage(input_tokens=-5000, output_tokens=-300)) as server:
            client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        AnthropicInstrumentor().uninstrument()
    harness.telemetry.recorder.drain()
    costs = harness.points("migration.llm.cost")
    assert costs and all(p.value >= 0 for p in costs)
    (span,) = [s for s in harness.spans() if "gen_ai.operation.name" in (s.attributes or {})]
    assert span.attributes["gen_ai.usage.input_tokens"] == 0
    assert span.attributes["gen_ai.usage.output_tokens"] == 0
    assert harness.value("migration.llm.usage.clamped") == 2
    tokens = harness.points("gen_ai.client.token.usage")
    assert tokens and all(p.min >= 0 for p in tokens)


# -- 8: the file destination checked at configure(), short writes, metric failures counted ----------
@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("read-only", "not writable"),
        ("full", "no space"),
    ],
)
def test_8_a_file_destination_that_cannot_be_written_is_a_config_error(
    tmp_path: Path, where: str, reason: str
) -> None:
    path = {
        "missing": str(tmp_path / "no-such-folder" / "telemetry.jsonl"),
        "directory": str(tmp_path),
        # root writes through file modes, so a read-only file system it is: sysfs refuses new files.
        "read-only": "/sys/otel-migration.jsonl" if os.geteuid() == 0 else "/proc/otel-migration.jsonl",
        "full": "/dev/full",
    }[where]
    with pytest.raises(ConfigError) as caught:
        otel_migration.configure(exporter="file", file_path=path)
    assert caught.value.field == "file_path"
    assert path in str(caught.value) and reason in str(caught.value)
    assert otel_migration._core.runtime.configured() is None


def test_8_a_short_write_is_never_counted_as_delivered(tmp_path: Path) -> None:
    """A file size limit makes the kernel write part of a line and then refuse: a full disk, for real."""
    out = tmp_path / "telemetry.jsonl"
    script = textwrap.dedent(
        f"""
        import json, resource, signal
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from otel_migration._export.file import JsonLinesSpanExporter
        from otel_migration._export.health import CountingSpanExporter

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))
        exporter = CountingSpanExporter(JsonLinesSpanExporter({str(out)!r}), MeterProvider())
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        for i in range(40):
            tracer.start_span("span-%d" % i).end()
        print(json.dumps({{"delivered": exporter.delivered, "failed": exporter.failed}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    text = out.read_text()
    lines = text.split("\n")
    assert lines[-1] == "", "the file ends in a complete line"
    complete = [json.loads(line) for line in lines[:-1]]
    spans_in_file = sum(
        len(ss["spans"]) for doc in complete for rs in doc["resourceSpans"] for ss in rs["scopeSpans"]
    )
    assert counts["delivered"] == spans_in_file
    assert counts["failed"] == 40 - spans_in_file and counts["failed"] > 0


def test_8_metric_export_failures_are_counted() -> None:
    with OTLPReceiver("http/protobuf") as rx:
        rx.behaviour = "reject"
        delegate = HttpMetricExporter(endpoint=rx.signal_endpoint("metrics"))
        counting = CountingMetricExporter(delegate)
        reader = PeriodicExportingMetricReader(counting, export_interval_millis=3_600_000)
        provider = MeterProvider(metric_readers=[reader])
        counting.register(provider)
        provider.get_meter("t").create_counter("work").add(3)
        provider.force_flush()
        provider.force_flush()
        assert counting.failed == 2
        rx.behaviour = "ok"
        provider.force_flush()
        (point,) = [p for p in rx.metrics("migration.telemetry.metrics.failed")]
        assert point.value == 2
        provider.shutdown()


# -- 9: configured targets limited to application code ----------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "builtins:isinstance",
        "json:dumps",
        "this.nonexistent:func",
        "wrapt:FunctionWrapper",
        "opentelemetry.trace:get_tracer",
        "grpc:insecure_channel",
        "otel_migration._core.config:load_settings",
    ],
)
def test_9_targets_outside_application_code_are_refused(
    target: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        otel_migration.configure(exporter="none", targets={target: {"version": "2.0"}})
    assert caught.value.field == f"targets[{target!r}]"
    assert "Beautiful is better than ugly" not in capfd.readouterr().out  # `this` was never imported


def test_9_a_missing_target_module_runs_none_of_its_parents_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "side_effect_pkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"side_effect_pkg\.sub\.nowhere"):
        otel_migration.configure(
            exporter="none", targets={"side_effect_pkg.sub.nowhere:f": {"version": "2.0"}}
        )
    assert not marker.exists()
    assert "side_effect_pkg" not in sys.modules
    # An existing module is still found, again without running its package's code.
    (package / "sub" / "real.py").write_text("def f():\n    return 1\n")
    make_harness(targets={"side_effect_pkg.sub.real:f": {"version": "2.0"}})  # not the global providers
    assert not marker.exists()


class _CallsApplicationCode(Sampler):
    """A sampler that asks the application (a wrapped target) for each decision."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        importlib.import_module("tests.sample_app.legacy").charge(1)
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "calls-application-code"


def test_9_re_entry_into_a_target_from_our_own_path_runs_it_untraced() -> None:
    sys.modules.pop("tests.sample_app.legacy", None)
    h = make_harness(
        sampler=_CallsApplicationCode(), targets={"tests.sample_app.legacy:charge": {"version": "1.0"}}
    )
    try:
        legacy = importlib.import_module("tests.sample_app.legacy")
        assert legacy.charge(2) == "legacy:2"
        assert len(h.spans("charge")) == 1
        assert h.value("migration.requests", migration_operation="charge") == 1
    finally:
        otel_migration.shutdown()
        sys.modules.pop("tests.sample_app.legacy", None)


# -- 11: rate-limited logs --------------------------------------------------------------------------
def test_11_ten_thousand_unknown_models_log_one_line_then_a_count(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("otel_migration._core.lifecycle._monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="otel_migration"):
        for i in range(5000):
            record_llm_call(model=f"unknown-{i}", input_tokens=1, output_tokens=1)
        clock[0] += 3600
        for i in range(5000, 10_000):
            record_llm_call(model=f"unknown-{i}", input_tokens=1, output_tokens=1)
    lines = [r.getMessage() for r in caplog.records if "price" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "5000 more" in lines[1] or "4999 more" in lines[1]


def test_11_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    log = RateLimitedLog(logging.getLogger("otel_migration.test"), interval_s=60.0, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="otel_migration.test"):
        for _ in range(100):
            log.warning("export", "export failed: %s", "disk full")
        clock[0] = 61.0
        log.warning("export", "export failed: %s", "disk full")
        log.warning("other", "another kind")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "export failed: disk full",
        "export failed: disk full (99 more like it in the last 61s were not logged)",
        "another kind",
    ]


def test_11_a_failing_file_exporter_logs_once_not_every_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.jsonl"
    exporter = JsonLinesSpanExporter(str(path))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter._writer.close()
    os.chmod(tmp_path, 0o700)
    path.unlink()
    path.mkdir()  # the destination turned into a directory after the check
    with caplog.at_level(logging.WARNING):
        for i in range(50):
            provider.get_tracer("t").start_span(f"s{i}").end()
    assert len([r for r in caplog.records if "could not write" in r.getMessage()]) == 1


# -- 13: the HTTP exporter's loss is not over-reported ----------------------------------------------
class _ResumingCollector(http.server.ThreadingHTTPServer):
    """A collector that hangs on its first request (then takes it) and answers 503 once, then 200."""

    daemon_threads = True

    def __init__(self, hang_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _ResumingHandler)
        self.hang_s = hang_s
        self.lock = threading.Lock()
        self.requests = 0
        self.spans: list[str] = []
        self.release = threading.Event()


class _ResumingHandler(http.server.BaseHTTPRequestHandler):
    server: _ResumingCollector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
        if number == 1:
            self.server.release.wait(self.server.hang_s)  # paused: the client gives up meanwhile
        elif number == 2:
            self._reply(503)
            return
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    self.server.spans.extend(s.name for s in ss.spans)
        self._reply(200)

    def _reply(self, status: int) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


def test_13_spans_a_hung_collector_took_are_not_counted_as_failed() -> None:
    server = _ResumingCollector(hang_s=10.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        provider = TracerProvider()
        # 2 s: the first attempt waits for an answer that long; a 503's back-off (1 s +-20 %) fits in it.
        timeout_s = 2.0
        exporter = CountingSpanExporter(
            HttpSpanExporter(endpoint=endpoint, timeout=timeout_s), MeterProvider(), timeout_s=timeout_s
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        tracer.start_span("while-hung").end()  # the client times out; the collector takes it later
        server.release.set()
        tracer.start_span("after-resume").end()  # 503, then 200 on the exporter's own retry
        provider.shutdown()
        deadline = threading.Event()
        for _ in range(100):
            with server.lock:
                if len(server.spans) == 2:
                    break
            deadline.wait(0.05)
        assert sorted(server.spans) == ["after-resume", "while-hung"]
        # Before: failed == 1 although the collector had the span; the loss was over-reported.
        assert exporter.failed == 0
        assert exporter.unconfirmed == 1
        assert exporter.delivered == 1
    finally:
        server.shutdown()
        server.server_close()


def test_13_refused_exports_are_still_failures() -> None:
    with OTLPReceiver("http/protobuf") as rx:
        rx.behaviour = "reject"
        provider = TracerProvider()
        exporter = CountingSpanExporter(
            HttpSpanExporter(endpoint=rx.signal_endpoint("traces")), MeterProvider()
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("t").start_span("refused").end()
        provider.shutdown()
    assert (exporter.failed, exporter.unconfirmed, exporter.delivered) == (1, 0, 0)
