"""Cost of a versioned call against a bare call and hand-written OTel instrumentation, in one run.

Every variant runs the same trivial function in the same process against the same SDK pipeline
(TracerProvider + BatchSpanProcessor with an exporter that discards, MeterProvider with a
periodic reader that never fires during the run), and is timed as the best of several repeats.
Absolute times depend on the machine; the ratios are what to compare:

- ``bare``: the function alone;
- ``raw span``: a hand-written ``start_as_current_span`` around it;
- ``raw span+counter+histogram``: what a hand-written version of our telemetry costs;
- ``versioned``: ``@otel_migration.versioned`` (span + exact request, error and duration metrics);
- the same two at 1 % trace sampling (``parentbased_traceidratio``), where metrics stay exact.

Also reported: the background aggregation's cost per call (off the call path, on the worker), and
what each measurement added by issue 14 costs (``--features``): an ``event()``, a ``tool()`` run,
an ``agent()`` loop, and the per-LLM-call work of tools and agents (finding the agent loop in the
context, reading the tool calls of a parsed response). The default run also reports each per-call
resource measurement (issue 14 items 1 and 2): CPU time (``measure_cpu``, on by
default), tracemalloc (``measure_memory``, off), the in-flight count against the SDK's
synchronous UpDownCounter, and per-step CPU of a coroutine.

    python benchmarks/call_overhead.py [--calls N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

import otel_migration
from otel_migration import EventName
from otel_migration._core.recorder import CallRecorder


class DiscardingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def work(x: int) -> int:
    return x + 1


def best_ns_per_call(fn: Callable[[int], object], calls: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        for i in range(calls):
            fn(i)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


class DiscardingMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


def pipeline(sampler: Sampler) -> tuple[TracerProvider, MeterProvider]:
    """The providers ``configure()`` builds, exporting nowhere: a batch span processor, and a periodic
    metric reader (that does not fire during the run) exporting through our metric exporter."""
    tracer_provider = TracerProvider(sampler=sampler)
    # A queue that holds a whole timed run: spans dropped for a full queue would cost less than exported ones.
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=1 << 17))
    reader = PeriodicExportingMetricReader(
        otel_migration.metric_exporter(DiscardingMetricExporter()), export_interval_millis=3_600_000
    )
    return tracer_provider, MeterProvider(metric_readers=[reader], views=otel_migration.metric_views())


def paired_cpu_ns(
    first: Callable[[int], object],
    second: Callable[[int], object],
    calls: int,
    settle: Callable[[], object],
    block: int = 1_000,
) -> tuple[list[float], list[float]]:
    """Process CPU per call (every thread: the aggregator's and the span processor's too) of ``first``
    and ``second`` in alternating blocks of ``block`` calls, ``calls`` of each: one list per function.

    Why blocks: this kind of host runs at half speed for stretches of 50 ms to seconds (a
    neighbour on the same core), so two long runs one after the other can see different machines.
    Adjacent blocks see the same one; their ratios, paired, cancel it. Before each block the
    background work of the last one is finished and the garbage collector starts from an empty
    young generation, so each block pays for its own objects (which one runs first alternates);
    ``settle`` finishes the background work the calls caused before the clock stops.
    """
    firsts: list[float] = []
    seconds: list[float] = []
    for round_ in range(max(calls // block, 5)):
        pair = ((first, firsts), (second, seconds))
        for fn, out in pair if round_ % 2 == 0 else pair[::-1]:
            settle()
            gc.collect()
            start = time.process_time_ns()
            for i in range(block):
                fn(i)
            settle()
            out.append((time.process_time_ns() - start) / block)
    return firsts, seconds


def paired_ratio(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Median of the per-pair ratios, with the quartiles (how much the host moved them)."""
    low, median, high = statistics.quantiles([a / b for a, b in zip(ours, theirs, strict=True)], n=4)
    return median, low, high


def measure(
    sampler: Sampler, label: str, calls: int, ratios: dict[tuple[str, str], tuple[float, float, float]]
) -> dict[str, float]:
    """The table's rows for one sampler; ``ratios`` receives the paired process-CPU ratios."""
    tracer_provider, meter_provider = pipeline(sampler)
    tracer = tracer_provider.get_tracer("bench")
    meter = meter_provider.get_meter("bench")
    counter = meter.create_counter("raw.requests")
    errors = meter.create_counter("raw.errors")
    histogram = meter.create_histogram("raw.duration", unit="s")
    # The same attributes our span carries, so both sides pay the SDK's per-attribute cost alike.
    attrs = {
        "migration.name": "bench",
        "migration.operation": "work",
        "migration.version": "2.0",
        "code.function.name": f"{__name__}.work",
    }

    def raw_span(x: int) -> int:
        with tracer.start_as_current_span("work", attributes=attrs):
            return work(x)

    def raw_all(x: int) -> int:
        start = time.perf_counter()
        try:
            with tracer.start_as_current_span("work", attributes=attrs):
                return work(x)
        except Exception:
            errors.add(1, attrs)
            raise
        finally:
            counter.add(1, {**attrs, "migration.outcome": "ok"})
            histogram.record(time.perf_counter() - start, attrs)

    results = {
        f"raw span [{label}]": best_ns_per_call(raw_span, calls),
        f"raw span+counter+histogram [{label}]": best_ns_per_call(raw_all, calls),
    }
    # Two configurations: the same measurements as the hand-written code (span, request and error
    # counts, duration histogram; measure_cpu off), then the defaults (+ each call's thread CPU).
    for variant, settings in (("like for like", {"measure_cpu": False}), ("defaults", {})):
        telemetry = otel_migration.configure(
            tracer_provider=tracer_provider, meter_provider=meter_provider, migration="bench", **settings
        )
        versioned_work = otel_migration.versioned("2.0", operation="work")(work)
        recorder = telemetry.recorder

        def settle(recorder: CallRecorder = recorder) -> None:
            recorder.drain()
            tracer_provider.force_flush()

        # The call path alone: hold the aggregator so its work is not interleaved with the timing,
        # then time the background aggregation of exactly those calls on its own.
        call_path, aggregation = float("inf"), []
        for _ in range(5):
            with recorder._drain_lock:
                call_path = min(call_path, best_ns_per_call(versioned_work, calls, repeats=1))
            start = time.perf_counter_ns()
            recorder.drain()
            aggregation.append((time.perf_counter_ns() - start) / calls)
        key = f"versioned ({variant}), {{}} [{label}]"
        results[key.format("call path")] = call_path
        results[key.format("background aggregation per call")] = min(aggregation)
        results[key.format("call path + aggregation")] = call_path + min(aggregation)
        # Process CPU, every thread counted (the aggregator's and the span processor's too), the
        # hand-written code and ours in alternating blocks so that both see the same machine.
        ours_cpu, raw_cpu = paired_cpu_ns(versioned_work, raw_all, calls, settle)
        results[f"process CPU: raw span+counter+histogram ({variant}) [{label}]"] = statistics.median(raw_cpu)
        results[key.format("process CPU")] = statistics.median(ours_cpu)
        ratios[(label, variant)] = paired_ratio(ours_cpu, raw_cpu)
        otel_migration.shutdown()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


class DiscardingLogExporter(LogRecordExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def measure_features(calls: int) -> dict[str, float]:
    """Events, tools, agents, and the per-LLM-call work they add, on the sampled pipeline plus logs."""
    import anthropic.types

    from otel_migration._llm.agents import current_loop
    from otel_migration.instrumentation._tools import tool_calls_of

    tracer_provider, meter_provider = pipeline(ALWAYS_ON)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(DiscardingLogExporter()))
    otel_migration.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        migration="bench",
    )
    tool_work = otel_migration.tool("lookup")(work)
    agent_work = otel_migration.agent("bench-agent")(work)
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "a"}},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "b"}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )

    def event_outside(x: int) -> None:
        otel_migration.event(EventName.CACHE_HIT, key_len=x)

    tracer = tracer_provider.get_tracer("bench")

    def raw_span(x: int) -> int:
        with tracer.start_as_current_span("work"):
            return work(x)

    results = {
        "raw span (reference: the same pipeline, by hand)": best_ns_per_call(raw_span, calls),
        "event() outside a versioned call": best_ns_per_call(event_outside, calls),
        "tool() run (execute_tool span + count)": best_ns_per_call(tool_work, calls),
        "agent() loop, empty (invoke_agent span + 5 histograms)": best_ns_per_call(agent_work, calls),
        "per LLM call: find the agent loop in the context": best_ns_per_call(lambda x: current_loop(), calls),
        "per LLM response: read its tool calls (2 tool_use blocks)": best_ns_per_call(
            lambda x: tool_calls_of(message), calls
        ),
    }
    otel_migration.shutdown()
    for provider in (logger_provider, tracer_provider, meter_provider):
        provider.shutdown()
    return results


def measure_resources(calls: int) -> dict[str, float]:
    """Each per-call measurement of _calls/resources.py, switched on alone, call path only."""
    import asyncio
    import tracemalloc

    from otel_migration._core.inflight import InFlightCounts

    results: dict[str, float] = {}
    results["time.thread_time_ns() alone"] = best_ns_per_call(lambda _: time.thread_time_ns(), calls)
    counts, key = InFlightCounts(), ("bench", "work", "2.0")

    def in_flight(_: int) -> None:
        counts.enter(key)
        counts.exit(key)

    results["in flight: InFlightCounts enter + exit"] = best_ns_per_call(in_flight, calls)
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    up_down = meter.create_up_down_counter("raw.in_flight")
    attrs = {"migration.name": "bench", "migration.operation": "work", "migration.version": "2.0"}

    def sdk_in_flight(_: int) -> None:
        up_down.add(1, attrs)
        up_down.add(-1, attrs)

    results["in flight: SDK UpDownCounter.add(+1) + add(-1)"] = best_ns_per_call(sdk_in_flight, calls)

    for label, settings in (
        ("versioned, measure_cpu off", {"measure_cpu": False}),
        ("versioned, measure_cpu on (default)", {}),
        ("versioned, measure_cpu + measure_memory", {"measure_memory": True}),
    ):
        tracer_provider, meter_provider = pipeline(ALWAYS_ON)
        telemetry = otel_migration.configure(
            tracer_provider=tracer_provider, meter_provider=meter_provider, migration="bench", **settings
        )
        versioned_work = otel_migration.versioned("2.0", operation="work")(work)

        async def step(x: int) -> int:
            await asyncio.sleep(0)
            return x

        versioned_step = otel_migration.versioned("2.0", operation="step")(step)
        loop = asyncio.new_event_loop()
        recorder = telemetry.recorder

        def call_path(fn: Callable[[int], object], n: int, recorder: CallRecorder = recorder) -> float:
            """Best of 5, the aggregator held during each and the queue drained between them."""
            best = float("inf")
            for _ in range(5):
                with recorder._drain_lock:
                    best = min(best, best_ns_per_call(fn, n, repeats=1))
                recorder.drain()
            return best

        results[label] = call_path(versioned_work, calls)
        results[f"{label}, coroutine of 2 steps"] = call_path(
            lambda x, loop=loop, fn=versioned_step: loop.run_until_complete(fn(x)), calls // 4
        )
        loop.close()
        otel_migration.shutdown()
        tracer_provider.shutdown()
        meter_provider.shutdown()
    tracing = tracemalloc.is_tracing()
    tracemalloc.stop()

    def allocate(x: int) -> object:
        return [str(i) for i in range(50)]

    results["allocating function (50 str), tracemalloc off"] = best_ns_per_call(allocate, calls // 4)
    tracemalloc.start()
    results["allocating function (50 str), tracemalloc on"] = best_ns_per_call(allocate, calls // 4)
    if not tracing:
        tracemalloc.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--features", action="store_true", help="only the costs of events, tools and agents")
    args = parser.parse_args()
    if args.features:
        features = measure_features(args.calls)
        width = max(map(len, features))
        reference = next(iter(features.values()))
        for name, ns in features.items():
            print(f"{name:<{width}}  {ns / 1000:>8.2f} us  {ns / reference:>6.2f} x raw span")
        return

    bare = best_ns_per_call(work, args.calls)
    results = {"bare call": bare}
    ratios: dict[tuple[str, str], tuple[float, float, float]] = {}
    results |= measure(ALWAYS_ON, "sampled", args.calls, ratios)
    results |= measure(ParentBased(TraceIdRatioBased(0.01)), "1% sampled", args.calls, ratios)
    results |= measure_resources(args.calls)

    width = max(map(len, results))
    print(f"{'variant':<{width}}  {'ns/call':>10}  {'x bare':>9}")
    for name, ns in results.items():
        print(f"{name:<{width}}  {ns:>10.0f}  {ns / bare:>9.1f}")
    print()
    print("versioned / raw span+counter+histogram (process CPU: median of paired blocks [quartiles])")
    for label in ("sampled", "1% sampled"):
        raw = results[f"raw span+counter+histogram [{label}]"]
        for variant in ("like for like", "defaults"):
            key = f"versioned ({variant}), {{}} [{label}]"
            median, low, high = ratios[(label, variant)]
            print(
                f"[{label}, {variant}] "
                f"call path {results[key.format('call path')] / raw:.2f}, "
                f"+ background aggregation {results[key.format('call path + aggregation')] / raw:.2f}, "
                f"process CPU (every thread) {median:.2f} [{low:.2f}-{high:.2f}]"
            )


if __name__ == "__main__":
    main()
