"""Issue 14 item 5: health score, anomalies, error trends, memory leaks, each on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from otel_migration._analytics.anomaly import count_floor, robust_z
from otel_migration._analytics.health import HealthMonitor, health_score
from otel_migration._analytics.leak import detect_leak
from otel_migration._analytics.statistics import mann_kendall
from otel_migration._analytics.trend import error_trend
from otel_migration._core.config import AnalyticsSettings
from otel_migration._core.context import Scope
from otel_migration._core.records import CallRecord

BASE = dict(
    error_rate=0.0, slow_share=0.0, saturation=0.0, telemetry_loss=0.0, error_budget=0.05, latency_budget=0.05
)


# -- health score ----------------------------------------------------------------------------------
def test_health_score_is_100_when_all_is_well_and_falls_with_each_input() -> None:
    assert health_score(**BASE)[0] == pytest.approx(100)
    for name, weight, budget in (
        ("error_rate", 40, 0.05),
        ("slow_share", 30, 0.05),
        ("saturation", 15, 1.0),
        ("telemetry_loss", 15, 0.01),
    ):
        scores = [health_score(**{**BASE, name: budget * k / 4})[0] for k in range(5)]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5, (name, scores)
        assert scores[-1] == pytest.approx(100 - weight)  # the whole budget spent: its weight lost
        assert health_score(**{**BASE, name: 1.0})[0] == pytest.approx(100 - weight)  # never below
    worst = health_score(
        error_rate=1, slow_share=1, saturation=1, telemetry_loss=1, error_budget=0.05, latency_budget=0.05
    )
    assert worst[0] == pytest.approx(0)
    with pytest.raises(ValueError, match="error_rate"):
        health_score(**{**BASE, "error_rate": 1.5})


def test_monitor_scores_each_version_from_its_calls() -> None:
    now = 1_000_000.0 * 60
    monitor = HealthMonitor(AnalyticsSettings(latency_slo_s=0.5), clock=lambda: now)
    end = int((now - 30) * 1e9)
    for i in range(100):
        monitor.on_call(CallRecord(Scope("m", "op", "1.0"), "ok", 0.1, end))
        # 2.0: 2 % errors (0.4 of the error budget) and 1 % slow calls (0.2 of the latency budget)
        if i < 2:
            monitor.on_call(CallRecord(Scope("m", "op", "2.0"), "error", 0.1, end, "E", "runtime"))
        elif i < 3:
            monitor.on_call(CallRecord(Scope("m", "op", "2.0"), "ok", 0.9, end))
        else:
            monitor.on_call(CallRecord(Scope("m", "op", "2.0"), "ok", 0.1, end))
    scores = {v.version: v.score for v in monitor.evaluate().versions}
    assert scores["1.0"] == pytest.approx(100)
    assert scores["2.0"] == pytest.approx(100 - 40 * 0.4 - 30 * 0.2)


# -- anomalies -------------------------------------------------------------------------------------
def _alarm(series: np.ndarray, baseline: int = 30) -> bool:
    result = robust_z(
        series[-baseline - 1 : -1], float(series[-1]), floor=count_floor(float(np.median(series[:-1])))
    )
    return result is not None and result.anomalous


def test_anomaly_finds_a_planted_step_and_stays_quiet_on_noise() -> None:
    runs = 2000
    false_alarms = detected = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        noise = rng.poisson(100, 31).astype(float)  # 100 calls a minute, Poisson noise (sd 10)
        false_alarms += _alarm(noise)
        step = noise.copy()
        step[-1] = rng.poisson(200)  # the last minute doubles to 200 calls (10 sd)
        detected += _alarm(step)
    assert false_alarms / runs <= 0.005  # measured: 0 of 2000 at threshold 5
    assert detected / runs >= 0.99


def test_monitor_flags_a_latency_step_in_the_last_minute() -> None:
    now = 10_000.0 * 60 + 5
    monitor = HealthMonitor(AnalyticsSettings(), clock=lambda: now)
    rng = np.random.default_rng(1)
    for minute in range(9_969, 10_000):  # 31 complete minutes before the current one
        slow = minute == 9_999
        for _ in range(50):
            duration = float(rng.normal(0.2 if slow else 0.1, 0.01))
            monitor.on_call(CallRecord(Scope("m", "op", "2.0"), "ok", duration, minute * 60 * 10**9 + 10**9))
    (version,) = monitor.evaluate().versions
    assert version.anomalies["latency"].anomalous
    assert not version.anomalies["request_rate"].anomalous


# -- error trends ----------------------------------------------------------------------------------
def test_mann_kendall_on_hand_computed_series() -> None:
    result = mann_kendall([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    # pairs: 10, discordant (3,2) and (5,4): S = 8 - 2 = 6; var = 5*4*15/18 = 16.67; z = 5/4.08
    assert result.s == 6
    assert result.z == pytest.approx(5 / np.sqrt(5 * 4 * 15 / 18))
    # pairwise slopes sorted: -1 -1 1/3 1/2 3/4 1 1 4/3 2 3 -> median (3/4 + 1) / 2
    assert result.slope == pytest.approx(0.875)
    assert result.low <= result.slope <= result.high


def test_error_trend_rising_falling_and_stable() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(30)
    rising = 0.01 + 0.002 * minutes + rng.normal(0, 0.003, 30)
    assert error_trend(minutes, rising).state == "rising"
    assert error_trend(minutes, rising[::-1]).state == "falling"
    quiet = sum(
        error_trend(minutes, np.random.default_rng(s).binomial(200, 0.02, 30) / 200).state != "stable"
        for s in range(200)
    )
    assert quiet / 200 <= 0.1  # alpha 0.05, measured over seeded runs
    assert error_trend(minutes[:5], rising[:5]).state == "stable"  # too few minutes to say


# -- memory leaks ----------------------------------------------------------------------------------
def test_leak_detection_finds_a_linear_leak_and_predicts_time_to_limit() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(0, 3600, 10.0)
    leak = 200e6 + 50_000 * t + rng.normal(0, 2e6, t.size)  # 50 kB/s = 180 MB an hour
    report = detect_leak(t, leak, limit_bytes=1e9)
    assert report is not None and report.leaking
    assert report.low <= 50_000 <= report.high
    expected = (1e9 - leak[-1]) / report.slope
    assert report.time_to_limit_s == pytest.approx(expected)
    assert report.time_to_limit_s == pytest.approx((1e9 - 200e6 - 50_000 * 3590) / 50_000, rel=0.1)


def test_leak_detection_stays_quiet_on_a_gc_sawtooth() -> None:
    alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        t = np.arange(0, 3600, 10.0) + rng.uniform(0, 10)
        period = rng.uniform(60, 240)  # a collection every 1 to 4 minutes
        sawtooth = 200e6 + 80e6 * ((t % period) / period) + rng.normal(0, 1e6, t.size)
        report = detect_leak(t, sawtooth, limit_bytes=1e9)
        assert report is not None
        alarms += report.leaking
    assert alarms <= 2  # false alarms over 100 seeded sawtooths


def test_leak_detection_needs_enough_samples() -> None:
    assert detect_leak(np.arange(10.0), np.arange(10.0)) is None


def test_monitor_reports_a_leak_from_its_samples() -> None:
    clock = [0.0]
    monitor = HealthMonitor(AnalyticsSettings(), clock=lambda: clock[0], memory_limit_bytes=2_000_000_000)
    for i in range(360):
        clock[0] = 1_000_000.0 + 10 * i
        monitor.sample(rss=300e6 + 100_000 * 10 * i, cpu_share=0.1)
    report = monitor.evaluate()
    assert report.leak is not None and report.leak.leaking
    assert report.leak.slope == pytest.approx(100_000)
    assert report.saturation == pytest.approx(0.1)


def test_a_child_forked_while_the_lock_is_held_can_still_record() -> None:
    import os
    import signal

    monitor = HealthMonitor(AnalyticsSettings())
    with monitor._lock:  # as if the aggregator held it at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the child: a deadlock would hit the alarm and exit 1
            signal.signal(signal.SIGALRM, lambda *_: os._exit(1))
            signal.alarm(5)
            monitor.on_call(CallRecord(Scope("m", "op", "2.0"), "ok", 0.1, 10**18))
            os._exit(0 if monitor.evaluate().versions else 2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
