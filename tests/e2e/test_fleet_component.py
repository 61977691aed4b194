"""The migration_analytics component inside the real collector: two instances' state -> fleet figures.

Two processes of one service export the state of docs/fleet.md over OTLP/HTTP (protobuf), built
here by hand from known raw data (the SDK side is not this test's subject): cumulative call
counters, scale-6 exponential histograms of durations and HyperLogLog sketches as log records.
The real collector (with the component, built by collector_config/build.sh) merges them, and its
Prometheus endpoint must show the ground truth: exact requests, distinct users within the sketch's
error, p95 within the histogram's 0.55 %, the verdicts the Python code gives on the pooled raw
data, one series per migration and no per-instance label.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from otel_migration._analytics.sketch import HyperLogLog
from otel_migration._analytics.verdicts import adjust, error_rate_verdict, shift_verdict
from otel_migration._core.config import AnalyticsSettings
from tests.fixtures.make_fleet_statistics import splitmix64

from .stack import ROOT, Stack, binaries, prometheus_samples, wait_until

pytestmark = pytest.mark.e2e

SERVICE, MIGRATION, OPERATION = "fleet-e2e", "pricing-v2", "quote"
SCALE = 6
FLEET_APP = ROOT / "tests" / "scripts" / "fleet_app.py"
RELATIVE_ERROR = 1.04 / math.sqrt(4096)


class FleetStack(Stack):
    """The shipped configs, with the component emitting every second instead of every ten."""

    def collector_env(self) -> dict[str, str]:
        return super().collector_env() | {"OTELCOL_FLEET_EMIT_INTERVAL": "1s"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    otelcol, jaeger = binaries()
    with FleetStack(tmp_path_factory.mktemp("fleet"), otelcol, jaeger) as running:
        yield running


def _kv(pairs: dict[str, str | int]) -> list[common_pb2.KeyValue]:
    return [
        common_pb2.KeyValue(
            key=k,
            value=common_pb2.AnyValue(int_value=v)
            if isinstance(v, int)
            else common_pb2.AnyValue(string_value=v),
        )
        for k, v in pairs.items()
    ]


def _resource(instance: str) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=_kv({"service.name": SERVICE, "service.instance.id": instance}))


def _histogram(values: np.ndarray[Any, Any]) -> tuple[int, list[int]]:
    """Offset and bucket counts of a scale-6 exponential histogram of positive values."""
    index = np.ceil(np.log2(values) * (1 << SCALE)).astype(np.int64) - 1
    offset = int(index.min())
    counts = np.bincount(index - offset)
    return offset, [int(c) for c in counts]


def _post(stack: Stack, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports['otlp_http']}{path}",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _export(
    stack: Stack,
    instance: str,
    start_ns: int,
    now_ns: int,
    calls: dict[tuple[str, str], int],
    durations: dict[str, np.ndarray[Any, Any]],
    users: dict[str, range],
) -> None:
    """One process's export: cumulative calls, cumulative duration histograms and user sketches."""
    sum_points = [
        metrics_pb2.NumberDataPoint(
            attributes=_kv(
                {
                    "migration.name": MIGRATION,
                    "migration.operation": OPERATION,
                    "migration.version": version,
                    "migration.outcome": outcome,
                }
            ),
            start_time_unix_nano=start_ns,
            time_unix_nano=now_ns,
            as_int=count,
        )
        for (version, outcome), count in calls.items()
    ]
    hist_points = []
    for version, values in durations.items():
        offset, counts = _histogram(values)
        hist_points.append(
            metrics_pb2.ExponentialHistogramDataPoint(
                attributes=_kv(
                    {
                        "migration.name": MIGRATION,
                        "migration.operation": OPERATION,
                        "migration.version": version,
                    }
                ),
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=int(values.size),
                sum=float(values.sum()),
                scale=SCALE,
                zero_count=0,
                positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(
                    offset=offset, bucket_counts=counts
                ),
            )
        )
    cumulative = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=_resource(instance),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        metrics=[
                            metrics_pb2.Metric(
                                name="migration.state.calls",
                                unit="{call}",
                                sum=metrics_pb2.Sum(
                                    data_points=sum_points,
                                    aggregation_temporality=cumulative,
                                    is_monotonic=True,
                                ),
                            ),
                            metrics_pb2.Metric(
                                name="migration.state.duration",
                                unit="s",
                                exponential_histogram=metrics_pb2.ExponentialHistogram(
                                    data_points=hist_points, aggregation_temporality=cumulative
                                ),
                            ),
                        ]
                    )
                ],
            )
        ]
    )
    _post(stack, "/v1/metrics", request.SerializeToString())

    bucket = now_ns // 1_000_000_000 // 300 * 300
    records = []
    for version, subjects in users.items():
        sketch = HyperLogLog()
        for subject in subjects:
            sketch.add(splitmix64(subject))
        records.append(
            logs_pb2.LogRecord(
                time_unix_nano=now_ns,
                event_name="migration.state.sketch",
                body=common_pb2.AnyValue(bytes_value=bytes(sketch.registers)),
                attributes=_kv(
                    {
                        "migration.name": MIGRATION,
                        "migration.version": version,
                        "migration.sketch.kind": "users",
                        "migration.sketch.bucket.start": bucket,
                        "migration.sketch.bucket.width": 300,
                        "migration.sketch.precision": 12,
                    }
                ),
            )
        )
    logs = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=_resource(instance), scope_logs=[logs_pb2.ScopeLogs(log_records=records)]
            )
        ]
    )
    _post(stack, "/v1/logs", logs.SerializeToString())


def _fleet(stack: Stack, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (labels, value)
        for labels, value in prometheus_samples(stack.prometheus_text(), name)
        if labels.get("job") == SERVICE and labels.get("migration_name") == MIGRATION
    ]


def test_two_instances_merge_into_the_fleets_figures_at_prometheus(stack: Stack) -> None:
    rng = np.random.default_rng(7)
    raw = {
        "1.0": [rng.lognormal(math.log(0.040), 0.3, 300), rng.lognormal(math.log(0.040), 0.3, 200)],
        "2.0": [rng.lognormal(math.log(0.052), 0.3, 150), rng.lognormal(math.log(0.052), 0.3, 250)],
    }
    errors = {"1.0": (6, 4), "2.0": (15, 25)}  # per instance
    users = {"1.0": (range(0, 700), range(500, 1200)), "2.0": (range(2000, 2200), range(2100, 2400))}
    start = time.time_ns() - 20_000_000_000
    for i, instance in enumerate(("w1", "w2")):
        # The first export holds half of each instance's calls, the second all of them: the component
        # must count the difference, not both.
        for fraction in (0.5, 1.0):
            durations = {v: raw[v][i][: int(raw[v][i].size * fraction)] for v in raw}
            calls = {}
            for version in raw:
                failed = int(errors[version][i] * fraction)
                calls[(version, "ok")] = int(durations[version].size)
                calls[(version, "error")] = failed
            _export(stack, instance, start, time.time_ns(), calls, durations, {v: users[v][i] for v in users})

    def requests() -> dict[str, float]:
        return {
            labels["migration_version"]: value
            for labels, value in _fleet(stack, "migration_fleet_requests")
            if labels.get("migration_window") == "1h"
        }

    truth_requests = {v: sum(a.size for a in raw[v]) + sum(errors[v]) for v in raw}
    wait_until(lambda: requests() == truth_requests, 30, f"fleet requests {truth_requests}")

    text = stack.prometheus_text()
    fleet_names = sorted(
        {line.split("{")[0] for line in text.splitlines() if line.startswith("migration_fleet_")}
    )
    print("fleet series names at Prometheus:", fleet_names)
    assert not [line for line in text.splitlines() if line.startswith("migration_state_")], "state leaked"
    for line in text.splitlines():
        if line.startswith("migration_fleet_"):
            assert "instance=" not in line and "service_instance_id" not in line, line

    users_seen = {
        labels["migration_version"]: value
        for labels, value in _fleet(stack, "migration_fleet_adoption_users")
        if labels.get("migration_window") == "1h"
    }
    for version, distinct in (("1.0", 1200), ("2.0", 400)):
        assert abs(users_seen[version] - distinct) <= 3 * RELATIVE_ERROR * distinct, (version, users_seen)

    p95 = {
        labels["migration_version"]: value
        for labels, value in _fleet(stack, "migration_fleet_performance_duration_seconds")
        if labels.get("migration_window") == "1h" and labels.get("migration_statistic") == "p95"
    }
    for version in raw:
        pooled_p95 = float(np.percentile(np.concatenate(raw[version]), 95))
        assert abs(p95[version] / pooled_p95 - 1) <= 0.0055, (version, p95[version], pooled_p95)

    # The verdicts the Python code gives on the pooled raw data (one Holm family, as the component).
    settings = AnalyticsSettings()
    control, candidate = np.concatenate(raw["1.0"]), np.concatenate(raw["2.0"])
    python = adjust(
        [
            shift_verdict("latency", MIGRATION, OPERATION, "1.0", "2.0", control, candidate),
            error_rate_verdict(
                MIGRATION,
                OPERATION,
                "1.0",
                "2.0",
                (sum(errors["1.0"]), truth_requests["1.0"]),
                (sum(errors["2.0"]), truth_requests["2.0"]),
                settings,
            ),
        ],
        settings,
        {(MIGRATION, OPERATION, "latency", "1.0"): float(np.median(control))},
    )
    value = {"better": 1.0, "worse": -1.0, "inconclusive": 0.0, "no_data": 0.0}
    verdicts = _fleet(stack, "migration_fleet_verdict")
    # One series per (operation, candidate, metric), whatever the number of instances.
    assert len(verdicts) == 2, verdicts
    by_metric = {labels["migration_metric"]: v for labels, v in verdicts}
    assert by_metric == {v.metric: value[v.state] for v in python}
    assert by_metric["latency"] == -1.0, "2.0 is 30 % slower: the planted regression must be seen"


def test_real_sdk_processes_give_one_fleet_series_per_migration(stack: Stack, tmp_path: Path) -> None:
    """Three processes of the real SDK (a service's workers) -> the component -> Prometheus."""
    service, migration = "fleet-sdk", "fleet-e2e"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTEL_MIGRATION_"))}
    env |= stack.otlp_env("http/protobuf") | {
        "OTEL_SERVICE_NAME": service,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    ranges = [(0, 300), (200, 500), (500, 700)]  # 200-299 are served by two workers
    workers = [
        subprocess.Popen(
            [sys.executable, str(FLEET_APP), str(a), str(b), str(tmp_path / f"truth-{i}.jsonl")],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (a, b) in enumerate(ranges)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    truth = [
        json.loads(line) for path in tmp_path.glob("truth-*.jsonl") for line in path.read_text().splitlines()
    ]
    calls = {v: sum(1 for t in truth if t["version"] == v) for v in ("1.0", "2.0")}
    users = {v: len({t["user"] for t in truth if t["version"] == v}) for v in ("1.0", "2.0")}

    def fleet(name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (labels, value)
            for labels, value in prometheus_samples(stack.prometheus_text(), name)
            if labels.get("job") == service and labels.get("migration_name") == migration
        ]

    def requests() -> dict[str, float]:
        return {
            labels["migration_version"]: value
            for labels, value in fleet("migration_fleet_requests")
            if labels.get("migration_window") == "1h"
        }

    wait_until(lambda: requests() == calls, 30, f"the fleet's requests {calls} (have {requests()})")
    seen = {
        labels["migration_version"]: value
        for labels, value in fleet("migration_fleet_adoption_users")
        if labels.get("migration_window") == "1h"
    }
    for version, distinct in users.items():
        assert abs(seen[version] - distinct) <= 3 * RELATIVE_ERROR * distinct, (version, seen, users)
    errors = {
        labels["migration_version"]: v
        for labels, v in fleet("migration_fleet_error_rate")
        if labels.get("migration_window") == "1h"
    }
    truth_errors = sum(1 for t in truth if t["outcome"] == "error")
    assert errors == {"1.0": 0.0, "2.0": truth_errors / calls["2.0"]}
    verdicts = {labels["migration_metric"]: v for labels, v in fleet("migration_fleet_verdict")}
    assert len(fleet("migration_fleet_verdict")) == 2 and verdicts["latency"] == -1.0, verdicts
    instances = [
        v
        for labels, v in prometheus_samples(stack.prometheus_text(), "migration_fleet_instances")
        if labels.get("job") == service
    ]
    assert instances == [3.0]
