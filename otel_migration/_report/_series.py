"""Exported series, as a file or a Prometheus server holds them, read into :class:`Measurements`.

Both wire sources reduce to the same shape: the current value of every counter series (cumulative),
the latest value of every gauge series, every histogram, and the adoption ratio over time, each with
its attributes. Only attribute names differ (``migration.version`` in OTLP, ``migration_version`` in
Prometheus), so one function reads both. Counters add up across processes; a gauge is each
process's own evaluation, so several processes' values are averaged (verdicts: the worst wins).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .._core import semconv as sc
from ._model import Histogram, Measurements, State, VerdictFact

__all__ = ["Series", "to_measurements"]

Attrs = Mapping[str, str]

_STATES: dict[float, State] = {1.0: "better", -1.0: "worse"}


@dataclass
class Series:
    source: str
    taken_at: float
    # metric name (as the package emits it) -> [(attributes, value)]
    counters: dict[str, list[tuple[Attrs, float]]] = field(default_factory=lambda: defaultdict(list))
    gauges: dict[str, list[tuple[Attrs, float]]] = field(default_factory=lambda: defaultdict(list))
    histograms: dict[str, list[tuple[Attrs, Histogram]]] = field(default_factory=lambda: defaultdict(list))
    # migration.adoption.ratio over time: (attributes, seconds since the epoch, ratio)
    ratio_history: list[tuple[Attrs, float, float]] = field(default_factory=list)


def to_measurements(series: Series, wire: Callable[[str], str]) -> Measurements:
    """``wire`` maps an attribute name as the package emits it to its name in ``series``."""

    def a(attrs: Attrs, *names: str) -> tuple[str, ...]:
        return tuple(attrs.get(wire(name), "") for name in names)

    def total(metric: str, *names: str) -> dict[tuple[str, ...], float]:
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for attrs, value in series.counters.get(metric, ()):
            sums[a(attrs, *names)] += value
        return dict(sums)

    def latest(
        metric: str, *names: str, combine: Callable[[list[float]], float] | None = None
    ) -> dict[tuple[str, ...], float]:
        values: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for attrs, value in series.gauges.get(metric, ()):
            values[a(attrs, *names)].append(value)
        return {k: (combine or _mean)(v) for k, v in values.items()}

    NAME, OP, VER = sc.MIGRATION_NAME, sc.MIGRATION_OPERATION, sc.MIGRATION_VERSION
    m = Measurements(source=series.source, taken_at=series.taken_at)
    m.requests = total(sc.METRIC_REQUESTS, NAME, OP, VER, sc.MIGRATION_OUTCOME)
    m.errors = total(sc.METRIC_ERRORS, NAME, OP, VER, sc.MIGRATION_ERROR_CATEGORY)
    m.durations = latest(sc.METRIC_PERFORMANCE_DURATION, NAME, OP, VER, sc.MIGRATION_STATISTIC)
    m.improvements = latest(sc.METRIC_PERFORMANCE_IMPROVEMENT, NAME, OP, VER, sc.MIGRATION_STATISTIC)
    for attrs, hist in series.histograms.get(sc.METRIC_DURATION, ()):
        call = a(attrs, NAME, OP, VER)
        seen = m.histograms.get(call)
        m.histograms[call] = hist if seen is None else seen.merged(hist)

    for attrs, at, ratio in series.ratio_history:
        m.adoption.append((attrs.get(wire(NAME), ""), attrs.get(wire(sc.MIGRATION_WINDOW), ""), at, ratio))
    for (mig, ver, window), users in latest(sc.METRIC_ADOPTION_USERS, NAME, VER, sc.MIGRATION_WINDOW).items():
        if window == "24h":
            m.users[(mig, ver)] = users
    for (mig, stage), flag in latest(sc.METRIC_ADOPTION_STAGE, NAME, sc.MIGRATION_STAGE, combine=max).items():
        if flag >= 1:
            m.stages[mig] = stage
    verdicts = latest(sc.METRIC_VERDICT, NAME, OP, VER, sc.MIGRATION_METRIC, combine=min)
    # The gauge names the candidate only; the control is the one version with calls but no verdict.
    judged = {(mig, ver) for mig, _, ver, _ in verdicts}
    unjudged: dict[str, set[str]] = defaultdict(set)
    for mig, _, ver, _ in m.requests:
        if (mig, ver) not in judged:
            unjudged[mig].add(ver)
    for (mig, op, ver, metric), value in verdicts.items():
        state: State = _STATES.get(value, "inconclusive")
        control = next(iter(unjudged[mig])) if len(unjudged[mig]) == 1 else None
        m.verdicts.append(VerdictFact(mig, op, ver, metric, state, control=control))

    tiers = (NAME, VER, sc.GEN_AI_REQUEST_MODEL, sc.LLM_TIER)
    m.cost = total(sc.METRIC_LLM_COST, *tiers)
    m.llm_calls = total(sc.METRIC_LLM_CALLS, *tiers)
    budgets = latest(sc.METRIC_LLM_BUDGET_UTILIZATION, sc.MIGRATION_BUDGET, sc.MIGRATION_BUDGET_PERIOD)
    m.budgets = budgets

    scores: dict[tuple[str, ...], tuple[float, float]] = {}
    for attrs, hist in series.histograms.get(sc.METRIC_QUALITY_SCORE, ()):
        key = a(attrs, NAME, VER)
        total_score, count = scores.get(key, (0.0, 0.0))
        scores[key] = (total_score + hist.total, count + sum(hist.counts))
    m.quality = scores
    m.actions = total(sc.METRIC_QUALITY_ACTIONS, NAME, VER, sc.MIGRATION_QUALITY_ACTION)
    m.feedback = total(sc.METRIC_QUALITY_FEEDBACK, NAME, VER, sc.MIGRATION_NPS_CLASS)
    return m


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
