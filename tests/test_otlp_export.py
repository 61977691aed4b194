"""OTLP export, both protocols, through the real exporters to a real receiver on loopback.

Each case runs in a subprocess: global providers can be installed only once per process, and the
point is to prove what a fresh application process gets from ``configure()`` and ``OTEL_*`` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "tests" / "scripts" / "workload.py"
PROTOCOLS = ["grpc", "http/protobuf"]


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        args,
        env={**clean, "OTEL_METRIC_EXPORT_INTERVAL": "60000", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_and_metrics_reach_a_real_receiver(protocol: str, tmp_path: Path) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        env = {
            **receiver.env(),
            "OTEL_SERVICE_NAME": "billing",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=7.1.0,deployment.environment.name=test",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
        }
        run([sys.executable, str(WORKLOAD), "--calls", "20"], env, tmp_path)

        spans = receiver.wait_for_spans(lambda s: len([x for x in s if x.name == "charge"]) >= 40)
        charges = [s for s in spans if s.name == "charge"]
        assert sorted({s.attributes["migration.version"] for s in charges}) == ["1.0", "2.0"]
        (failed,) = [s for s in charges if s.status_code == "ERROR"]
        assert failed.attributes["error.type"] == "TimeoutError"
        assert failed.attributes["migration.error.category"] == "timeout"
        assert "exception" in failed.event_names
        phases = [s for s in spans if s.name == "synthesis"]
        assert len(phases) == 19
        parents = {s.span_id: s for s in charges}
        assert all(parents[p.parent_span_id].attributes["migration.version"] == "2.0" for p in phases)
        assert charges[0].resource["service.name"] == "billing"
        assert charges[0].resource["service.version"] == "7.1.0"
        assert any(r.headers.get("x-tenant") == "acme" for r in receiver.requests("traces"))

        points = receiver.wait_for_metrics(lambda m: any(p.name == "migration.requests" for p in m))
        latest = {(p.name, tuple(sorted(p.attributes.items()))): p for p in points}
        requests = {
            (dict(attrs)["migration.version"], dict(attrs)["migration.outcome"]): p.value
            for (name, attrs), p in latest.items()
            if name == "migration.requests"
        }
        assert requests == {("1.0", "ok"): 20, ("2.0", "ok"): 19, ("2.0", "error"): 1}
        durations = [p for (name, _), p in latest.items() if name == "migration.duration"]
        assert sum(p.count for p in durations) == 40
        assert all(list(p.explicit_bounds[:3]) == [0.0005, 0.001, 0.0025] for p in durations)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forked_child_still_exports(protocol: str, tmp_path: Path) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        result = run([sys.executable, str(WORKLOAD), "--calls", "15", "--fork"], receiver.env(), tmp_path)
        assert "child served 15" in result.stdout
        spans = receiver.wait_for_spans(
            lambda s: {x.name for x in s} >= {"child", "parent"} and len(s) >= 30, timeout=20
        )
        assert len([s for s in spans if s.name == "child"]) == 15
        assert len([s for s in spans if s.name == "parent"]) == 15
        points = receiver.wait_for_metrics(
            lambda m: {dict(p.attributes).get("migration.operation") for p in m} >= {"child", "parent"}
        )
        counted = {}
        for p in points:
            if p.name == "migration.requests":
                counted[p.attributes["migration.operation"]] = p.value
        assert counted == {"child": 15, "parent": 15}  # the child does not re-export the parent's counts


def test_default_without_endpoint_writes_otlp_json_lines(tmp_path: Path) -> None:
    import json

    run([sys.executable, str(WORKLOAD), "--calls", "14"], {}, tmp_path)  # call 13 fails
    lines = (tmp_path / "otel-migration-telemetry.jsonl").read_text().splitlines()
    documents = [json.loads(line) for line in lines]
    spans = [
        span
        for doc in documents
        for rs in doc.get("resourceSpans", [])
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    assert len([s for s in spans if s["name"] == "charge"]) == 28
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)  # hex, not base64
    assert all(isinstance(s["kind"], int) for s in spans)  # OTLP/JSON: enums as integers
    metric_names = {
        m["name"]
        for doc in documents
        for rm in doc.get("resourceMetrics", [])
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
    }
    assert {"migration.requests", "migration.duration", "migration.errors"} <= metric_names
