"""Issue 11's scale-out layout: a first-tier collector routing by service to two aggregating collectors.

The first tier runs the shipped ``collector_config/otelcol-gateway.yaml`` (the contrib load-balancing
exporter, ``routing_key: service``, static resolver); each aggregator runs the shipped ``otelcol.yaml``
with the ``migration_analytics`` component. One Prometheus scrapes both aggregators.

Two services are needed so that both aggregators are used; which aggregator a service lands on
depends on the aggregators' endpoints (free ports, so different each run). The test asks the real
first tier: it sends a probe gauge for ten candidate service names and reads on which aggregator
each arrived, then takes one name routed to each.

Each service runs the gunicorn workload of tests/e2e/test_fleet_gunicorn.py on a smaller scale
(a replica of two workers and one of one, 600 users) through the first tier. At Prometheus each
service's figures equal its own pooled ground truth as in that test (requests exact, distinct users
within the sketch's error, p95 within the histogram's, Python's verdicts), and each service's fleet
series come exactly once, from the aggregator its data was routed to, none from the other one.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from .stack import CONFIG, Process, binaries, free_port, http_get, prometheus_samples, wait_until
from .test_fleet_gunicorn import (
    MIGRATION,
    FleetStack,
    Gunicorn,
    Prometheus,
    Truth,
    check_fleet_figures,
    rules_copy,
    sdk_env,
    send_users,
)

pytestmark = pytest.mark.e2e

USERS = 600
PROBE = "fleet_route_probe"


@dataclass
class Aggregator(FleetStack):
    """An aggregating collector (the shipped otelcol.yaml); the second one uses the first one's Jaeger."""

    jaeger_grpc: str = ""

    def start_jaeger(self) -> None:
        if not self.jaeger_grpc:
            super().start_jaeger()

    def collector_env(self) -> dict[str, str]:
        env = super().collector_env()
        if self.jaeger_grpc:
            env["JAEGER_OTLP_GRPC_ENDPOINT"] = self.jaeger_grpc
        return env

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def prometheus_target(self) -> str:
        return f"127.0.0.1:{self.ports['prometheus']}"


class Gateway:
    """The first tier: otelcol-gateway.yaml in the real collector, routing to the given aggregators."""

    def __init__(self, otelcol: Path, work: Path, aggregators: list[str]) -> None:
        taken: set[int] = set()
        self.ports = {name: free_port(taken) for name in ("otlp_grpc", "otlp_http", "health", "self_metrics")}
        env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.ports['otlp_grpc']}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.ports['otlp_http']}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{self.ports['health']}",
            "OTELCOL_SELF_METRICS_PORT": str(self.ports["self_metrics"]),
            "OTELCOL_AGGREGATORS": json.dumps(aggregators),
        }
        args = [str(otelcol), f"--config={CONFIG / 'otelcol-gateway.yaml'}"]
        self.process = Process("gateway", args, env, work / "gateway.log")

    def __enter__(self) -> Gateway:
        self.process.start()
        try:
            wait_until(
                lambda: http_get(f"http://127.0.0.1:{self.ports['health']}/")[0] == 200,
                60,
                "the first-tier collector's health check",
                self.process,
            )
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def otlp_env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.ports['otlp_http']}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }

    def probe(self, services: list[str]) -> None:
        """One gauge per candidate service name, through the first tier's OTLP/HTTP receiver."""
        point = metrics_pb2.NumberDataPoint(time_unix_nano=time.time_ns(), as_int=1)
        request = metrics_service_pb2.ExportMetricsServiceRequest(
            resource_metrics=[
                metrics_pb2.ResourceMetrics(
                    resource=resource_pb2.Resource(
                        attributes=[
                            common_pb2.KeyValue(
                                key="service.name", value=common_pb2.AnyValue(string_value=service)
                            )
                        ]
                    ),
                    scope_metrics=[
                        metrics_pb2.ScopeMetrics(
                            metrics=[
                                metrics_pb2.Metric(
                                    name=PROBE,
                                    gauge=metrics_pb2.Gauge(data_points=[point]),
                                )
                            ]
                        )
                    ],
                )
                for service in services
            ]
        )
        post = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['otlp_http']}/v1/metrics",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200


def routed(aggregators: list[Aggregator], services: list[str]) -> dict[str, int]:
    """Service -> index of the aggregator whose Prometheus endpoint shows its probe."""
    where: dict[str, int] = {}
    for index, aggregator in enumerate(aggregators):
        for labels, _ in prometheus_samples(aggregator.prometheus_text(), PROBE):
            assert labels["job"] not in where, f"{labels['job']} reached both aggregators"
            where[labels["job"]] = index
    return where


def wait_for_records(truth: Path, wrapper: Path) -> None:
    """Until the SDK's records (each worker's aggregator thread logs them) match the app's calls."""
    calls = len(truth.read_text().splitlines())
    wait_until(lambda: len(wrapper.read_text().splitlines()) == calls, 30, "the SDK's records")


@dataclass
class TwoTier:
    prometheus: Prometheus
    aggregators: list[Aggregator]
    services: list[str]  # services[i] is routed to aggregators[i]
    truths: dict[str, Truth]


@pytest.fixture(scope="module")
def two_tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoTier]:
    work = tmp_path_factory.mktemp("fleet-gateway")
    otelcol, jaeger = binaries()
    (work / "a").mkdir()
    (work / "b").mkdir()
    with Aggregator(work / "a", otelcol, jaeger) as first:
        second = Aggregator(
            work / "b", otelcol, jaeger, jaeger_grpc=f"127.0.0.1:{first.ports['jaeger_grpc']}"
        )
        with second, Gateway(otelcol, work, [first.otlp_grpc, second.otlp_grpc]) as gateway:
            aggregators = [first, second]
            candidates = [f"fleet-gw-{i}" for i in range(10)]
            gateway.probe(candidates)
            wait_until(
                lambda: len(routed(aggregators, candidates)) == 10, 30, "the probes at the aggregators"
            )
            where = routed(aggregators, candidates)
            print("routing of the candidate services:", where)
            services = [next(s for s in candidates if where[s] == i) for i in (0, 1)]
            rules = rules_copy(work)
            targets = [a.prometheus_target for a in aggregators]
            with Prometheus(work, targets, rules) as prometheus:
                replicas: list[Gunicorn] = []
                try:
                    paths = {}
                    for service in services:
                        paths[service] = (work / f"{service}.truth.jsonl", work / f"{service}.wrapper.jsonl")
                        env = sdk_env(gateway.otlp_env(), service, *paths[service])
                        replicas += [
                            Gunicorn(f"{service}-a", 2, env, work / f"{service}-a.log"),
                            Gunicorn(f"{service}-b", 1, env, work / f"{service}-b.log"),
                        ]
                    for replica in replicas:
                        replica.start()
                    for replica in replicas:
                        wait_until(replica.ready, 60, f"gunicorn {replica.name}")
                    for i in range(len(services)):
                        send_users([r.port for r in replicas[2 * i : 2 * i + 2]], range(USERS), threads=8)
                    truths = {}
                    for service, (truth, wrapper) in paths.items():
                        wait_for_records(truth, wrapper)
                        truths[service] = Truth.read(truth, wrapper)
                    yield TwoTier(prometheus, aggregators, services, truths)
                finally:
                    for replica in replicas:
                        replica.stop()


def test_each_service_meets_in_one_aggregator_and_its_figures_equal_its_truth(two_tier: TwoTier) -> None:
    prometheus = two_tier.prometheus
    for index, service in enumerate(two_tier.services):
        check_fleet_figures(prometheus, two_tier.truths[service], service, MIGRATION)
        # Exactly once: one series per version, and all from the aggregator the service was routed to.
        requests = prometheus.query(f'migration_fleet_requests{{job="{service}", migration_window="1h"}}')
        assert sorted(labels["migration_version"] for labels, _ in requests) == ["1.0", "2.0"], requests
        own = two_tier.aggregators[index].prometheus_target
        assert {labels["instance"] for labels, _ in requests} == {own}, requests
        fleet_series = prometheus.query(f'{{job="{service}", __name__=~"migration_fleet_.+"}}')
        assert {labels["instance"] for labels, _ in fleet_series} == {own}, "a fleet series from elsewhere"
        instances = prometheus.query(f'migration_fleet_instances{{job="{service}"}}')
        assert [v for _, v in instances] == [3.0], instances  # 2 + 1 workers, every one through the gateway
