"""The aggregator's ceiling: how many finished calls per second one process can count exactly.

    python benchmarks/aggregator_ceiling.py [--records 200000] [--threads 64] [--seconds 20]

Every finished call costs the caller one ``deque.append``; one background thread aggregates the
records a chunk at a time (exact counts, the histograms, the analytics), and callers help once the
queue is half full. Past what that sustains the queue fills and calls are dropped, *counted* in
``migration.telemetry.dropped``. Two measurements:

1. drain rate: records queued up front, aggregated by one thread with nothing else running;
2. saturation: ``--threads`` threads call a versioned function as fast as they can for
   ``--seconds``; then every call made is either counted or counted as dropped, exactly
   (``made == counted + dropped``, checked), and the drop share is what the ceiling costs.
"""

from __future__ import annotations

import argparse
import io
import threading
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import otel_migration
from otel_migration._core.context import Scope
from otel_migration._core.records import CallRecord, row_of


def _meter_provider(batch_histograms: bool) -> MeterProvider:
    """Exports through our metric exporter (batch histograms, as ``configure()`` builds it), or an
    application's own reader (histograms through the SDK, one ``record`` per value)."""
    if not batch_histograms:
        return MeterProvider(metric_readers=[InMemoryMetricReader()])
    exporter = otel_migration.metric_exporter(ConsoleMetricExporter(out=io.StringIO()))
    return MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)]
    )


def drain_rate(records: int, batch_histograms: bool = True) -> float:
    """Records per second one thread aggregates (100 distinct operations, versions and users)."""
    telemetry = otel_migration.configure(
        tracer_provider=TracerProvider(),
        meter_provider=_meter_provider(batch_histograms),
        max_queue_size=records + 1,
    )
    recorder = telemetry.recorder
    scopes = [Scope("ceiling", f"op{i % 5}", "2.0" if i % 2 else "1.0", None, f"user{i}") for i in range(100)]
    now = time.time_ns()
    rows = [row_of(CallRecord(scope, "ok", 0.001, now)) for scope in scopes]  # what a plain call queues
    for i in range(records):  # straight into the queue: the drain alone is measured
        recorder._queue.append(rows[i % 100])
    started = time.perf_counter()
    recorder.drain()
    elapsed = time.perf_counter() - started
    assert sum(recorder.request_counts().values()) == records
    otel_migration.shutdown()
    return records / elapsed


def saturate(threads: int, seconds: float) -> dict[str, float]:
    """``threads`` callers for ``seconds``: made, counted, dropped (made == counted + dropped)."""
    telemetry = otel_migration.configure(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),  # the aggregator, not span export
        meter_provider=_meter_provider(True),
    )

    @otel_migration.versioned("2.0", operation="saturate", migration="ceiling")
    def call() -> None:
        pass

    stop = threading.Event()
    made = [0] * threads

    def caller(index: int) -> None:
        n = 0
        while not stop.is_set():
            call()
            n += 1
        made[index] = n

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    recorder = telemetry.recorder
    recorder.drain()
    counted = sum(recorder.request_counts().values())
    dropped = recorder.dropped
    total = sum(made)
    assert total == counted + dropped, (total, counted, dropped)
    otel_migration.shutdown()
    return {
        "made": total,
        "counted": counted,
        "dropped": dropped,
        "dropped_share": dropped / total if total else 0.0,
        "made_per_s": total / seconds,
        "counted_per_s": counted / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rate = drain_rate(args.records)
    print(f"drain rate (one thread, nothing else running): {rate:,.0f} records/s")
    rate = drain_rate(args.records, batch_histograms=False)
    print(f"  the same with the histograms recorded through the SDK (your own reader): {rate:,.0f} records/s")
    found = saturate(args.threads, args.seconds)
    print(
        f"{args.threads} threads for {args.seconds:g} s: made {found['made']:,.0f} "
        f"({found['made_per_s']:,.0f}/s), counted {found['counted']:,.0f} ({found['counted_per_s']:,.0f}/s), "
        f"dropped {found['dropped']:,.0f} ({found['dropped_share']:.0%}), all accounted for"
    )


if __name__ == "__main__":
    main()
