"""A tiny WSGI app for the fleet rollout test: what each gunicorn worker serves, and its gauges.

Configured at import, so under ``gunicorn --preload`` the flag provider starts in the master and
the workers are forked from it (the case where flagd's watcher thread would be lost). The rollout
``checkout`` is seeded from the configuration (``[rollouts.checkout]`` as a table here), at 30 %.

GET /version?user=U    -> {"pid": ..., "version": "1.0" | "2.0"}
GET /versions?n=N      -> {"pid": ..., "versions": [version of user-0 ... user-(N-1)]}
GET /gauges            -> {"pid": ..., "rolled_back": ..., "percent": ...} (this process's metrics)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import otel_migration

ROLLOUT = "checkout"
READER = InMemoryMetricReader()
otel_migration.configure(
    tracer_provider=TracerProvider(),
    meter_provider=MeterProvider(metric_readers=[READER]),
    rollouts={ROLLOUT: {"percent": 30}},
)


def _gauge(name: str) -> float | None:
    data = READER.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        if point.attributes.get("migration.name") == ROLLOUT:
                            return float(point.value)
    return None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ.get("PATH_INFO", "")
    body: dict[str, Any] = {"pid": os.getpid()}
    if path == "/version":
        body["version"] = otel_migration.rollout(ROLLOUT, query["user"][0])
    elif path == "/versions":
        body["versions"] = [otel_migration.rollout(ROLLOUT, f"user-{i}") for i in range(int(query["n"][0]))]
    elif path == "/gauges":
        body["rolled_back"] = _gauge("migration.rollout.rolled_back")
        body["percent"] = _gauge("migration.rollout.percent")
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    payload = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
