"""From :class:`Measurements` to the report's figures: the one place where numbers are derived.

Every source goes through here, so a rate, a share or an NPS is computed the same way whatever the
source: from cumulative counts (errors / calls, (promoters - detractors) / answers), never from a
gauge's last-hour window, which would make the sources disagree for no reason a reader could see.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from ._model import Figure, Figures, Measurements, VerdictFact

__all__ = ["build", "version_key"]

_METRIC_WORDS = {
    "latency": "latency",
    "error_rate": "error rate",
    "cost": "cost per LLM call",
    "quality": "quality score",
}
K = TypeVar("K")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally: 1.9 before 1.10, numbers before words."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.replace("-", ".").split("."))


def _sum_by(items: Iterable[tuple[K, float]]) -> dict[K, float]:
    totals: dict[K, float] = defaultdict(float)
    for key, value in items:
        totals[key] += value
    return dict(totals)


def _label_key(label: str) -> tuple[int, float, str]:
    """Bucket bounds in numeric order (+Inf last), other labels alphabetically."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _bound_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def _verdict_text(fact: VerdictFact, improvements: dict[tuple[str, ...], float]) -> str:
    """The verdict in words: the statistical reason when the source has it, else what the gauge says."""
    where = "all operations" if fact.operation == "*" else fact.operation
    what = _METRIC_WORDS.get(fact.metric, fact.metric)
    against = f" than {fact.control}" if fact.control else " than the control"
    if fact.reason:
        return f"{fact.version} on {where}, {what}: {fact.reason}"
    if fact.state in ("better", "worse"):
        text = f"{fact.version} is {fact.state}{against} on {what} of {where}"
        if fact.metric == "latency":
            parts = [
                f"{stat} {abs(pct):.1f} % {'faster' if pct >= 0 else 'slower'}"
                for stat in ("p50", "p95", "mean")
                if (pct := improvements.get((fact.migration, fact.operation, fact.version, stat))) is not None
            ]
            if parts:
                text += f" ({', '.join(parts)})"
        return text + "."
    return f"{fact.version} on {where}, {what}: not decided (too few calls, or no significant difference)."


def _row_key(r: Figure) -> tuple[object, ...]:
    return (
        r.section,
        r.metric,
        r.migration,
        r.operation,
        version_key(r.version),
        _label_key(r.label),
        r.at or 0,
    )


def build(m: Measurements) -> Figures:
    rows: list[Figure] = []
    add = rows.append

    # -- version split ----------------------------------------------------------------------------
    requests = _sum_by(((mig, ver), n) for (mig, _, ver, _), n in m.requests.items())
    per_migration = _sum_by((mig, n) for (mig, _), n in requests.items())
    for (mig, ver), n in requests.items():
        add(Figure("version_split", "requests", n, mig, ver))
        add(Figure("version_split", "share", _ratio(n, per_migration[mig]), mig, ver))
    for (mig, ver), users in m.users.items():
        add(Figure("version_split", "users_24h", users, mig, ver))

    # -- adoption ---------------------------------------------------------------------------------
    for mig, window, at, ratio in sorted(m.adoption, key=lambda p: (p[0], p[1], p[2])):
        add(Figure("adoption", "ratio", ratio, mig, label=window, at=at))
    for mig, stage in m.stages.items():
        add(Figure("adoption", "stage", None, mig, text=stage))

    # -- errors -----------------------------------------------------------------------------------
    by_category = _sum_by(((mig, ver, cat), n) for (mig, _, ver, cat), n in m.errors.items())
    for (mig, ver, cat), n in by_category.items():
        add(Figure("errors", "errors", n, mig, ver, label=cat))
    errors = _sum_by(((mig, ver), n) for (mig, ver, _), n in by_category.items())
    for (mig, ver), n in requests.items():
        add(Figure("errors", "error_rate", _ratio(errors.get((mig, ver), 0.0), n), mig, ver))

    # -- latency ----------------------------------------------------------------------------------
    for (mig, op, ver, stat), seconds in m.durations.items():
        add(Figure("latency", "duration_s", seconds, mig, ver, op, label=stat))
    for (mig, op, ver), hist in m.histograms.items():
        calls = sum(hist.counts)
        add(Figure("latency", "calls", calls, mig, ver, op))
        add(Figure("latency", "mean_all_s", _ratio(hist.total, calls), mig, ver, op))
        for bound, count in zip(hist.bounds, hist.counts, strict=True):
            add(Figure("latency", "bucket", count, mig, ver, op, label=_bound_label(bound)))

    # -- verdicts ---------------------------------------------------------------------------------
    value = {"better": 1.0, "worse": -1.0}
    for fact in m.verdicts:
        text = _verdict_text(fact, m.improvements)
        add(Figure("verdicts", "verdict", value.get(fact.state, 0.0), fact.migration, fact.version,
                   fact.operation, label=fact.metric, text=text))  # fmt: skip
    for (mig, op, ver, stat), pct in m.improvements.items():
        add(Figure("verdicts", "improvement_pct", pct, mig, ver, op, label=stat))

    # -- cost and budget --------------------------------------------------------------------------
    for (mig, ver, model, tier), usd in m.cost.items():
        add(Figure("cost", "cost_usd", usd, mig, ver, label=model, text=tier))
    for (mig, ver, model, tier), n in m.llm_calls.items():
        add(Figure("cost", "llm_calls", n, mig, ver, label=model, text=tier))
    spend = _sum_by(((mig, ver), usd) for (mig, ver, _, _), usd in m.cost.items())
    llm_calls = _sum_by(((mig, ver), n) for (mig, ver, _, _), n in m.llm_calls.items())
    for (mig, ver), n in llm_calls.items():
        add(Figure("cost", "cost_per_call_usd", _ratio(spend.get((mig, ver), 0.0), n), mig, ver))
    for (budget, period), utilization in m.budgets.items():
        add(Figure("cost", "budget_utilization", utilization, label=f"{budget} ({period})"))

    # -- quality and NPS --------------------------------------------------------------------------
    for (mig, ver), (score_sum, scores) in m.quality.items():
        add(Figure("quality", "quality_mean", _ratio(score_sum, scores), mig, ver))
        add(Figure("quality", "quality_scores", scores, mig, ver))
    for (mig, ver, action), n in m.actions.items():
        add(Figure("quality", "actions", n, mig, ver, label=action))
    nps = dict(m.nps)
    for (mig, ver, cls), n in m.feedback.items():
        add(Figure("quality", "feedback", n, mig, ver, label=cls))
        net, answers = nps.get((mig, ver), (0.0, 0.0))
        sign = {"promoter": 1, "detractor": -1}.get(cls, 0)
        nps[(mig, ver)] = (net + sign * n, answers + n)
    for (mig, ver), (net, answers) in nps.items():
        add(Figure("quality", "nps", _ratio(100 * net, answers), mig, ver))
        add(Figure("quality", "nps_answers", answers, mig, ver))

    rows.sort(key=_row_key)
    return Figures(m.source, m.taken_at, tuple(rows), tuple(m.notes))
