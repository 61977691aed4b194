"""After ``os.fork`` every aggregate starts empty in the child; a master that serves nothing is no instance.

A pre-fork server (gunicorn, uwsgi) imports the application in a master and forks workers that
inherit its memory. Cumulative metrics a child inherited would be exported again by every child
(each a new ``service.instance.id``), so a backend summing over instances counts the parent's
calls once per child. The truth here is known from the inputs of ``scripts/fork_workload.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from .otlp_receiver import MetricPoint, OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "tests" / "scripts" / "fork_workload.py"


def _run(receiver: OTLPReceiver, tmp_path: Path, *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {**clean, **receiver.env(), "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_SERVICE_NAME": "forky"}
    result = subprocess.run(
        [sys.executable, str(WORKLOAD), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _totals(points: list[MetricPoint]) -> dict[str, float]:
    """Sum over instances of each metric's last point per series, as a backend summing by name would."""
    totals: dict[str, float] = defaultdict(float)
    for p in points:
        totals[p.name] += p.count if p.count is not None else (p.value or 0)
    return totals


def _by_operation(points: list[MetricPoint], name: str) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for p in points:
        if p.name == name:
            found[p.attributes["migration.operation"]] += p.count if p.count is not None else p.value or 0
    return dict(found)


def _instances(points: list[MetricPoint]) -> set[str]:
    return {p.resource["service.instance.id"] for p in points}


@pytest.mark.parametrize("protocol", ["grpc"])
def test_children_export_only_their_own_calls(protocol: str, tmp_path: Path) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        _run(
            receiver, tmp_path, "--parent-calls", "100", "--parent-llm", "50", "--children", "3",
            "--child-calls", "1000",
        )  # fmt: skip
        latest = receiver.latest_metrics()

    assert len(_instances(latest)) == 4  # the parent served calls: it is an instance too
    # The experiment's 5 runs are versioned calls too: one per side.
    assert _by_operation(latest, "migration.requests") == {"parent": 100, "forkexp": 10, "child": 3000}
    assert _by_operation(latest, "migration.duration") == {"parent": 100, "forkexp": 10, "child": 3000}
    totals = _totals(latest)
    assert totals["migration.llm.calls"] == 50
    assert totals["gen_ai.client.operation.duration"] == 50
    assert totals["migration.rollout.decisions"] == 100
    assert totals["migration.experiment.runs"] == 5
    assert totals["migration.quality.score"] == 10
    assert totals["migration.telemetry.dropped"] == 0


def test_a_master_that_serves_nothing_exports_nothing(tmp_path: Path) -> None:
    with OTLPReceiver("grpc") as receiver:
        _run(receiver, tmp_path, "--children", "3", "--child-calls", "1000")
        latest = receiver.latest_metrics()

    assert len(_instances(latest)) == 3  # the three workers, not the master
    assert _by_operation(latest, "migration.requests") == {"child": 3000}
    assert _by_operation(latest, "migration.duration") == {"child": 3000}
