"""The short version of benchmarks/collector_load.py, in every `make test`: load plus a collector outage.

200 calls/s for 15 s from 10,000 simulated users, traces sampled at 10 %, the collector stopped for
5 s in the middle. The long run (300/s for 60 s, 30 s outage) is `python benchmarks/collector_load.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .stack import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from collector_load import run_load

pytestmark = pytest.mark.e2e


def test_exact_counts_and_accounted_losses_through_an_outage(tmp_path: Path) -> None:
    report = run_load(tmp_path, rate=200, duration=15, outage=(5.0, 10.0))
    calls = report["calls"]
    assert sum(calls.values()) == 3000
    assert report["calls_dropped"] == 0

    # Every call counted exactly at the Prometheus endpoint, the outage notwithstanding.
    assert report["prometheus_requests"] == {version: float(n) for version, n in calls.items()}

    # Every delivered span is in Jaeger; what is missing is exactly what the SDK reported lost.
    assert report["jaeger_spans"] == report["spans_delivered"]
    lost = report["sampled"] - report["spans_delivered"]
    assert lost == report["spans_failed"] + report["spans_queue_dropped"]
    assert lost > 0, "the outage should have cost some spans; otherwise this test proves nothing"

    # The caller never waited on the dead collector, and memory stayed bounded.
    latency = report["latency_us"]
    assert latency["during"]["max"] < 1_000_000  # an export timeout (2 s) on the call path would show here
    assert latency["during"]["p99"] < 3 * latency["before"]["p99"] + 5_000
    assert report["rss_mb"]["max"] - report["rss_mb"]["start"] < 50
