"""Migration analytics against ground truth computed from the same known inputs."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from otel_migration._analytics.engine import Guard, MigrationAnalytics
from otel_migration._analytics.sketch import RELATIVE_ERROR
from otel_migration._core.config import AnalyticsSettings
from otel_migration._rollouts.rollout import registry

from .simulation import record

T0 = 1_800_000_000.0  # a fixed "now" on a 5-minute boundary


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def analytics(clock: Clock, **settings: float) -> MigrationAnalytics:
    return MigrationAnalytics(AnalyticsSettings(**settings), registry.get, clock)  # type: ignore[arg-type]


def test_percentiles_and_improvement_equal_numpy_on_the_same_data() -> None:
    clock = Clock()
    a = analytics(clock)
    rng = np.random.default_rng(1)
    v1, v2 = rng.lognormal(-3, 0.5, 800), rng.lognormal(-3.3, 0.5, 900)
    for d in v1:
        a.on_call(record("m", "charge", "1.0", float(d), T0 - 10))
    for d in v2:
        a.on_call(record("m", "charge", "2.0", float(d), T0 - 10))
    snap = a.evaluate().migrations["m"]
    stats = {s.version: s for s in snap.latency}
    for version, data in (("1.0", v1), ("2.0", v2)):
        s = stats[version]
        assert s.n == data.size
        assert (s.p50, s.p95, s.p99) == tuple(float(x) for x in np.percentile(data, [50, 95, 99]))
        assert s.mean == pytest.approx(float(data.mean()), rel=1e-12)
    (imp,) = snap.improvements
    assert imp.mean_pct == pytest.approx((v1.mean() - v2.mean()) / v1.mean() * 100, rel=1e-9)
    assert imp.p95_pct == pytest.approx(
        (np.percentile(v1, 95) - np.percentile(v2, 95)) / np.percentile(v1, 95) * 100, rel=1e-9
    )


def test_latency_ring_is_bounded_to_the_most_recent_calls() -> None:
    a = analytics(Clock(), latency_samples=100)
    for i in range(1000):
        a.on_call(record("m", "op", "1.0", float(i), T0 - 1))
    (stats,) = a.evaluate().migrations["m"].latency
    assert stats.n == 100 and stats.mean == pytest.approx(np.mean(np.arange(900, 1000)))


def test_adoption_users_ratio_and_stage_against_exact_counts() -> None:
    clock = Clock()
    a = analytics(clock)
    users_v1 = [f"u{i}" for i in range(3000)]
    users_v2 = [f"u{i}" for i in range(3000, 5000)]
    for i, user in enumerate(users_v1 * 2):  # every user twice: unique counts must not double
        a.on_call(record("m", "op", "1.0", 0.01, T0 - 1 - i % 3000 * 1.0, user=user))
    for user in users_v2:
        a.on_call(record("m", "op", "2.0", 0.01, T0 - 5, user=user))
    adoption = a.evaluate().migrations["m"].adoption
    by_version = {v.version: v for v in adoption.versions}
    for version, exact in (("1.0", 3000), ("2.0", 2000)):
        assert abs(by_version[version].users_24h - exact) / exact < 4 * RELATIVE_ERROR
    assert by_version["1.0"].requests_24h == 6000
    assert abs(adoption.ratio_24h - 0.4) < 0.03
    assert adoption.stage == "low"
    assert adoption.stalled is False


def test_windows_forget_old_calls() -> None:
    clock = Clock()
    a = analytics(clock)
    a.on_call(record("m", "op", "1.0", 0.01, T0 - 2 * 3600, user="old"))  # outside the hour, inside the day
    a.on_call(record("m", "op", "1.0", 0.01, T0 - 60, user="new"))
    (v,) = a.evaluate().migrations["m"].adoption.versions
    assert (v.requests_1h, v.requests_24h) == (1, 2)
    clock.now += 25 * 3600
    (v,) = a.evaluate().migrations["m"].adoption.versions
    assert (v.requests_1h, v.requests_24h) == (0, 0)


def test_adoption_stalls_when_the_ratio_does_not_move() -> None:
    clock = Clock()
    a = analytics(clock, stall_after_s=1800.0, evaluate_every_s=1.0)
    for i in range(400):
        a.on_call(record("m", "op", "1.0" if i % 4 else "2.0", 0.01, T0 - 1, user=f"u{i}"))
    assert a.evaluate().migrations["m"].adoption.stalled is False  # no history yet
    for _ in range(7):
        clock.now += 300
        snap = a.evaluate().migrations["m"].adoption
    assert snap.stage == "low" and snap.stalled is True
    for i in range(400, 800):  # the ramp moves again
        a.on_call(record("m", "op", "2.0", 0.01, clock.now - 1, user=f"u{i}"))
    assert a.evaluate().migrations["m"].adoption.stalled is False


def test_error_rates_categories_error_free_users_and_spike() -> None:
    clock = Clock(T0 + 100)  # 100 s into the current 5-minute bucket
    a = analytics(clock)
    # The hour before: 1,000 calls per version, 1 % timeouts on 2.0.
    for i in range(1000):
        at = T0 - 3000 + i
        a.on_call(record("m", "op", "1.0", 0.01, at, user=f"a{i % 100}"))
        a.on_call(
            record("m", "op", "2.0", 0.01, at, user=f"b{i % 100}", error="timeout" if i % 100 == 0 else None)
        )
    # The last 100 s: 200 calls on 2.0, 30 of them network errors (a spike), 2 timeouts (not a spike).
    for i in range(200):
        error = "network" if i < 30 else "timeout" if i < 32 else None
        a.on_call(record("m", "op", "2.0", 0.01, T0 + i * 0.5, user=f"b{i % 100}", error=error))
    errors = {e.version: e for e in a.evaluate().migrations["m"].errors}
    assert errors["1.0"].errors == 0 and errors["1.0"].error_rate == 0
    assert (errors["2.0"].requests, errors["2.0"].errors) == (1200, 42)
    assert errors["2.0"].error_rate == pytest.approx(42 / 1200)
    assert dict(errors["2.0"].categories) == {"timeout": 12, "network": 30}
    assert errors["2.0"].spikes == ("network",)
    # Users with an error among 2.0's 100 users: b0 (timeouts) and b0..b31 in the last 100 s.
    assert errors["2.0"].error_free_user_rate == pytest.approx(1 - 32 / 100, abs=0.03)


def test_verdicts_better_worse_inconclusive_with_reasons() -> None:
    clock = Clock()
    a = analytics(clock)
    rng = np.random.default_rng(7)
    n = 400
    cases = {"slower": 1.25, "faster": 0.75, "same": 1.0}
    for operation, factor in cases.items():
        for d in rng.lognormal(-4, 0.3, n):
            a.on_call(record("m", operation, "1.0", float(d), T0 - 1))
        for d in rng.lognormal(-4, 0.3, n) * factor:
            a.on_call(record("m", operation, "2.0", float(d), T0 - 1))
    verdicts = {(v.operation, v.metric): v for v in a.evaluate().verdicts()}
    assert verdicts[("slower", "latency")].state == "worse"
    assert verdicts[("faster", "latency")].state == "better"
    assert verdicts[("same", "latency")].state == "inconclusive"
    worse = verdicts[("slower", "latency")]
    assert worse.estimate is not None and worse.low is not None and worse.high is not None
    assert 0 < worse.low <= worse.estimate <= worse.high
    for fragment in ("worse", "is slower: shift +", "95% CI", "p=", "Holm-adjusted", f"n={n} vs {n}"):
        assert fragment in worse.reason
    assert all(verdicts[(op, "error_rate")].state == "inconclusive" for op in cases)  # no errors at all


def test_small_samples_are_inconclusive_and_missing_versions_no_data() -> None:
    a = analytics(Clock(), min_samples=30)
    for _i in range(10):
        a.on_call(record("m", "tiny", "1.0", 0.001, T0 - 1))
        a.on_call(record("m", "tiny", "2.0", 1.0, T0 - 1))  # 1000x slower, but only 10 calls
        a.on_call(record("m", "only-v1", "1.0", 0.001, T0 - 1))
    a.on_call(record("m", "only-v2", "2.0", 0.001, T0 - 1))
    verdicts = {(v.operation, v.metric): v for v in a.evaluate().verdicts()}
    assert verdicts[("tiny", "latency")].state == "inconclusive"
    assert "fewer than 30 samples" in verdicts[("tiny", "latency")].reason
    assert verdicts[("only-v1", "latency")].state == "no_data"


def test_error_rate_verdict() -> None:
    a = analytics(Clock())
    for i in range(2000):
        a.on_call(record("m", "op", "1.0", 0.01, T0 - 1, error="runtime" if i % 100 == 0 else None))  # 1 %
        a.on_call(record("m", "op", "2.0", 0.01, T0 - 1, error="runtime" if i % 20 == 0 else None))  # 5 %
    (verdict,) = [v for v in a.evaluate().verdicts() if v.metric == "error_rate"]
    assert verdict.state == "worse"
    assert verdict.estimate == pytest.approx(0.04)


def test_sample_ratio_mismatch_against_the_rollout_percent() -> None:
    name = f"srm-{uuid.uuid4().hex[:6]}"
    registry.obtain(name, percent=50, control=None, candidate=None)
    a = analytics(Clock())
    for i in range(3000):  # 30 / 70 although the rollout says 50 / 50
        a.on_call(record(name, "op", "2.0" if i % 10 < 7 else "1.0", 0.01, T0 - 1, user=f"u{i}"))
    srm = a.evaluate().migrations[name].sample_ratio
    assert srm is not None and srm.mismatch and srm.p_value < 1e-6
    b = analytics(Clock())
    for i in range(3000):
        b.on_call(record(name, "op", "2.0" if i % 2 else "1.0", 0.01, T0 - 1, user=f"u{i}"))
    srm = b.evaluate().migrations[name].sample_ratio
    assert srm is not None and not srm.mismatch


def test_guard_fires_after_consecutive_worse_verdicts() -> None:
    clock = Clock()
    a = analytics(clock, evaluate_every_s=1.0)
    fired = []
    a.add_guard(Guard(fired.append, metric="latency", consecutive=3))
    rng = np.random.default_rng(3)
    for d in rng.lognormal(-4, 0.2, 300):
        a.on_call(record("m", "op", "1.0", float(d), T0 - 1))
        a.on_call(record("m", "op", "2.0", float(d) * 1.5, T0 - 1))
    for _ in range(2):
        a.evaluate()
    assert fired == []
    a.evaluate()
    assert len(fired) == 1 and fired[0].state == "worse" and fired[0].operation == "op"
    assert a.guard_triggers == {("m", "op", "latency"): 1}


def test_memory_is_bounded_whatever_the_number_of_users() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        a = analytics(Clock())
        for i in range(1000):  # allocate every bucket's sketch first
            a.on_call(record("m", "op", "2.0", 0.01, T0 - i * 90, user=f"warm{i}"))
        for i in range(50_000):  # and fill the (bounded) pseudonym cache
            a.on_call(record("m", "op", "2.0", 0.01, T0 - 1, user=f"user-{i}"))
        held_at_50k = tracemalloc.get_traced_memory()[0]
        for i in range(50_000, 150_000):  # 100,000 more distinct users
            a.on_call(record("m", "op", "2.0", 0.01, T0 - 1, user=f"user-{i}"))
        held_at_150k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held_at_150k - held_at_50k < 100_000  # no per-user state: 100k more users cost nothing
    (v,) = a.evaluate().migrations["m"].adoption.versions
    assert abs(v.users_1h - 150_040) / 150_040 < 4 * RELATIVE_ERROR


def test_batch_adds_equal_one_by_one_adds() -> None:
    """A group is added at once (HyperLogLog.add_many, Ring.add_many): the same state as adding
    each call in turn, including a ring that wraps round mid-batch or is overrun by one batch."""
    import numpy as np

    from otel_migration._analytics.sketch import HyperLogLog
    from otel_migration._analytics.windows import Ring

    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    hashes[:5] = [0, 1, 2**52 - 1, 2**52, 2**64 - 1]  # the rank's edge cases
    one, many = HyperLogLog(), HyperLogLog()
    for value in hashes.tolist():
        one.add(value)
    for part in np.array_split(hashes, 7):
        many.add_many(part)
    assert np.array_equal(one.registers, many.registers)

    values = rng.random(130)
    for sizes in ([7, 20, 3], [40, 40, 40, 10], [130], [0, 1, 129]):
        single, batched = Ring(50), Ring(50)
        start = 0
        for size in sizes:
            part = values[start : start + size]
            for value in part.tolist():
                single.add(value)
            batched.add_many(part)
            start += size
            # The same most recent values (a batch longer than the ring restarts its layout at 0;
            # the order of samples is not part of a ring's meaning, which one is overwritten next is).
            assert batched.size == single.size
            assert np.array_equal(np.sort(batched.samples()), np.sort(single.samples()))
            if single.size == 50:  # full: the oldest value is the one overwritten next
                assert batched.values[batched.next] == single.values[single.next]
