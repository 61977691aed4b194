"""Zero-code start under opentelemetry-instrument, and a collector outage that is counted, not silent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "OTEL_METRIC_EXPORT_INTERVAL": "60000", **extra}


def test_opentelemetry_instrument_wraps_configured_targets_without_code_change() -> None:
    instrument = BIN / "opentelemetry-instrument"
    assert instrument.exists(), "opentelemetry-instrumentation provides the command"
    with OTLPReceiver("http/protobuf") as receiver:
        env = clean_env(**receiver.env(), OTEL_SERVICE_NAME="billing-app")
        result = subprocess.run(
            [str(instrument), sys.executable, "app.py", "30"],
            cwd=ROOT / "examples",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        spans = receiver.wait_for_spans(lambda s: len([x for x in s if x.name == "charge"]) >= 30, timeout=20)
        charges = [s for s in spans if s.name == "charge"]
        assert {s.attributes["migration.version"] for s in charges} == {"1.0", "2.0"}
        assert {s.attributes["migration.name"] for s in charges} == {"billing"}
        assert {s.attributes["code.function.name"] for s in charges} == {
            "billing.legacy.charge",
            "billing.next.Billing.charge",
        }
        phases = {s.name for s in spans if "migration.phase" in s.attributes}
        assert phases == {"extraction", "analysis", "synthesis"}
        assert charges[0].resource["service.name"] == "billing-app"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_collector_outage_is_counted_and_never_blocks_calls(protocol: str, tmp_path: Path) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        receiver.behaviour = "unavailable"
        env = clean_env(**receiver.env(), OTEL_EXPORTER_OTLP_TIMEOUT="1", OTEL_BSP_SCHEDULE_DELAY="60000")
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "scripts" / "dead_collector.py")],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None and process.stdin is not None
            line = process.stdout.readline()
            assert line.startswith("exported-while-down"), process.stderr.read() if process.stderr else ""
            assert receiver.spans() == []
            receiver.behaviour = "ok"
            process.stdin.write("go\n")
            process.stdin.flush()
            assert process.wait(timeout=60) == 0
        finally:
            process.kill()
        points = receiver.wait_for_metrics(
            lambda m: any(p.name == "migration.telemetry.spans.failed" for p in m)
        )
        (failed,) = [p for p in points if p.name == "migration.telemetry.spans.failed"]
        assert failed.value == 25  # every span lost to the outage is counted and reported
        assert receiver.spans() == []  # ...and none of them arrived: the count is exactly what was lost
        queue = [p for p in points if p.name == "otel.sdk.processor.span.processed"]
        assert queue and not any(p.attributes.get("error.type") == "queue_full" for p in queue)
        requests = [p for p in points if p.name == "migration.requests"]
        assert sum(p.value for p in requests) == 25  # and the calls themselves were all counted
