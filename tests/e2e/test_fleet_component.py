"""The migration_analytics component inside the real collector: two instances' state -> fleet figures.

Two processes of one service export the state of docs/fleet.md over OTLP/HTTP (protobuf), built
here by hand from known raw data (the SDK side is not this test's subject): cumulative call
counters, scale-6 exponential histograms of durations and of CPU seconds, and HyperLogLog sketches
as log records. The real collector (with the component, built by collector_config/build.sh) merges
them, and its Prometheus endpoint must show the ground truth: exact requests, distinct users within
the sketch's error, p95 (durations and CPU) within the histogram's 0.55 %, the verdicts (latency,
error rate, CPU) the Python code gives on the pooled raw data, one series per migration and no
per-instance label.

The fleet's health (docs/health.md): three processes export 40 minutes of cumulative state, errors
by category, dropped calls and CPU, minute by minute; the health score, anomalies and error trends
at Prometheus must be what the Python functions give on the pooled raw calls.
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

from otel_migration._analytics.health import HealthMonitor, health_score
from otel_migration._analytics.sketch import HyperLogLog
from otel_migration._analytics.verdicts import adjust, error_rate_verdict, shift_verdict
from otel_migration._core.config import AnalyticsSettings
from otel_migration._core.context import Scope
from otel_migration._core.records import CallRecord
from tests.fixtures.make_fleet_statistics import splitmix64

from .stack import ROOT, Stack, binaries, prometheus_samples, wait_until

pytestmark = pytest.mark.e2e

SERVICE, MIGRATION, OPERATION = "fleet-e2e", "pricing-v2", "quote"
SCALE = 6
FLEET_APP = ROOT / "tests" / "scripts" / "fleet_app.py"
RELATIVE_ERROR = 1.04 / math.sqrt(4096)


class FleetStack(Stack):
    """The shipped configs, the component emitting every second and judging the last minute at once."""

    def collector_env(self) -> dict[str, str]:
        return super().collector_env() | {
            "OTELCOL_FLEET_EMIT_INTERVAL": "1s",
            "OTELCOL_FLEET_HEALTH_DELAY": "0s",
        }


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
    cpu: dict[str, np.ndarray[Any, Any]],
) -> None:
    """One process's export: cumulative calls, duration and CPU histograms, and user sketches."""
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

    def points(values_by_version: dict[str, np.ndarray[Any, Any]]) -> list[Any]:
        found = []
        for version, values in values_by_version.items():
            offset, counts = _histogram(values)
            found.append(
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
        return found

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
                            *(
                                metrics_pb2.Metric(
                                    name=name,
                                    unit="s",
                                    exponential_histogram=metrics_pb2.ExponentialHistogram(
                                        data_points=points(values), aggregation_temporality=cumulative
                                    ),
                                )
                                for name, values in (
                                    ("migration.state.duration", durations),
                                    ("migration.state.cpu", cpu),
                                )
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
    # CPU per successful call: 2.0 burns 30 % more (issue 14: that version is worse).
    raw_cpu = {
        "1.0": [rng.lognormal(math.log(0.004), 0.3, 300), rng.lognormal(math.log(0.004), 0.3, 200)],
        "2.0": [rng.lognormal(math.log(0.0052), 0.3, 150), rng.lognormal(math.log(0.0052), 0.3, 250)],
    }
    errors = {"1.0": (6, 4), "2.0": (15, 25)}  # per instance
    users = {"1.0": (range(0, 700), range(500, 1200)), "2.0": (range(2000, 2200), range(2100, 2400))}
    start = time.time_ns() - 20_000_000_000
    for i, instance in enumerate(("w1", "w2")):
        # The first export holds half of each instance's calls, the second all of them: the component
        # must count the difference, not both.
        for fraction in (0.5, 1.0):
            durations = {v: raw[v][i][: int(raw[v][i].size * fraction)] for v in raw}
            cpu = {v: raw_cpu[v][i][: int(raw_cpu[v][i].size * fraction)] for v in raw_cpu}
            calls = {}
            for version in raw:
                failed = int(errors[version][i] * fraction)
                calls[(version, "ok")] = int(durations[version].size)
                calls[(version, "error")] = failed
            _export(
                stack, instance, start, time.time_ns(), calls, durations, {v: users[v][i] for v in users}, cpu
            )

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
    cpu_seen = {
        (labels["migration_version"], labels["migration_statistic"]): value
        for labels, value in _fleet(stack, "migration_fleet_performance_cpu_seconds")
        if labels.get("migration_window") == "1h"
    }
    for version in raw_cpu:
        pooled = np.concatenate(raw_cpu[version])
        for q in (50, 95, 99):
            expected = float(np.percentile(pooled, q))
            assert abs(cpu_seen[(version, f"p{q}")] / expected - 1) <= 0.0055, (version, q, cpu_seen)
        assert math.isclose(cpu_seen[(version, "mean")], float(pooled.mean()), rel_tol=1e-9)

    # The verdicts the Python code gives on the pooled raw data (one Holm family, as the component).
    settings = AnalyticsSettings()
    control, candidate = np.concatenate(raw["1.0"]), np.concatenate(raw["2.0"])
    cpu_control, cpu_candidate = np.concatenate(raw_cpu["1.0"]), np.concatenate(raw_cpu["2.0"])
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
            shift_verdict("cpu", MIGRATION, OPERATION, "1.0", "2.0", cpu_control, cpu_candidate),
        ],
        settings,
        {
            (MIGRATION, OPERATION, "latency", "1.0"): float(np.median(control)),
            (MIGRATION, OPERATION, "cpu", "1.0"): float(np.median(cpu_control)),
        },
    )
    value = {"better": 1.0, "worse": -1.0, "inconclusive": 0.0, "no_data": 0.0}
    verdicts = _fleet(stack, "migration_fleet_verdict")
    # One series per (operation, candidate, metric), whatever the number of instances.
    assert len(verdicts) == 3, verdicts
    by_metric = {labels["migration_metric"]: v for labels, v in verdicts}
    assert by_metric == {v.metric: value[v.state] for v in python}
    assert by_metric["latency"] == -1.0, "2.0 is 30 % slower: the planted regression must be seen"
    assert by_metric["cpu"] == -1.0, "2.0 burns 30 % more CPU: the planted regression must be seen"
    # The CPU shift: Hodges-Lehmann on the pooled raw values, within the histogram's resolution.
    (effect,) = [
        v
        for labels, v in _fleet(stack, "migration_fleet_verdict_effect")
        if labels["migration_metric"] == "cpu"
    ]
    (cpu_python,) = [v for v in python if v.metric == "cpu"]
    assert abs(effect - cpu_python.estimate) <= 0.011 * float(np.median(cpu_control)), (effect, cpu_python)


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
    assert len(fleet("migration_fleet_verdict")) == 3 and verdicts["latency"] == -1.0, verdicts
    assert verdicts["cpu"] == -1.0, verdicts  # 2.0 spins 1 ms of CPU per call, 1.0 only sleeps
    cpu_p50 = {
        labels["migration_version"]: v
        for labels, v in fleet("migration_fleet_performance_cpu_seconds")
        if labels.get("migration_window") == "1h" and labels.get("migration_statistic") == "p50"
    }
    assert 0.001 * (1 - 0.0055) <= cpu_p50["2.0"] < 0.0015 and cpu_p50["1.0"] < 0.0005, cpu_p50
    instances = [
        v
        for labels, v in prometheus_samples(stack.prometheus_text(), "migration_fleet_instances")
        if labels.get("job") == service
    ]
    assert instances == [3.0]


# -- the fleet's health ------------------------------------------------------------------------------
HEALTH_SERVICE, HEALTH_MIGRATION = "fleet-health", "health-e2e"
HEALTH_MINUTES = 40
HEALTH_INSTANCES = ("h1", "h2", "h3")
HEALTH_CPU = (0.2, 0.5, 0.8)  # each instance's process.cpu.utilization
SLO_S = AnalyticsSettings().latency_slo_s


def _plan(first: int) -> dict[tuple[int, str, str], dict[str, Any]]:
    """(minute, instance, version) -> its calls: durations of the successful ones, errors by category.

    1.0 is steady but triples its calls in the last minute (a request surge); 2.0 gets slower in the
    last minute (a latency step), has 3 % slow calls, and its timeouts rise minute by minute.
    """
    rng = np.random.default_rng(17)
    plan = {}
    for k in range(HEALTH_MINUTES):
        last = k == HEALTH_MINUTES - 1
        for j, instance in enumerate(HEALTH_INSTANCES):
            n = int(rng.poisson(60 + 20 * j)) * (3 if last else 1)
            ok = rng.lognormal(math.log(0.08), 0.2, n)
            plan[(first + k, instance, "1.0")] = {
                "ok": ok,
                "errors": {"timeout": int(rng.binomial(n, 0.01))},
                "dropped": 2 if j == 0 else 0,
            }
            n = int(rng.poisson(50))
            ok = rng.lognormal(math.log(0.25 if last else 0.1), 0.25, n)
            ok[: max(1, n * 3 // 100)] = 0.9  # slow calls, beyond the 0.5 s objective
            plan[(first + k, instance, "2.0")] = {
                "ok": ok,
                "errors": {
                    "timeout": int(rng.binomial(n, 0.005 + 0.0015 * k)),
                    "network": int(rng.binomial(n, 0.01)),
                },
                "dropped": 0,
            }
    for calls in plan.values():
        # The objective is decided at bucket midpoints (0.55 %): keep every value clear of it.
        assert not np.any(np.abs(calls["ok"] / SLO_S - 1) < 0.01)
    return plan


def _health_export(
    stack: Stack, instance: str, start_ns: int, at_ns: int, totals: dict[str, dict[str, Any]], cpu: float
) -> None:
    """One process's cumulative export: calls, durations, errors by category, drops, CPU."""
    cumulative = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE

    def point(value: int, **attrs: str) -> metrics_pb2.NumberDataPoint:
        return metrics_pb2.NumberDataPoint(
            attributes=_kv(attrs), start_time_unix_nano=start_ns, time_unix_nano=at_ns, as_int=value
        )

    def counter(name: str, points: list[metrics_pb2.NumberDataPoint]) -> metrics_pb2.Metric:
        return metrics_pb2.Metric(
            name=name,
            sum=metrics_pb2.Sum(data_points=points, aggregation_temporality=cumulative, is_monotonic=True),
        )

    base = {"migration.name": HEALTH_MIGRATION, "migration.operation": OPERATION}
    calls, errors, histograms = [], [], []
    for version, t in totals.items():
        attrs = base | {"migration.version": version}
        failed = sum(t["errors"].values())
        calls += [
            point(int(t["ok"].size), **attrs, **{"migration.outcome": "ok"}),
            point(failed, **attrs, **{"migration.outcome": "error"}),
        ]
        errors += [
            point(n, **attrs, **{"error.type": f"{c.title()}Error", "migration.error.category": c})
            for c, n in sorted(t["errors"].items())
        ]
        hist = metrics_pb2.ExponentialHistogramDataPoint(
            attributes=_kv(attrs),
            start_time_unix_nano=start_ns,
            time_unix_nano=at_ns,
            count=int(t["ok"].size),
            sum=float(t["ok"].sum()),
            scale=SCALE,
        )
        if t["ok"].size:
            offset, counts = _histogram(t["ok"])
            hist.positive.offset, hist.positive.bucket_counts[:] = offset, counts
        histograms.append(hist)
    dropped = sum(t["dropped"] for t in totals.values())
    metrics = [
        counter("migration.state.calls", calls),
        counter("migration.errors", errors),
        counter("migration.telemetry.dropped", [point(dropped, reason="queue_full")]),
        metrics_pb2.Metric(
            name="migration.state.duration",
            unit="s",
            exponential_histogram=metrics_pb2.ExponentialHistogram(
                data_points=histograms, aggregation_temporality=cumulative
            ),
        ),
        metrics_pb2.Metric(
            name="process.cpu.utilization",
            unit="1",
            gauge=metrics_pb2.Gauge(
                data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=at_ns, as_double=cpu)]
            ),
        ),
    ]
    resource = resource_pb2.Resource(
        attributes=_kv({"service.name": HEALTH_SERVICE, "service.instance.id": instance})
    )
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(metrics=metrics)]
            )
        ]
    )
    _post(stack, "/v1/metrics", request.SerializeToString())


def _python_health(plan: dict[tuple[int, str, str], dict[str, Any]], now: float) -> dict[str, Any]:
    """The Python monitor's anomalies and trends on the pooled calls (the processes' calls as one)."""
    monitor = HealthMonitor(AnalyticsSettings(), clock=lambda: now)
    for (minute, _, version), calls in sorted(plan.items()):
        end = minute * 60 * 10**9 + 30 * 10**9
        scope = Scope(HEALTH_MIGRATION, OPERATION, version)
        for duration in calls["ok"]:
            monitor.on_call(CallRecord(scope, "ok", float(duration), end))
        for category, n in calls["errors"].items():
            for _ in range(n):
                monitor.on_call(CallRecord(scope, "error", 0.01, end, "E", category))
    return {v.version: v for v in monitor.evaluate().versions}


def test_the_fleets_health_is_the_python_functions_on_the_pooled_calls(stack: Stack) -> None:
    # Send everything, and read it back, inside one minute: the judged minute is the last one.
    wait_until(lambda: 2 <= time.time() % 60 <= 20, 70, "the start of a minute")
    now = time.time()
    current = int(now // 60)
    first = current - HEALTH_MINUTES
    plan = _plan(first)
    for instance, cpu in zip(HEALTH_INSTANCES, HEALTH_CPU, strict=True):
        start_ns = (first * 60 - 10) * 10**9
        totals = {
            v: {
                "ok": np.empty(0),
                "errors": {"timeout": 0, "network": 0} if v == "2.0" else {"timeout": 0},
                "dropped": 0,
            }
            for v in ("1.0", "2.0")
        }
        for minute in range(first - 1, current):  # the first export (all zero) starts the streams
            if minute >= first:
                for version, t in totals.items():
                    calls = plan[(minute, instance, version)]
                    t["ok"] = np.concatenate([t["ok"], calls["ok"]])
                    t["dropped"] += calls["dropped"]
                    for category, n in calls["errors"].items():
                        t["errors"][category] += n
            _health_export(stack, instance, start_ns, (minute + 1) * 60 * 10**9, totals, cpu)

    def fleet(name: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(
                v
                for k, v in sorted(labels.items())
                if k not in {"job", "migration_name"} and not k.startswith("otel_")
            ): value
            for labels, value in prometheus_samples(stack.prometheus_text(), name)
            if labels.get("job") == HEALTH_SERVICE and labels.get("migration_name") == HEALTH_MIGRATION
        }

    def judged() -> bool:
        return (
            len(fleet("migration_fleet_anomaly_score")) == 6
            and len(fleet("migration_fleet_error_trend")) == 3
        )

    wait_until(judged, 20, "the fleet's anomalies and trends")
    scores, factors = fleet("migration_fleet_health_score"), fleet("migration_fleet_health_factor")
    anomalies, z = fleet("migration_fleet_anomaly"), fleet("migration_fleet_anomaly_score")
    trends = fleet("migration_fleet_error_trend")
    assert int(time.time() // 60) == current, "the minute ended before the figures were read: rerun"
    print("fleet health:", scores, anomalies, trends)

    # Anomalies and trends: the Python monitor on the pooled calls, judged at the same minute.
    python = _python_health(plan, now)
    for version, health in python.items():
        assert {m for (m, v) in z if v == version} == set(health.anomalies), version
        for metric, a in health.anomalies.items():
            assert math.isclose(z[(metric, version)], a.z, rel_tol=1e-9, abs_tol=1e-9), (version, metric)
            assert anomalies[(metric, version)] == float(a.anomalous), (version, metric)
        for category, trend in health.trends.items():
            value = {"rising": 1.0, "falling": -1.0, "stable": 0.0}[trend.state]
            assert trends[(category, version)] == value, (version, category)
    assert anomalies[("request_rate", "1.0")] == 1.0, "1.0's surge"
    assert anomalies[("latency", "2.0")] == 1.0, "2.0's latency step"
    assert anomalies[("latency", "1.0")] == anomalies[("request_rate", "2.0")] == 0.0
    assert trends[("timeout", "2.0")] == 1.0, "2.0's rising timeouts"

    # The score: the documented formula on the fleet's last 5 minutes (the current one is empty).
    recent = [key for key in plan if key[0] >= current - 4]
    requests = {
        v: sum(plan[k]["ok"].size + sum(plan[k]["errors"].values()) for k in recent if k[2] == v)
        for v in ("1.0", "2.0")
    }
    dropped = sum(plan[k]["dropped"] for k in recent)
    loss = dropped / (dropped + sum(requests.values()))
    settings = AnalyticsSettings()
    for version in ("1.0", "2.0"):
        mine = [plan[k] for k in recent if k[2] == version]
        ok = np.concatenate([c["ok"] for c in mine])
        expected, parts = health_score(
            error_rate=sum(sum(c["errors"].values()) for c in mine) / requests[version],
            slow_share=float(np.sum(ok > SLO_S)) / ok.size,
            saturation=float(np.mean(HEALTH_CPU)),
            telemetry_loss=loss,
            error_budget=settings.error_budget,
            latency_budget=settings.latency_budget,
        )
        assert math.isclose(scores[(version,)], expected, rel_tol=1e-9), (version, scores, expected)
        for name in ("errors", "latency", "saturation", "telemetry_loss"):
            assert math.isclose(factors[(name, version)], getattr(parts, name), rel_tol=1e-9, abs_tol=1e-12)
    assert scores[("2.0",)] < scores[("1.0",)] < 100, "2.0's slow calls and errors cost it"
