"""End to end: an instrumented application -> the real collector -> the real Jaeger and Prometheus.

The collector and Jaeger are the real programs (built from Go modules by collector_config/build.sh),
started on free loopback ports and always stopped. What is asserted is what a user sees: traces in
Jaeger's HTTP API with version, operation, phase and cost, and span-metrics series per version with
the right counts on the collector's Prometheus endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from otel_migration._llm.pricing import PriceTable

from .stack import ROOT, Stack, binaries, prometheus_samples, span_tags, wait_until

pytestmark = pytest.mark.e2e

APP = ROOT / "tests" / "scripts" / "e2e_app.py"
V1_CALLS, V2_CALLS = 7, 11


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    otelcol, jaeger = binaries()
    with Stack(tmp_path_factory.mktemp("stack"), otelcol, jaeger) as running:
        yield running


def run_app(stack: Stack, service: str, protocol: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= stack.otlp_env(protocol) | {"OTEL_SERVICE_NAME": service}
    result = subprocess.run(
        [sys.executable, str(APP), str(V1_CALLS), str(V2_CALLS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def all_spans(stack: Stack, service: str) -> list[dict[str, object]]:
    return [span for trace in stack.jaeger_traces(service) for span in trace["spans"]]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_traces_reach_jaeger_with_version_phase_and_cost(stack: Stack, protocol: str) -> None:
    service = f"e2e-billing-{protocol.replace('/', '-')}"
    run_app(stack, service, protocol)
    expected_spans = V1_CALLS + 2 * V2_CALLS + 3  # charges, their phases, summarize + phase + LLM call
    wait_until(lambda: len(all_spans(stack, service)) >= expected_spans, 60, "every span in Jaeger")
    assert service in stack.jaeger_services()

    spans = all_spans(stack, service)
    assert len(spans) == expected_spans
    by_name: dict[str, list[dict[str, object]]] = {}
    for span in spans:
        by_name.setdefault(str(span["operationName"]), []).append(span_tags(span))
    charges = by_name["charge"]
    assert sorted(t["migration.version"] for t in charges).count("1.0") == V1_CALLS
    assert sorted(t["migration.version"] for t in charges).count("2.0") == V2_CALLS
    assert {t["migration.operation"] for t in charges} == {"charge"}
    (failed,) = [t for t in charges if t.get("error") is True or t.get("otel.status_code") == "ERROR"]
    assert failed["error.type"] == "tests.scripts.e2e_app.CardDeclined" or failed["error.type"].endswith(
        "CardDeclined"
    )
    assert failed["migration.error.category"] == "runtime"
    assert {t["migration.phase"] for t in by_name["synthesis"]} == {"synthesis"}

    # The LLM span came with tokens and no cost: the collector's generated rules priced it.
    (llm,) = by_name["chat claude-3-5-haiku"]
    price = PriceTable.load().lookup("claude-3-5-haiku-20241022")
    assert price is not None
    expected_cost = price.cost(input_tokens=12_000, output_tokens=800, cache_read_tokens=2_000)
    assert llm["migration.llm.cost"] == pytest.approx(expected_cost, rel=1e-12)
    assert llm["migration.llm.tier"] == "haiku"


def test_span_metrics_and_sdk_metrics_per_version_on_prometheus(stack: Stack) -> None:
    service = "e2e-metrics"
    run_app(stack, service, "grpc")

    def series() -> dict[tuple[str, str], float]:
        found: dict[tuple[str, str], float] = {}
        for labels, value in prometheus_samples(stack.prometheus_text(), "traces_span_metrics_calls_total"):
            if labels.get("service_name") == service and labels.get("span_name") == "charge":
                key = (labels["migration_version"], labels.get("status_code", ""))
                found[key] = found.get(key, 0) + value
        return found

    wait_until(lambda: sum(series().values()) >= V1_CALLS + V2_CALLS, 60, "span metrics for every charge")
    calls = series()
    assert calls == {
        ("1.0", "STATUS_CODE_ERROR"): 1,
        ("1.0", "STATUS_CODE_UNSET"): V1_CALLS - 1,
        ("2.0", "STATUS_CODE_UNSET"): V2_CALLS,
    }

    text = stack.prometheus_text()
    requests = {
        (labels["migration_version"], labels["migration_outcome"]): value
        for labels, value in prometheus_samples(text, "migration_requests_total")
        if labels.get("job") == service and labels.get("migration_operation") == "charge"
    }
    assert requests == {("1.0", "ok"): V1_CALLS - 1, ("1.0", "error"): 1, ("2.0", "ok"): V2_CALLS}
