"""The application side of the load test: a paced stream of versioned calls from many users.

    python load_app.py --rate 300 --duration 60 --users 10000 --outage 20 50

Runs ``rate`` calls per second for ``duration`` seconds, each from a random one of ``users``
simulated users (split between 1.0 and 2.0 by a stable hash), timing every call as the caller
sees it. The ``--outage`` window (seconds from the start, when the runner stops the collector)
only labels the latency figures. Prints one JSON document: calls per version, calls whose span was
sampled, latency per window, resident memory over time, and what the pipeline says it delivered
and lost.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import zlib
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_migration

sampled = 0


@otel_migration.versioned("1.0", operation="checkout")
def checkout_v1(user: str) -> int:
    return _work(user)


@otel_migration.versioned("2.0", operation="checkout")
def checkout_v2(user: str) -> int:
    return _work(user)


def _work(user: str) -> int:
    global sampled
    if trace.get_current_span().is_recording():
        sampled += 1
    return len(user)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def sdk_queue_drops(reader: InMemoryMetricReader) -> int:
    """Spans the BatchSpanProcessor dropped because its queue was full, as the SDK counts them."""
    data = reader.get_metrics_data()
    dropped = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "otel.sdk.processor.span.processed":
                    for point in metric.data.data_points:
                        if point.attributes.get("error.type") == "queue_full":
                            dropped += int(point.value)
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--outage", type=float, nargs=2, default=(-1.0, -1.0))
    args = parser.parse_args()

    telemetry = otel_migration.configure(migration="load")
    reader = InMemoryMetricReader()
    meter_provider = telemetry.providers.owned_meter_provider
    assert meter_provider is not None
    meter_provider.add_metric_reader(reader)

    rng = random.Random(42)
    users = [f"user-{i}" for i in range(args.users)]
    total = int(args.rate * args.duration)
    calls = {"1.0": 0, "2.0": 0}
    latency: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    rss: list[tuple[float, float]] = []
    start = time.perf_counter()
    next_rss = 0.0
    for i in range(total):
        due = start + i / args.rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        user = rng.choice(users)
        new = zlib.crc32(user.encode()) % 2 == 0
        t0 = time.perf_counter()
        (checkout_v2 if new else checkout_v1)(user)
        elapsed = time.perf_counter() - t0
        calls["2.0" if new else "1.0"] += 1
        at = t0 - start
        window = "before" if at < args.outage[0] else "during" if at < args.outage[1] else "after"
        latency[window].append(elapsed)
        if at >= next_rss:
            rss.append((round(at, 1), round(rss_mb(), 1)))
            next_rss += 1.0

    otel_migration.force_flush()
    health = telemetry.health()
    report: dict[str, Any] = {
        "calls": calls,
        "sampled": sampled,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "latency_us": {
            window: {
                "n": len(values),
                "p50": round(float(np.percentile(values, 50)) * 1e6, 1),
                "p99": round(float(np.percentile(values, 99)) * 1e6, 1),
                "max": round(max(values) * 1e6, 1),
            }
            for window, values in latency.items()
            if values
        },
        "rss_mb": {"start": rss[0][1], "max": max(v for _, v in rss), "end": rss[-1][1]},
        "rss_series": rss,
        "calls_dropped": health.calls_dropped,
        "spans_delivered": health.spans_delivered,
        "spans_failed": health.spans_failed,
        "spans_queue_dropped": sdk_queue_drops(reader),
    }
    otel_migration.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
