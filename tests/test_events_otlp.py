"""Events reach a real OTLP receiver (gRPC and HTTP), named, in their trace, on the configured resource.

A subprocess: global providers can be installed once per process, and the point is what a fresh
application gets from ``configure(service_name=...)`` and ``OTEL_EXPORTER_OTLP_*`` alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .otlp_receiver import OTLPReceiver
from .test_otlp_export import run

SCRIPT = Path(__file__).resolve().parent / "scripts" / "events_app.py"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_events_reach_a_real_receiver_with_names_scope_trace_and_resource(
    protocol: str, tmp_path: Path
) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        env = {**receiver.env(), "OTEL_SERVICE_NAME": "overridden-by-configure"}
        run([sys.executable, str(SCRIPT)], env, tmp_path)

        records = receiver.wait_for_logs(lambda found: len([r for r in found if r.event_name]) >= 5)
        events = [r for r in records if r.event_name]
        assert [r.event_name for r in events] == [
            "migration.retry.attempted",
            "migration.retry.succeeded",
            "migration.circuit_breaker.opened",
            "migration.generation.started",
            "migration.generation.completed",
        ]
        assert all(r.scope_name == "otel_migration" for r in events)
        for record in events:
            assert record.resource["service.name"] == "checkout"  # configure() beats OTEL_SERVICE_NAME
            assert record.resource["service.version"] == "4.2.0"
            assert record.resource["deployment.environment.name"] == "staging"
        attempted, succeeded, opened, started, _ = events
        assert attempted.attributes == {
            "migration.name": "checkout-v2",
            "migration.operation": "charge",
            "migration.version": "2.0",
            "attempt": 1,
        }
        assert opened.severity_text == "WARN" and succeeded.severity_text == "INFO"
        assert started.attributes == {"model": "claude-haiku-4-5"} and started.trace_id == ""

        (charge,) = receiver.wait_for_spans(1, name="charge")
        assert {attempted.trace_id, succeeded.trace_id, opened.trace_id} == {charge.trace_id}
        assert attempted.span_id == charge.span_id
        assert charge.resource["service.name"] == "checkout"

        counted = {
            (p.attributes["migration.event.name"], p.attributes["migration.version"]): p.value
            for p in receiver.wait_for_metrics(1, name="migration.events")
        }
        assert counted == {
            ("migration.retry.attempted", "2.0"): 1,
            ("migration.retry.succeeded", "2.0"): 1,
            ("migration.circuit_breaker.opened", "2.0"): 1,
            ("migration.generation.started", ""): 1,
            ("migration.generation.completed", ""): 1,
        }
