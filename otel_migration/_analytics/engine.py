"""Migration analytics: adoption, errors, performance and verdicts per migration and version.

A :class:`CallListener` fed by the call recorder with every finished call (sampled or not), off
the call path. Memory is bounded whatever the traffic: per migration and version, time-bucketed
counters and HyperLogLog sketches (5-minute buckets for the last hour, hourly for the last day);
per operation and version, a ring of the most recent durations. A million distinct users cost
the same as ten.

Evaluation (every ``evaluate_every_s`` in the background, and on demand through
:func:`otel_migration.snapshot`) turns that state into an immutable :class:`Snapshot`; the
observable gauges export the latest one, so metrics and the in-process view always agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Protocol

import numpy as np

from .._core import semconv as sc
from .._core.batch import CallBatch
from .._core.config import AnalyticsSettings
from .._core.instruments import Measured
from .._core.records import Record
from .sketch import RELATIVE_ERROR, HyperLogLog
from .snapshot import (
    Adoption,
    ErrorStats,
    Improvement,
    LatencyStats,
    MigrationSnapshot,
    SampleRatio,
    Snapshot,
    Stage,
    Verdict,
    VersionAdoption,
)
from .statistics import sample_ratio_mismatch
from .verdicts import adjust, error_rate_verdict, shift_verdict
from .windows import OperationState, Ring, VersionState, Window

__all__ = ["Guard", "MigrationAnalytics"]

_logger = logging.getLogger(__name__)

SHORT_BUCKET_S: Final = 300  # 12 x 5 minutes = the last hour
SHORT_BUCKETS: Final = 12
LONG_BUCKET_S: Final = 3600  # 24 x 1 hour = the last day
LONG_BUCKETS: Final = 24
SRM_MIN_USERS: Final = 100
ALL_OPERATIONS: Final = "*"  # the operation of verdicts over a whole migration (cost, quality)
SRM_ALPHA: Final = 0.001
_NS: Final = 1_000_000_000


@dataclass
class Guard:
    """Calls ``callback(verdict)`` when ``metric`` is judged worse ``consecutive`` evaluations in a row."""

    callback: Callable[[Verdict], object]
    metric: str = "latency"
    consecutive: int = 3
    migration: str | None = None
    operation: str | None = None

    def matches(self, verdict: Verdict) -> bool:
        return (
            verdict.metric == self.metric
            and self.migration in (None, verdict.migration)
            and self.operation in (None, verdict.operation)
        )


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally: 1.9 before 1.10, numbers before words."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.replace("-", ".").split("."))


def _improvement(control: float, candidate: float) -> float:
    return (control - candidate) / control * 100 if control > 0 else 0.0


def _flip(totals: tuple[int, int]) -> tuple[int, int]:
    """(requests, errors) -> (errors, requests)."""
    return totals[1], totals[0]


class RolloutInfo(Protocol):
    """What the analytics read of a migration's rollout: its versions and the split it asks for."""

    @property
    def control(self) -> str: ...
    @property
    def candidate(self) -> str: ...
    @property
    def killed(self) -> bool: ...
    @property
    def percent(self) -> float: ...
    @property
    def percent_since(self) -> float: ...


#: The rollout of a migration by name, if it has one (passed in by the set-up).
RolloutLookup = Callable[[str], RolloutInfo | None]


def _no_rollouts(name: str) -> RolloutInfo | None:
    return None


class MigrationAnalytics:
    """Per-migration state fed by every finished call; evaluated into snapshots."""

    def __init__(
        self,
        settings: AnalyticsSettings,
        rollouts: RolloutLookup = _no_rollouts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._rollout_of = rollouts
        self._clock = clock
        self._lock = threading.RLock()
        self._versions: dict[tuple[str, str], VersionState] = {}
        self._operations: dict[tuple[str, str, str], OperationState] = {}
        self._history: dict[str, deque[tuple[float, float]]] = {}
        self._guards: list[Guard] = []
        self._streaks: dict[tuple[int, str, str, str, str], int] = {}
        self.guard_triggers: dict[tuple[str, str, str], int] = {}
        self._latest: Snapshot | None = None
        # Per-call samples other processors report (LLM cost, quality scores), for their verdicts.
        self._samples: dict[tuple[str, str, str], Ring] = {}

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's calls (it reports its own); keep settings and guards."""
        self._lock = threading.RLock()
        self._versions, self._operations, self._history = {}, {}, {}
        self._streaks, self.guard_triggers, self._samples = {}, {}, {}
        self._latest = None

    # -- intake (the aggregator thread) -----------------------------------------------------------
    def on_call(self, record: Record) -> None:
        self.on_batch(CallBatch([record]))

    def on_batch(self, batch: CallBatch) -> None:
        """Add a drained chunk: per group of calls a few numpy operations, not work per call."""
        for group in batch.calls:
            short_buckets = group.end_ns // (SHORT_BUCKET_S * _NS)
            long_buckets = group.end_ns // (LONG_BUCKET_S * _NS)
            errors = categories = None
            if group.outcome == sc.OUTCOME_ERROR:
                categories = group.error_categories
                errors = np.array([c is not None for c in categories], dtype=bool)
            users, sessions = group.users, group.sessions
            with self._lock:
                key = (group.migration, group.version)
                state = self._versions.get(key)
                if state is None:
                    state = self._versions[key] = VersionState(
                        Window(SHORT_BUCKET_S, SHORT_BUCKETS), Window(LONG_BUCKET_S, LONG_BUCKETS)
                    )
                state.short.add_group(
                    short_buckets, errors=errors, categories=categories, users=users, sessions=sessions
                )
                state.long.add_group(
                    long_buckets, errors=errors, categories=categories, users=users, sessions=sessions
                )
                op_key = (group.migration, group.operation, group.version)
                op = self._operations.get(op_key)
                if op is None:
                    op = self._operations[op_key] = OperationState(
                        Window(SHORT_BUCKET_S, SHORT_BUCKETS), Ring(self.settings.latency_samples)
                    )
                op.window.add_group(short_buckets, errors=errors, categories=categories)
                if group.outcome == sc.OUTCOME_OK:  # failures end early: they would flatter latency
                    op.latency.add_many(group.durations)
                    cpu = group.cpu
                    if cpu.size:
                        if op.cpu is None:
                            op.cpu = Ring(self.settings.latency_samples)
                        op.cpu.add_many(cpu)

    def add_sample(self, metric: str, migration: str, version: str, value: float) -> None:
        """A per-call value of ``metric`` ("cost", "quality") for the verdict of that metric."""
        with self._lock:
            ring = self._samples.get((metric, migration, version))
            if ring is None:
                ring = self._samples[(metric, migration, version)] = Ring(self.settings.latency_samples)
            ring.add(value)

    def tick(self) -> None:
        """Re-evaluate when the last snapshot is older than ``evaluate_every_s``."""
        self.latest()

    def add_guard(self, guard: Guard) -> None:
        with self._lock:
            self._guards.append(guard)

    # -- evaluation -------------------------------------------------------------------------------
    def latest(self) -> Snapshot:
        latest = self._latest
        if latest is None or self._clock() - latest.taken_at >= self.settings.evaluate_every_s:
            latest = self.evaluate()
        return latest

    def evaluate(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            migrations = sorted({m for m, _ in self._versions})
            partial = {m: self._evaluate_migration(m, now) for m in migrations}
            medians: dict[tuple[str, str, str, str], float] = {}  # migration, operation, metric, version
            for (migration, operation, version), op in self._operations.items():
                if op.latency.size:
                    medians[(migration, operation, "latency", version)] = float(
                        np.median(op.latency.samples())
                    )
                if op.cpu is not None and op.cpu.size:
                    medians[(migration, operation, "cpu", version)] = float(np.median(op.cpu.samples()))
            for (metric, sample_migration, version), ring in self._samples.items():
                if ring.size:
                    medians[(sample_migration, ALL_OPERATIONS, metric, version)] = float(
                        np.median(ring.samples())
                    )
            # One family for Holm: every comparison judged at this moment, across migrations.
            judged = adjust([v for snap in partial.values() for v in snap.verdicts], self.settings, medians)
            position, result = 0, {}
            for migration, snap in partial.items():
                count = len(snap.verdicts)
                result[migration] = replace(snap, verdicts=tuple(judged[position : position + count]))
                position += count
            snapshot = Snapshot(taken_at=now, migrations=result)
            self._latest = snapshot
            due = self._guards_due(snapshot)
        for guard, verdict in due:
            try:
                guard.callback(verdict)
            except Exception:
                _logger.exception("otel-migration: guard callback %r failed", guard.callback)
        return snapshot

    def _control_and_candidates(self, migration: str, versions: list[str]) -> tuple[str, tuple[str, ...]]:
        rollout = self._rollout_of(migration)
        if rollout is not None:
            control = rollout.control
            return control, tuple(v for v in versions if v != control) or (rollout.candidate,)
        ordered = sorted(versions, key=_version_key)
        return ordered[0], tuple(ordered[1:])

    def _evaluate_migration(self, migration: str, now: float) -> MigrationSnapshot:
        versions = sorted(v for m, v in self._versions if m == migration)
        control, candidates = self._control_and_candidates(migration, versions)
        states = {v: self._versions[(migration, v)] for v in versions}
        adoption = self._adoption(migration, now, states, control)
        errors = tuple(self._errors(v, state, now) for v, state in states.items())

        latency: list[LatencyStats] = []
        improvements: list[Improvement] = []
        verdicts: list[Verdict] = []
        operations = sorted({o for m, o, _ in self._operations if m == migration})
        for operation in operations:
            stats: dict[str, LatencyStats] = {}
            for version in versions:
                op = self._operations.get((migration, operation, version))
                if op is None or op.latency.size == 0:
                    continue
                samples = op.latency.samples()
                p50, p95, p99 = (float(x) for x in np.percentile(samples, [50, 95, 99]))
                stats[version] = LatencyStats(
                    operation, version, int(samples.size), p50, p95, p99, float(samples.mean())
                )
            latency.extend(stats.values())
            for candidate in candidates:
                base, new = stats.get(control), stats.get(candidate)
                if base is not None and new is not None:
                    improvements.append(
                        Improvement(
                            operation,
                            candidate,
                            _improvement(base.mean, new.mean),
                            _improvement(base.p50, new.p50),
                            _improvement(base.p95, new.p95),
                        )
                    )
                empty = np.empty(0)
                op_c = self._operations.get((migration, operation, control))
                op_t = self._operations.get((migration, operation, candidate))
                verdicts.append(
                    shift_verdict(
                        "latency",
                        migration,
                        operation,
                        control,
                        candidate,
                        op_c.latency.samples() if op_c else empty,
                        op_t.latency.samples() if op_t else empty,
                    )
                )
                verdicts.append(
                    error_rate_verdict(
                        migration,
                        operation,
                        control,
                        candidate,
                        _flip(op_c.window.totals(now)) if op_c else (0, 0),
                        _flip(op_t.window.totals(now)) if op_t else (0, 0),
                        self.settings,
                    )
                )
                cpu_c = op_c.cpu if op_c else None
                cpu_t = op_t.cpu if op_t else None
                if cpu_c is not None or cpu_t is not None:  # measured (measure_cpu, the default)
                    verdicts.append(
                        shift_verdict(
                            "cpu",
                            migration,
                            operation,
                            control,
                            candidate,
                            cpu_c.samples() if cpu_c else empty,
                            cpu_t.samples() if cpu_t else empty,
                        )
                    )
        verdicts.extend(self._sample_verdicts(migration, control, candidates))
        return MigrationSnapshot(
            name=migration,
            control=control,
            candidates=candidates,
            adoption=adoption,
            errors=errors,
            latency=tuple(latency),
            improvements=tuple(improvements),
            verdicts=tuple(verdicts),
            sample_ratio=self._sample_ratio(migration, states, control, candidates, now),
        )

    def _sample_verdicts(self, migration: str, control: str, candidates: tuple[str, ...]) -> list[Verdict]:
        """Cost per LLM call and quality score, over all operations of the migration."""
        verdicts = []
        for metric in sorted({m for m, mig, _ in self._samples if mig == migration}):
            base = self._samples.get((metric, migration, control))
            for candidate in candidates:
                new = self._samples.get((metric, migration, candidate))
                verdicts.append(
                    shift_verdict(
                        metric,
                        migration,
                        ALL_OPERATIONS,
                        control,
                        candidate,
                        base.samples() if base else np.empty(0),
                        new.samples() if new else np.empty(0),
                    )
                )
        return verdicts

    def _adoption(
        self, migration: str, now: float, states: dict[str, VersionState], control: str
    ) -> Adoption:
        per_version, ratios = [], {}
        for label, attr in (("1h", "short"), ("24h", "long")):
            sketches = {v: getattr(s, attr).user_sketch(now) for v, s in states.items()}
            everyone = HyperLogLog.union(sketches.values()).estimate()
            candidates = HyperLogLog.union(sk for v, sk in sketches.items() if v != control).estimate()
            ratios[label] = candidates / everyone if everyone > 0 else 0.0
            if label == "1h":
                users_1h = {v: sk.estimate() for v, sk in sketches.items()}
            else:
                users_24h = {v: sk.estimate() for v, sk in sketches.items()}
        for version, state in states.items():
            per_version.append(
                VersionAdoption(
                    version,
                    users_1h[version],
                    users_24h[version],
                    state.short.totals(now)[0],
                    state.long.totals(now)[0],
                    state.short.user_sketch(now, sessions=True).estimate(),
                    state.long.user_sketch(now, sessions=True).estimate(),
                )
            )
        ratio = ratios["24h"]
        a = self.settings
        stage: Stage = (
            "replaced"
            if ratio >= a.adoption_replaced
            else "adopted"
            if ratio >= a.adoption_adopted
            else "low"
            if ratio >= a.adoption_started
            else "not_started"
        )
        history = self._history.setdefault(migration, deque(maxlen=100_000))
        history.append((now, ratio))
        while history and history[0][0] < now - 2 * a.stall_after_s:
            history.popleft()
        recent = [r for t, r in history if t >= now - a.stall_after_s]
        covered = bool(history) and history[0][0] <= now - a.stall_after_s
        stalled = (
            covered
            and stage in ("low", "adopted")
            and bool(recent)
            and max(recent) - min(recent) < a.stall_epsilon
        )
        return Adoption(ratios["1h"], ratios["24h"], stage, stalled, tuple(per_version))

    def _errors(self, version: str, state: VersionState, now: float) -> ErrorStats:
        requests, errors = state.short.totals(now)
        users = state.short.user_sketch(now).estimate()
        error_users = min(state.short.user_sketch(now, errors_only=True).estimate(), users)
        categories = state.short.category_counts(now)
        spikes = []
        current = state.short.current_slot(now)
        if current is not None:
            recent_requests = int(state.short.requests[current])
            recent = state.short.categories[current]
            baseline = state.short.category_counts(now, exclude_slot=current)
            baseline_requests = requests - recent_requests
            for category, count in recent.items():
                if count < self.settings.spike_min_errors or recent_requests == 0:
                    continue
                recent_rate = count / recent_requests
                base_rate = baseline.get(category, 0) / baseline_requests if baseline_requests else 0.0
                if base_rate == 0 or recent_rate >= self.settings.spike_factor * base_rate:
                    spikes.append(category)
        return ErrorStats(
            version=version,
            requests=requests,
            errors=errors,
            error_rate=errors / requests if requests else 0.0,
            error_free_user_rate=1 - error_users / users if users > 0 else 1.0,
            categories=categories,
            spikes=tuple(sorted(spikes)),
        )

    def _sample_ratio(
        self,
        migration: str,
        states: dict[str, VersionState],
        control: str,
        candidates: tuple[str, ...],
        now: float,
    ) -> SampleRatio | None:
        rollout = self._rollout_of(migration)
        if rollout is None or rollout.killed or not 0 < rollout.percent < 100 or len(candidates) != 1:
            return None
        if rollout.percent_since > now - SHORT_BUCKET_S * SHORT_BUCKETS:
            return None  # the percent changed within the window: no single split to expect
        users = {v: s.short.user_sketch(now).estimate() for v, s in states.items()}
        observed_control, observed_candidate = users.get(control, 0.0), users.get(candidates[0], 0.0)
        total = observed_control + observed_candidate
        if total < SRM_MIN_USERS:
            return None
        expected = rollout.percent / 100
        result = sample_ratio_mismatch(
            [round(observed_control), round(observed_candidate)], [1 - expected, expected]
        )
        share = observed_candidate / total
        # Counts come from sketches: only a deviation beyond their error can be a mismatch.
        mismatch = result.p_value < SRM_ALPHA and abs(share - expected) > 3 * RELATIVE_ERROR * max(
            share, 0.01
        )
        return SampleRatio(expected, share, total, result.p_value, mismatch)

    def _guards_due(self, snapshot: Snapshot) -> list[tuple[Guard, Verdict]]:
        due = []
        for index, guard in enumerate(self._guards):
            for verdict in snapshot.verdicts():
                if not guard.matches(verdict):
                    continue
                key = (index, verdict.migration, verdict.operation, verdict.metric, verdict.candidate)
                streak = self._streaks.get(key, 0) + 1 if verdict.state == "worse" else 0
                if streak >= guard.consecutive:
                    due.append((guard, verdict))
                    trigger = (verdict.migration, verdict.operation, verdict.metric)
                    self.guard_triggers[trigger] = self.guard_triggers.get(trigger, 0) + 1
                    streak = 0
                self._streaks[key] = streak
        return due

    def read_guards(self) -> Measured:
        return [
            (n, {sc.MIGRATION_NAME: m, sc.MIGRATION_OPERATION: o, sc.MIGRATION_METRIC: metric})
            for (m, o, metric), n in list(self.guard_triggers.items())
        ]
