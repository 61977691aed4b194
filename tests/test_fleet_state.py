"""The mergeable state every process exports for the fleet (docs/fleet.md), read back from the real SDK."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import otel_migration
from otel_migration._analytics.fleet import FleetState, views
from otel_migration._analytics.sketch import RELATIVE_ERROR, HyperLogLog
from otel_migration._core.subjects import pseudonymize


class Fleet:
    def __init__(self) -> None:
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], views=views())
        self.tracer_provider = TracerProvider()
        self.telemetry = otel_migration.configure(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            logger_provider=self.logger_provider,
            subject_key="fleet-test-key-0123456789",
        )

    def metric(self, name: str) -> list[Any]:
        self.telemetry.recorder.drain()
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for point in m.data.data_points
        ]

    def sketches(self) -> list[Any]:
        return [
            record.log_record
            for record in self.logs.get_finished_logs()
            if record.log_record.event_name == "migration.state.sketch"
        ]


@pytest.fixture
def fleet(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.chdir(tmp_path)
    f = Fleet()
    yield f
    otel_migration.shutdown()
    f.tracer_provider.shutdown()
    f.meter_provider.shutdown()
    f.logger_provider.shutdown()


def _run(users: int, version: str, *, fail_every: int = 0) -> None:
    charge = otel_migration.versioned(version, operation="charge", migration="fleet")

    @charge
    def call(i: int) -> None:
        if fail_every and i % fail_every == 0:
            raise ValueError("declined")

    for i in range(users):
        with (
            otel_migration.subject(f"user-{i}", session=f"session-{i % 50}"),
            contextlib.suppress(ValueError),
        ):
            call(i)


def test_calls_are_cumulative_sums_by_outcome(fleet: Fleet) -> None:
    _run(300, "1.0", fail_every=10)
    _run(200, "2.0")
    counts = {
        (p.attributes["migration.version"], p.attributes["migration.outcome"]): p.value
        for p in fleet.metric("migration.state.calls")
    }
    assert counts == {("1.0", "ok"): 270, ("1.0", "error"): 30, ("2.0", "ok"): 200}


def test_durations_are_exponential_histograms_of_successful_calls(fleet: Fleet) -> None:
    _run(300, "1.0", fail_every=10)
    (point,) = [
        p for p in fleet.metric("migration.state.duration") if p.attributes["migration.version"] == "1.0"
    ]
    assert point.count == 270  # failures end early: they would flatter latency
    assert point.scale <= 6 and point.positive.bucket_counts  # base-2 exponential, at most scale 6
    assert sum(point.positive.bucket_counts) + point.zero_count == 270


def _burn(seconds: float) -> None:
    """Spin on this thread's CPU clock until it advanced by ``seconds``."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_is_an_exponential_histogram_of_successful_calls(fleet: Fleet) -> None:
    @otel_migration.versioned("2.0", operation="charge", migration="fleet")
    def burn(i: int) -> None:
        if i % 10 == 0:
            raise ValueError("declined")
        _burn(0.002)

    @otel_migration.versioned("1.0", operation="charge", migration="fleet")
    def sleep(i: int) -> None:
        time.sleep(0.002)

    for i in range(60):
        with contextlib.suppress(ValueError):
            burn(i)
        sleep(i)
    points = {p.attributes["migration.version"]: p for p in fleet.metric("migration.state.cpu")}
    assert set(points) == {"1.0", "2.0"}
    assert {k for p in points.values() for k in p.attributes} == {
        "migration.name",
        "migration.operation",
        "migration.version",
    }
    burnt, slept = points["2.0"], points["1.0"]
    assert (burnt.count, slept.count) == (54, 60)  # failures end early, as for durations
    assert burnt.scale <= 6 and sum(burnt.positive.bucket_counts) + burnt.zero_count == 54
    # The same values as the per-process migration.cpu_time histogram of the successful calls.
    per_process = {
        p.attributes["migration.version"]: p
        for p in fleet.metric("migration.cpu_time")
        if p.attributes["migration.outcome"] == "ok"
    }
    for version, point in points.items():
        assert point.count == per_process[version].count
        assert point.sum == pytest.approx(per_process[version].sum, rel=1e-12)
    assert burnt.sum / burnt.count == pytest.approx(0.002, rel=0.5)  # each spun 2 ms of CPU
    assert slept.sum / slept.count < 0.0005  # sleeping costs next to no CPU


def test_without_cpu_measurement_there_is_no_cpu_state(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=views())
    tracer_provider = TracerProvider()
    telemetry = otel_migration.configure(
        tracer_provider=tracer_provider, meter_provider=meter_provider, measure_cpu=False
    )
    try:
        _run(20, "1.0")
        telemetry.recorder.drain()
        data = reader.get_metrics_data()
        names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert "migration.state.duration" in names and "migration.state.cpu" not in names
    finally:
        otel_migration.shutdown()
        meter_provider.shutdown()


def test_sketches_ship_as_log_records_that_merge_to_the_distinct_users(fleet: Fleet) -> None:
    _run(3000, "1.0")
    _run(1000, "2.0")
    otel_migration.force_flush()
    records = fleet.sketches()
    kinds = {(r.attributes["migration.version"], r.attributes["migration.sketch.kind"]) for r in records}
    assert kinds == {("1.0", "users"), ("1.0", "sessions"), ("2.0", "users"), ("2.0", "sessions")}
    merged: dict[tuple[str, str], HyperLogLog] = {}
    for r in records:
        assert r.attributes["migration.sketch.precision"] == 12
        assert r.attributes["migration.sketch.bucket.width"] == 300
        assert r.attributes["migration.sketch.bucket.start"] % 300 == 0
        assert isinstance(r.body, bytes) and len(r.body) == 4096
        key = (r.attributes["migration.version"], r.attributes["migration.sketch.kind"])
        sketch = HyperLogLog(np.frombuffer(r.body, dtype=np.uint8).copy())
        merged.setdefault(key, HyperLogLog()).merge(sketch)
    for version, users in (("1.0", 3000), ("2.0", 1000)):
        assert merged[(version, "users")].estimate() == pytest.approx(users, rel=3 * RELATIVE_ERROR)
        assert merged[(version, "sessions")].estimate() == pytest.approx(50, rel=3 * RELATIVE_ERROR)


def test_a_sketch_is_the_pseudonyms_sketch_and_no_raw_id_leaves(fleet: Fleet) -> None:
    _run(5, "2.0")
    otel_migration.force_flush()
    users = [r for r in fleet.sketches() if r.attributes["migration.sketch.kind"] == "users"]
    expected = HyperLogLog()
    for i in range(5):
        expected.add(int(pseudonymize(f"user-{i}"), 16))
    assert users[-1].body == expected.registers.tobytes()  # the last shipped is the whole sketch
    assert all(b"user-" not in r.body for r in users)


def test_users_with_an_error_have_a_sketch_of_their_own(fleet: Fleet) -> None:
    _run(1000, "1.0", fail_every=4)
    otel_migration.force_flush()
    # The aggregator's tick may have shipped the bucket before the flush did: sketches merge.
    sketch = HyperLogLog()
    for r in fleet.sketches():
        if r.attributes["migration.sketch.kind"] == "error_users":
            sketch.merge(HyperLogLog(np.frombuffer(r.body, dtype=np.uint8).copy()))
    assert sketch.estimate() == pytest.approx(250, rel=3 * RELATIVE_ERROR)


def test_an_unchanged_sketch_is_not_shipped_again(fleet: Fleet) -> None:
    _run(10, "1.0")
    otel_migration.force_flush()
    shipped = len(fleet.sketches())
    otel_migration.force_flush()
    assert len(fleet.sketches()) == shipped
    _run(1, "1.0")
    otel_migration.force_flush()
    assert len(fleet.sketches()) > shipped


def test_llm_cost_tokens_and_quality_state(fleet: Fleet) -> None:
    with otel_migration.versioned("2.0", operation="answer", migration="fleet"):
        for _ in range(4):
            otel_migration.record_llm_call(model="claude-3-5-haiku", input_tokens=1000, output_tokens=100)
        otel_migration.record_quality(80, tier="haiku")
        otel_migration.record_quality(60, tier="sonnet")
        otel_migration.record_action("approved", tier="haiku")
        otel_migration.record_action("edited", tier="sonnet")
        otel_migration.record_feedback(10, scale="nps", tier="haiku")
    (cost,) = fleet.metric("migration.state.llm.cost")
    assert cost.count == 4 and cost.sum == pytest.approx(4 * (1000 * 0.8 + 100 * 4) / 1e6)
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in fleet.metric("migration.state.llm.tokens")}
    assert tokens == {"input": 4000, "output": 400}
    (scores,) = fleet.metric("migration.state.quality.score")
    assert scores.count == 2 and scores.sum == 140
    actions = {
        p.attributes["migration.quality.action"]: p.value
        for p in fleet.metric("migration.state.quality.actions")
    }
    assert actions == {"approved": 1, "edited": 1}  # summed over tiers: the fleet merges per version
    (nps,) = fleet.metric("migration.state.quality.nps")
    assert nps.attributes["migration.nps_class"] == "promoter" and nps.value == 1


def test_without_a_logger_provider_the_state_stays_in_process(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    telemetry = otel_migration.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        _run(3, "1.0")
        otel_migration.force_flush()  # ships to nowhere, raises nothing
        assert telemetry.get(FleetState).ship() == 0
    finally:
        otel_migration.shutdown()
        meter_provider.shutdown()
