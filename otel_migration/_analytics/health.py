"""Health and prediction: a 0-100 score per version, anomalies, error trends, memory leaks.

A call listener fed with every finished versioned call (off the call path) that keeps, per
migration and version, the last hour in 1-minute buckets: calls, errors (per category), calls
slower than the latency SLO, and the summed duration of successful calls. The recorder's drops
and the process's memory and CPU are sampled on the aggregator thread at every evaluation
(``evaluate_every_s``). Gauges export the latest evaluation.

The health score (docs/health.md), per migration and version, over the last 5 minutes::

    score = 100 * (0.40 * (1 - min(1, error_rate / error_budget))
                 + 0.30 * (1 - min(1, slow_share / latency_budget))
                 + 0.15 * (1 - saturation)
                 + 0.15 * (1 - min(1, telemetry_loss / 0.01)))

``slow_share`` is the share of calls slower than ``latency_slo_s``; ``saturation`` the larger of
the call queue's fill and the process's CPU use (share of all cores); ``telemetry_loss`` the share
of finished calls dropped by a full queue (1 % lost already zeroes that part). Each input can only
lower the score: 100 is a version inside both budgets on an idle, lossless pipeline.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.batch import CallBatch, split_by
from .._core.config import AnalyticsSettings
from .._core.instruments import Measured, observer
from .._core.records import Record
from .anomaly import Anomaly, count_floor, latency_floor, rate_floor, robust_z
from .leak import LeakReport, detect_leak, memory_limit
from .trend import ErrorTrend, error_trend

__all__ = ["HealthFactors", "HealthMonitor", "HealthReport", "VersionHealth", "health_score"]

MINUTES: Final = 60
SCORE_MINUTES: Final = 5
BASELINE_MINUTES: Final = 30
TREND_MINUTES: Final = 30
LOSS_BUDGET: Final = 0.01
WEIGHTS: Final = {"errors": 0.40, "latency": 0.30, "saturation": 0.15, "telemetry_loss": 0.15}
MEMORY_SAMPLES: Final = 720


@dataclass(frozen=True, slots=True)
class HealthFactors:
    """Each input's part of the score, from 1 (no harm) to 0 (its whole weight lost)."""

    errors: float
    latency: float
    saturation: float
    telemetry_loss: float


def health_score(
    *,
    error_rate: float,
    slow_share: float,
    saturation: float,
    telemetry_loss: float,
    error_budget: float,
    latency_budget: float,
) -> tuple[float, HealthFactors]:
    """The documented formula (module docstring); inputs are shares in [0, 1]."""
    for name, value in (
        ("error_rate", error_rate),
        ("slow_share", slow_share),
        ("saturation", saturation),
        ("telemetry_loss", telemetry_loss),
    ):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a share in [0, 1], got {value!r}")
    factors = HealthFactors(
        errors=1 - min(1.0, error_rate / error_budget),
        latency=1 - min(1.0, slow_share / latency_budget),
        saturation=1 - saturation,
        telemetry_loss=1 - min(1.0, telemetry_loss / LOSS_BUDGET),
    )
    score = 100 * sum(WEIGHTS[name] * getattr(factors, name) for name in WEIGHTS)
    return score, factors


@dataclass(frozen=True, slots=True)
class VersionHealth:
    migration: str
    version: str
    score: float
    factors: HealthFactors
    anomalies: dict[str, Anomaly]  # request_rate, error_rate, latency
    trends: dict[str, ErrorTrend]  # by error category


@dataclass(frozen=True, slots=True)
class HealthReport:
    taken_at: float
    versions: tuple[VersionHealth, ...]
    leak: LeakReport | None
    saturation: float
    telemetry_loss: float


class _Minutes:
    """The last hour of one version in 1-minute buckets."""

    def __init__(self) -> None:
        self.ids = np.full(MINUTES, -1, dtype=np.int64)
        self.requests = np.zeros(MINUTES, dtype=np.int64)
        self.errors = np.zeros(MINUTES, dtype=np.int64)
        self.slow = np.zeros(MINUTES, dtype=np.int64)
        self.ok = np.zeros(MINUTES, dtype=np.int64)
        self.ok_seconds = np.zeros(MINUTES, dtype=np.float64)
        self.categories: list[dict[str, int]] = [{} for _ in range(MINUTES)]

    def add_group(
        self,
        minutes: npt.NDArray[np.int64],
        outcome: str,
        durations: npt.NDArray[np.float64],
        slo_s: float,
        categories: list[str] | None,
    ) -> None:
        """Calls of one outcome: call i ended in ``minutes[i]`` after ``durations[i]`` (``categories[i]``)."""
        for minute, rows in split_by(minutes):
            slot = minute % MINUTES
            if self.ids[slot] != minute:
                if self.ids[slot] > minute:
                    continue
                self.ids[slot] = minute
                self.requests[slot] = self.errors[slot] = self.slow[slot] = self.ok[slot] = 0
                self.ok_seconds[slot] = 0.0
                self.categories[slot] = {}
            count = int(rows.sum())
            self.requests[slot] += count
            if outcome == sc.OUTCOME_ERROR and categories is not None:
                self.errors[slot] += count
                counts = self.categories[slot]
                for row in np.flatnonzero(rows).tolist():
                    counts[categories[row]] = counts.get(categories[row], 0) + 1
            elif outcome == sc.OUTCOME_OK:
                self.ok[slot] += count
                self.ok_seconds[slot] += float(durations[rows].sum())
            self.slow[slot] += int((durations[rows] > slo_s).sum())

    def series(self, first: int, last: int) -> dict[int, int]:
        """Slot of each minute in [first, last] that has a bucket."""
        return {int(m): int(m % MINUTES) for m in range(first, last + 1) if self.ids[m % MINUTES] == m}


class QueueInfo(Protocol):
    """What the monitor reads of the call recorder."""

    @property
    def dropped(self) -> int: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def max_queue_size(self) -> int: ...


#: (resident memory in bytes, CPU use as a share of all cores since the previous sample)
ProcessSampler = Callable[[], tuple[float, float]]


def psutil_sampler() -> ProcessSampler:
    """The process's RSS and CPU share, read with psutil (the system-metrics instrumentation's library)."""
    import psutil  # type: ignore[import-untyped]

    process = psutil.Process(os.getpid())
    cores = psutil.cpu_count() or 1
    process.cpu_percent(None)

    def sample() -> tuple[float, float]:
        return float(process.memory_info().rss), min(1.0, process.cpu_percent(None) / (100.0 * cores))

    return sample


class HealthMonitor:
    """Minute buckets per version, process samples, and the latest :class:`HealthReport`."""

    def __init__(
        self,
        settings: AnalyticsSettings,
        *,
        sampler: ProcessSampler | None = None,
        clock: Callable[[], float] = time.time,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.settings = settings
        self.memory_limit_bytes = memory_limit_bytes
        self._sampler = sampler
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], _Minutes] = {}
        self._queue: QueueInfo | None = None
        self._drops: dict[int, int] = {}  # minute -> recorder's drop count seen in it
        self._memory_t: list[float] = []
        self._memory_x: list[float] = []
        self._cpu_share = 0.0
        self._latest: HealthReport | None = None
        # A lock held by the parent's aggregator at fork would never be released in the child.
        weak = weakref.ref(self)

        def new_lock_in_child() -> None:
            me = weak()
            if me is not None:
                me._lock = threading.Lock()

        os.register_at_fork(after_in_child=new_lock_in_child)

    def watch(self, queue: QueueInfo) -> None:
        """Read queue fill and drops from the recorder (given after both are built)."""
        self._queue = queue

    # -- intake (the aggregator thread) -----------------------------------------------------------
    def on_call(self, record: Record) -> None:
        self.on_batch(CallBatch([record]))

    def on_batch(self, batch: CallBatch) -> None:
        slo = self.settings.latency_slo_s
        for group in batch.calls:
            minutes_of = group.end_ns // 60_000_000_000
            categories = (
                [c or "unknown" for c in group.error_categories]
                if group.outcome == sc.OUTCOME_ERROR
                else None
            )
            with self._lock:
                key = (group.migration, group.version)
                minutes = self._versions.get(key)
                if minutes is None:
                    minutes = self._versions[key] = _Minutes()
                minutes.add_group(minutes_of, group.outcome, group.durations, slo, categories)

    def tick(self) -> None:
        latest = self._latest
        if latest is None or self._clock() - latest.taken_at >= self.settings.evaluate_every_s:
            self.sample()
            self.evaluate()

    def sample(
        self, rss: float | None = None, cpu_share: float | None = None, at: float | None = None
    ) -> None:
        """Take one process sample (from the sampler, or the values given) and the drop count."""
        now = self._clock() if at is None else at
        if rss is None and self._sampler is not None:
            rss, cpu_share = self._sampler()
        with self._lock:
            if rss is not None:
                self._memory_t.append(now)
                self._memory_x.append(rss)
                del self._memory_t[:-MEMORY_SAMPLES], self._memory_x[:-MEMORY_SAMPLES]
            if cpu_share is not None:
                self._cpu_share = cpu_share
            if self._queue is not None:
                minute = int(now // 60)
                self._drops[minute] = self._queue.dropped
                for old in [m for m in self._drops if m < minute - MINUTES]:
                    del self._drops[old]

    # -- evaluation -------------------------------------------------------------------------------
    def latest(self) -> HealthReport:
        return self._latest or self.evaluate()

    def evaluate(self) -> HealthReport:
        now = self._clock()
        minute = int(now // 60)
        with self._lock:
            queue = self._queue
            fill = queue.queue_depth / queue.max_queue_size if queue is not None else 0.0
            saturation = min(1.0, max(fill, self._cpu_share))
            recent_calls = sum(
                int(m.requests[slot])
                for m in self._versions.values()
                for slot in m.series(minute - SCORE_MINUTES + 1, minute).values()
            )
            dropped = 0
            if self._drops:
                now_drops = queue.dropped if queue is not None else max(self._drops.values())
                past = [n for m, n in self._drops.items() if m <= minute - SCORE_MINUTES]
                dropped = now_drops - (max(past) if past else min(self._drops.values()))
            loss = dropped / (dropped + recent_calls) if dropped + recent_calls else 0.0
            versions = tuple(
                self._version_health(migration, version, minutes, minute, saturation, loss)
                for (migration, version), minutes in sorted(self._versions.items())
            )
            memory_t, memory_x = list(self._memory_t), list(self._memory_x)
        window = [(t, x) for t, x in zip(memory_t, memory_x, strict=True) if t >= now - 3600]
        leak = (
            detect_leak(
                [t for t, _ in window],
                [x for _, x in window],
                limit_bytes=memory_limit(self.memory_limit_bytes),
            )
            if window
            else None
        )
        report = HealthReport(now, versions, leak, saturation, loss)
        self._latest = report
        return report

    def _version_health(
        self, migration: str, version: str, m: _Minutes, minute: int, saturation: float, loss: float
    ) -> VersionHealth:
        s = self.settings
        recent = list(m.series(minute - SCORE_MINUTES + 1, minute).values())
        requests = int(m.requests[recent].sum()) if recent else 0
        errors = int(m.errors[recent].sum()) if recent else 0
        slow = int(m.slow[recent].sum()) if recent else 0
        score, factors = health_score(
            error_rate=errors / requests if requests else 0.0,
            slow_share=slow / requests if requests else 0.0,
            saturation=saturation,
            telemetry_loss=loss,
            error_budget=s.error_budget,
            latency_budget=s.latency_budget,
        )
        return VersionHealth(
            migration, version, score, factors, self._anomalies(m, minute), self._trends(m, minute)
        )

    @staticmethod
    def _anomalies(m: _Minutes, minute: int) -> dict[str, Anomaly]:
        """The last complete minute against the 30 before it (minutes without a bucket count 0 calls)."""
        last = minute - 1
        found = m.series(last - BASELINE_MINUTES, last)
        if last not in found:
            return {}
        slot = found[last]
        result: dict[str, Anomaly] = {}
        baseline_minutes = range(last - BASELINE_MINUTES, last)
        counts = np.array([m.requests[found[b]] if b in found else 0 for b in baseline_minutes], dtype=float)
        median = float(np.median(counts))
        requests = robust_z(counts, float(m.requests[slot]), floor=count_floor(median), direction="both")
        if requests is not None:
            result["request_rate"] = requests
        with_calls = [found[b] for b in baseline_minutes if b in found and m.requests[found[b]] > 0]
        rates = np.array([m.errors[i] / m.requests[i] for i in with_calls], dtype=float)
        if rates.size and m.requests[slot] > 0:
            errors = robust_z(
                rates,
                float(m.errors[slot] / m.requests[slot]),
                floor=rate_floor(float(np.median(rates)), float(m.requests[slot])),
                direction="up",
            )
            if errors is not None:
                result["error_rate"] = errors
        with_ok = [found[b] for b in baseline_minutes if b in found and m.ok[found[b]] > 0]
        means = np.array([m.ok_seconds[i] / m.ok[i] for i in with_ok], dtype=float)
        if means.size and m.ok[slot] > 0:
            latency = robust_z(
                means,
                float(m.ok_seconds[slot] / m.ok[slot]),
                floor=latency_floor(float(np.median(means))),
                direction="up",
            )
            if latency is not None:
                result["latency"] = latency
        return result

    @staticmethod
    def _trends(m: _Minutes, minute: int) -> dict[str, ErrorTrend]:
        """Per category, its error rate per complete minute with calls over the last 30 minutes."""
        found = m.series(minute - TREND_MINUTES, minute - 1)
        with_calls = {b: slot for b, slot in found.items() if m.requests[slot] > 0}
        # Categories of the current minute too: reported "stable" until enough complete minutes.
        current = m.series(minute, minute)
        categories = {c for slot in (*with_calls.values(), *current.values()) for c in m.categories[slot]}
        trends = {}
        for category in sorted(categories):
            minutes = sorted(with_calls)
            rates = [
                m.categories[with_calls[b]].get(category, 0) / m.requests[with_calls[b]] for b in minutes
            ]
            trends[category] = error_trend(minutes, rates)
        return trends

    # -- observable callbacks ---------------------------------------------------------------------
    def register(self, meter: Meter) -> None:
        """Create this module's gauges on ``meter``."""

        def gauge(name: str, unit: str, description: str, read: Callable[[HealthReport], Measured]) -> None:
            meter.create_observable_gauge(
                name, [observer(lambda: read(self.latest()))], unit=unit, description=description
            )

        gauge(sc.METRIC_HEALTH_SCORE, "{score}", "Health score 0-100 per migration and version.", _read_score)
        gauge(
            sc.METRIC_HEALTH_FACTOR,
            "1",
            "Each input's part of the health score (1 no harm, 0 all lost).",
            _read_factors,
        )
        gauge(
            sc.METRIC_ANOMALY, "1", "1 while the last minute's rate or latency is anomalous.", _read_anomaly
        )
        gauge(
            sc.METRIC_ANOMALY_SCORE,
            "1",
            "Robust z-score of the last minute against the 30 before.",
            _read_anomaly_z,
        )
        gauge(
            sc.METRIC_ERROR_TREND,
            "1",
            "Error trend per category: 1 rising, -1 falling, 0 stable.",
            _read_trend,
        )
        gauge(
            sc.METRIC_MEMORY_LEAK, "1", "1 while the process's memory floor rises significantly.", _read_leak
        )
        gauge(
            sc.METRIC_MEMORY_GROWTH, "By/s", "Growth of the process's memory floor (Theil-Sen).", _read_growth
        )
        gauge(
            sc.METRIC_MEMORY_TIME_TO_LIMIT, "s", "Predicted time until memory reaches its limit.", _read_ttl
        )
        meter.create_observable_gauge(
            sc.METRIC_TELEMETRY_QUEUE_DEPTH,
            [observer(self._read_queue_depth)],
            unit="{call}",
            description="Finished calls waiting in the recorder's queue for aggregation.",
        )

    def _read_queue_depth(self) -> Measured:
        queue = self._queue
        return [] if queue is None else [(queue.queue_depth, {})]


def _version_attrs(v: VersionHealth) -> dict[str, str]:
    return {sc.MIGRATION_NAME: v.migration, sc.MIGRATION_VERSION: v.version}


def _read_score(r: HealthReport) -> Measured:
    return [(v.score, _version_attrs(v)) for v in r.versions]


def _read_factors(r: HealthReport) -> Measured:
    return [
        (getattr(v.factors, name), {**_version_attrs(v), sc.MIGRATION_HEALTH_INPUT: name})
        for v in r.versions
        for name in WEIGHTS
    ]


ANOMALY_METRICS: Final = ("request_rate", "error_rate", "latency")


def _read_anomaly(r: HealthReport) -> Measured:
    """1 while anomalous; 0 otherwise, also while too little history to judge (so alerts see the series)."""
    return [
        (
            1 if (a := v.anomalies.get(metric)) is not None and a.anomalous else 0,
            {**_version_attrs(v), sc.MIGRATION_METRIC: metric},
        )
        for v in r.versions
        for metric in ANOMALY_METRICS
    ]


def _read_anomaly_z(r: HealthReport) -> Measured:
    return [
        (a.z, {**_version_attrs(v), sc.MIGRATION_METRIC: metric})
        for v in r.versions
        for metric, a in v.anomalies.items()
    ]


_TREND_VALUE: Final = {"rising": 1, "falling": -1, "stable": 0}


def _read_trend(r: HealthReport) -> Measured:
    return [
        (_TREND_VALUE[t.state], {**_version_attrs(v), sc.MIGRATION_ERROR_CATEGORY: category})
        for v in r.versions
        for category, t in v.trends.items()
    ]


def _read_leak(r: HealthReport) -> Measured:
    """0 also while fewer samples than a judgement needs (the first minutes of a process)."""
    return [(1 if r.leak is not None and r.leak.leaking else 0, {})]


def _read_growth(r: HealthReport) -> Measured:
    return [] if r.leak is None else [(r.leak.slope, {})]


def _read_ttl(r: HealthReport) -> Measured:
    """Only while leaking: at a trend that is not significant no limit is predicted (the SDK refuses +Inf)."""
    if r.leak is not None and r.leak.time_to_limit_s is not None:
        return [(r.leak.time_to_limit_s, {})]
    return []
