"""The analytics' instruments, in one place: gauges over the latest snapshot and the guard counter.

Every gauge reads the snapshot the background evaluation last produced (never evaluating during a
collection), so what the metrics say and what :func:`otel_migration.snapshot` says always agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.instruments import Measured, observer
from .engine import MigrationAnalytics
from .snapshot import Snapshot

__all__ = ["register"]


def register(meter: Meter, analytics: MigrationAnalytics) -> None:
    """Create every analytics instrument on ``meter``: gauges read the analytics' latest snapshot."""

    def gauge(name: str, unit: str, description: str, read: Callable[[Snapshot], Measured]) -> None:
        meter.create_observable_gauge(
            name, [observer(lambda: read(analytics.latest()))], unit=unit, description=description
        )

    gauge(sc.METRIC_ADOPTION_RATIO, "1", "Candidate's share of unique users.", _read_ratio)
    gauge(sc.METRIC_ADOPTION_USERS, "{user}", "Unique users per version (HyperLogLog).", _read_users)
    gauge(
        sc.METRIC_ADOPTION_SESSIONS,
        "{session}",
        "Unique sessions per version (HyperLogLog).",
        _read_sessions,
    )
    gauge(sc.METRIC_ADOPTION_STAGE, "1", "1 for the migration's current adoption stage.", _read_stage)
    gauge(sc.METRIC_ADOPTION_STALLED, "1", "1 while adoption has not moved.", _read_stalled)
    gauge(sc.METRIC_ERROR_RATE, "1", "Errors per call over the last hour.", _read_error_rate)
    gauge(
        sc.METRIC_ERROR_FREE_USERS,
        "1",
        "Share of users without an error in the last hour.",
        _read_error_free,
    )
    gauge(sc.METRIC_ERROR_SPIKE, "1", "1 while an error category spikes.", _read_spikes)
    gauge(
        sc.METRIC_PERFORMANCE_DURATION,
        "s",
        "Duration percentiles and mean of recent calls.",
        _read_latency,
    )
    gauge(
        sc.METRIC_PERFORMANCE_IMPROVEMENT,
        "%",
        "Candidate's improvement over the control (negative: slower).",
        _read_improvement,
    )
    gauge(sc.METRIC_VERDICT, "1", "1 better, -1 worse, 0 inconclusive or no data.", _read_verdicts)
    gauge(
        sc.METRIC_SAMPLE_RATIO_MISMATCH,
        "1",
        "1 when the users' split is not the rollout's.",
        _read_srm,
    )
    meter.create_observable_counter(
        sc.METRIC_GUARD_TRIGGERED,
        [observer(analytics.read_guards)],
        unit="{trigger}",
        description="Times a guard called its callback (e.g. a rollback) on repeated worse verdicts.",
    )


def _read_ratio(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        yield (m.adoption.ratio_1h, {sc.MIGRATION_NAME: m.name, sc.MIGRATION_WINDOW: "1h"})
        yield (m.adoption.ratio_24h, {sc.MIGRATION_NAME: m.name, sc.MIGRATION_WINDOW: "24h"})


def _read_users(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for v in m.adoption.versions:
            yield (
                round(v.users_1h),
                {sc.MIGRATION_NAME: m.name, sc.MIGRATION_VERSION: v.version, sc.MIGRATION_WINDOW: "1h"},
            )
            yield (
                round(v.users_24h),
                {sc.MIGRATION_NAME: m.name, sc.MIGRATION_VERSION: v.version, sc.MIGRATION_WINDOW: "24h"},
            )


def _read_sessions(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for v in m.adoption.versions:
            for window, value in (("1h", v.sessions_1h), ("24h", v.sessions_24h)):
                attrs = {
                    sc.MIGRATION_NAME: m.name,
                    sc.MIGRATION_VERSION: v.version,
                    sc.MIGRATION_WINDOW: window,
                }
                yield (round(value), attrs)


def _read_stage(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for stage in ("not_started", "low", "adopted", "replaced"):
            yield (int(m.adoption.stage == stage), {sc.MIGRATION_NAME: m.name, sc.MIGRATION_STAGE: stage})


def _read_stalled(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        yield (int(m.adoption.stalled), {sc.MIGRATION_NAME: m.name})


def _read_error_rate(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for e in m.errors:
            yield (e.error_rate, {sc.MIGRATION_NAME: m.name, sc.MIGRATION_VERSION: e.version})


def _read_error_free(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for e in m.errors:
            yield (e.error_free_user_rate, {sc.MIGRATION_NAME: m.name, sc.MIGRATION_VERSION: e.version})


def _read_spikes(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for e in m.errors:
            for category in e.categories:
                yield (
                    int(category in e.spikes),
                    {
                        sc.MIGRATION_NAME: m.name,
                        sc.MIGRATION_VERSION: e.version,
                        sc.MIGRATION_ERROR_CATEGORY: category,
                    },
                )


def _read_latency(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for stats in m.latency:
            base = {
                sc.MIGRATION_NAME: m.name,
                sc.MIGRATION_OPERATION: stats.operation,
                sc.MIGRATION_VERSION: stats.version,
            }
            for statistic, value in (
                ("p50", stats.p50),
                ("p95", stats.p95),
                ("p99", stats.p99),
                ("mean", stats.mean),
            ):
                yield (value, {**base, sc.MIGRATION_STATISTIC: statistic})


def _read_improvement(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        for imp in m.improvements:
            base = {
                sc.MIGRATION_NAME: m.name,
                sc.MIGRATION_OPERATION: imp.operation,
                sc.MIGRATION_VERSION: imp.version,
            }
            for statistic, value in (("mean", imp.mean_pct), ("p50", imp.p50_pct), ("p95", imp.p95_pct)):
                if math.isfinite(value):
                    yield (value, {**base, sc.MIGRATION_STATISTIC: statistic})


_VERDICT_VALUE: Final = {"better": 1, "worse": -1, "inconclusive": 0, "no_data": 0}


def _read_verdicts(s: Snapshot) -> Measured:
    for v in s.verdicts():
        yield (
            _VERDICT_VALUE[v.state],
            {
                sc.MIGRATION_NAME: v.migration,
                sc.MIGRATION_OPERATION: v.operation,
                sc.MIGRATION_VERSION: v.candidate,
                sc.MIGRATION_METRIC: v.metric,
            },
        )


def _read_srm(s: Snapshot) -> Measured:
    for m in s.migrations.values():
        if m.sample_ratio is not None:
            yield (int(m.sample_ratio.mismatch), {sc.MIGRATION_NAME: m.name})
