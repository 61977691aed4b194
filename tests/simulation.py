"""A simulated migration, hour by hour, for the tests that check analytics and alerts against it.

Users are routed by the real sticky rollout as its percent follows ``ramp`` (one value an hour);
2.0 is 30 % slower than 1.0 on ``search`` and 30 % faster on ``checkout``; in ``burst_hour`` a
quarter of 2.0's checkouts fail with network errors during the hour's last 5 minutes. Time is
simulated: the analytics take a clock, and every hour ends with an evaluation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from otel_migration import CallRecord, MigrationSnapshot, rollout, set_rollout
from otel_migration._analytics.engine import MigrationAnalytics
from otel_migration._core.config import AnalyticsSettings
from otel_migration._core.context import Scope
from otel_migration._core.subjects import pseudonymize
from otel_migration._rollouts.rollout import registry

T0 = 1_800_000_000.0  # on an hour boundary
SLOWDOWN = {"search": 1.3, "checkout": 0.7}


def record(
    migration: str,
    operation: str,
    version: str,
    duration: float,
    at: float,
    *,
    user: str | None = None,
    error: str | None = None,
) -> CallRecord:
    """A finished call as the recorder hands it to the analytics; ``error`` is its category."""
    scope = Scope(migration, operation, version, subject=pseudonymize(user) if user else None)
    return CallRecord(
        scope,
        "error" if error else "ok",
        duration,
        int(at * 1e9),
        "RuntimeError" if error else None,
        error,
    )


@dataclass(frozen=True)
class Hour:
    percent: float
    true_share: float  # share of users the rollout put on 2.0
    snapshot: MigrationSnapshot


def simulate(
    ramp: Sequence[float], *, users: int = 2000, burst_hour: int | None = None, stall_after_s: float = 7200.0
) -> tuple[str, list[Hour]]:
    name = f"checkout-{uuid.uuid4().hex[:6]}"
    ids = [f"user-{i}" for i in range(users)]
    clock = [T0]
    analytics = MigrationAnalytics(
        AnalyticsSettings(stall_after_s=stall_after_s), registry.get, lambda: clock[0]
    )
    rng = np.random.default_rng(11)
    hours = []
    for hour, percent in enumerate(ramp):
        set_rollout(name, percent=percent)
        on_v2 = 0
        for i, user in enumerate(ids):
            version = rollout(name, user)
            on_v2 += version == "2.0"
            offset = i * 3599 / users  # users spread over the hour
            at = T0 + hour * 3600 + offset
            for operation, factor in SLOWDOWN.items():
                base = float(rng.lognormal(-3.5, 0.25))
                duration = base * factor if version == "2.0" else base
                burst = hour == burst_hour and version == "2.0" and operation == "checkout" and offset >= 3300
                error = "network" if burst and i % 4 == 0 else None
                analytics.on_call(record(name, operation, version, duration, at, user=user, error=error))
        clock[0] = T0 + hour * 3600 + 3599
        hours.append(Hour(percent, on_v2 / users, analytics.evaluate().migrations[name]))
    return name, hours
