"""The in-process source: snapshots plus the active telemetry's own counters.

A :class:`Snapshot` is one moment; adoption over time needs several, so the caller may pass the
snapshots it took along the way (a deploy script taking one per step, the demo one per phase).
Counts come from the same dictionaries the observable counters export, cost and quality from the
LLM and quality aggregates, so this source and the exported metrics agree exactly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .._analytics.engine import MigrationAnalytics
from .._analytics.snapshot import Snapshot
from .._core import runtime
from .._llm.runtime import LLMRuntime
from ._model import Measurements, VerdictFact

__all__ = ["from_process"]


def from_process(snapshots: Sequence[Snapshot]) -> Measurements:
    """Measurements of this process; ``snapshots`` in any order, the newest gives the latest figures."""
    telemetry = runtime.active()
    ordered = sorted(snapshots, key=lambda s: s.taken_at)
    if not ordered:  # now, as otel_migration.snapshot() evaluates it
        analytics = telemetry.find(MigrationAnalytics) if telemetry is not None else None
        if telemetry is None or analytics is None:
            ordered = [Snapshot(taken_at=time.time(), migrations={})]
        else:
            telemetry.recorder.drain()
            ordered = [analytics.evaluate()]
    latest = ordered[-1]
    m = Measurements(
        source="this process (otel_migration.snapshot())", taken_at=latest.taken_at or time.time()
    )

    for s in ordered:
        for ms in s.migrations.values():
            m.adoption.append((ms.name, "1h", s.taken_at, ms.adoption.ratio_1h))
            m.adoption.append((ms.name, "24h", s.taken_at, ms.adoption.ratio_24h))
    for mig in latest.migrations.values():
        m.stages[mig.name] = mig.adoption.stage
        for adoption in mig.adoption.versions:
            m.users[(mig.name, adoption.version)] = round(adoption.users_24h)  # as the gauge exports it
        for lat in mig.latency:
            for stat in ("p50", "p95", "p99", "mean"):
                m.durations[(mig.name, lat.operation, lat.version, stat)] = getattr(lat, stat)
        for imp in mig.improvements:
            for stat, attr in (("mean", "mean_pct"), ("p50", "p50_pct"), ("p95", "p95_pct")):
                m.improvements[(mig.name, imp.operation, imp.version, stat)] = getattr(imp, attr)
        m.verdicts.extend(
            VerdictFact(v.migration, v.operation, v.candidate, v.metric, v.state, v.reason, v.control)
            for v in mig.verdicts
        )

    if telemetry is None:
        return m
    for call, n in telemetry.recorder.request_counts().items():
        m.requests[call] = float(n)
    for (name, op, ver, _type, category), n in telemetry.recorder.error_counts().items():
        m.errors[(name, op, ver, category)] = m.errors.get((name, op, ver, category), 0.0) + n
    llm = telemetry.find(LLMRuntime)
    if llm is None:
        return m
    for (name, ver, _phase, _provider, model, tier), usd in dict(llm.metrics.cost).items():
        m.cost[(name, ver, model, tier)] = m.cost.get((name, ver, model, tier), 0.0) + usd
    for (name, ver, _phase, _provider, model, tier, _outcome), n in dict(llm.metrics.calls).items():
        m.llm_calls[(name, ver, model, tier)] = m.llm_calls.get((name, ver, model, tier), 0.0) + n
    for name, period, utilization in llm.budgets.utilization():
        m.budgets[(name, period)] = utilization
    for stats in llm.quality.stats():
        key: tuple[str, ...] = (stats.migration, stats.version)
        total, count = m.quality.get(key, (0.0, 0.0))
        if stats.mean_score is not None:
            m.quality[key] = (total + stats.mean_score * stats.scores, count + stats.scores)
        # The stats carry rates of whole counts: rate x total gives each count back exactly.
        for action, rate in (
            ("approved", stats.acceptance_rate),
            ("edited", stats.edit_rate),
            ("regenerated", stats.regeneration_rate),
            ("abandoned", stats.abandonment_rate),
        ):
            if rate is not None and rate > 0:
                akey = (stats.migration, stats.version, action)
                m.actions[akey] = m.actions.get(akey, 0.0) + round(rate * stats.actions)
        if stats.nps is not None and stats.nps_answers:
            net, answers = m.nps.get(key, (0.0, 0.0))
            m.nps[key] = (net + round(stats.nps * stats.nps_answers / 100), answers + stats.nps_answers)
    return m
