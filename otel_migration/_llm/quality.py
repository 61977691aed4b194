"""Quality of LLM answers per version and tier: scores, user actions, NPS, CSAT, sentiment, confidence.

Each ``record_*`` call checks its input first (a ``ValueError`` naming the argument, and nothing
recorded), attaches a ``gen_ai.evaluation.result`` event to the current span, and adds to the
aggregate of its migration, version and model tier. Version and migration default to the
versioned call in effect; quality is often judged later (the user approves minutes after the
answer), so both can be given explicitly.

Definitions (the requirement documents'): scores 0-100 are excellent >= 90, good 70-89, fair
50-69, poor < 50; acceptance = approved without edits / actions; NPS = % promoters (9-10) - %
detractors (0-6); CSAT is the mean 1-5 rating and the share of 4-5; sentiment is VADER's compound
score (>= 0.05 positive, <= -0.05 negative), computed offline from its bundled lexicon; low
confidence is < 0.7; upgrade rate = upgrades to a higher tier / actions.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from opentelemetry import trace
from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.context import current_scope
from .._core.instruments import Measured, histogram, observables
from .._core.runtime import active

__all__ = [
    "QualityStats",
    "QualityTracker",
    "record_action",
    "record_confidence",
    "record_feedback",
    "record_quality",
    "record_upgrade",
]

ACTIONS: Final = ("approved", "edited", "regenerated", "abandoned")
SCORE_BANDS: Final = (("excellent", 90.0), ("good", 70.0), ("fair", 50.0), ("poor", -math.inf))
LOW_CONFIDENCE: Final = 0.7
RECENT: Final = 5000  # recent scores and approval times kept per version and tier


def _band(score: float) -> str:
    return next(name for name, floor in SCORE_BANDS if score >= floor)


def _nps_class(rating: int) -> str:
    return "promoter" if rating >= 9 else "detractor" if rating <= 6 else "passive"


_analyzer: Any = None
_analyzer_lock = threading.Lock()


def sentiment_of(text: str) -> str:
    """positive, neutral or negative, from VADER's compound score."""
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _analyzer = SentimentIntensityAnalyzer()
        compound = float(_analyzer.polarity_scores(text)["compound"])
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


@dataclass
class _Aggregate:
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    score_count: int = 0
    score_sum: float = 0.0
    bands: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    edits: int = 0
    approval_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    nps: dict[str, int] = field(default_factory=dict)
    csat: dict[int, int] = field(default_factory=dict)
    sentiment: dict[str, int] = field(default_factory=dict)
    confidence_count: int = 0
    confidence_sum: float = 0.0
    low_confidence: int = 0
    upgrades: int = 0


@dataclass(frozen=True, slots=True)
class QualityStats:
    """Quality of one migration, version and tier (rates are None until there is something to rate)."""

    migration: str
    version: str
    tier: str
    scores: int
    mean_score: float | None
    score_bands: dict[str, int]
    actions: int
    acceptance_rate: float | None
    edit_rate: float | None
    regeneration_rate: float | None
    abandonment_rate: float | None
    median_time_to_approval_s: float | None
    nps: float | None
    nps_answers: int
    csat: float | None
    csat_satisfied: float | None
    sentiment: dict[str, int]
    mean_confidence: float | None
    low_confidence: int
    upgrade_rate: float | None


_Key = tuple[str, str, str]  # migration, version, tier


class QualityTracker:
    """The per-provider aggregate behind the ``record_*`` functions and the quality metrics."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._aggregates: dict[_Key, _Aggregate] = {}
        self._sample_sinks: list[Callable[[str, str, str, float], None]] = []
        self._score = histogram(
            meter,
            sc.METRIC_QUALITY_SCORE,
            "1",
            "Quality scores (0-100) of LLM answers.",
            (50.0, 70.0, 90.0, 100.0),
        )
        self._confidence = histogram(
            meter,
            sc.METRIC_QUALITY_CONFIDENCE,
            "1",
            "Model confidence (0-1) of LLM answers.",
            (0.5, 0.7, 0.9, 1.0),
        )
        observables(
            meter.create_observable_counter,
            (
                sc.METRIC_QUALITY_ACTIONS,
                self._counts(sc.MIGRATION_QUALITY_ACTION, lambda a: a.actions),
                "{action}",
                "What users did with an answer.",
            ),
            (
                sc.METRIC_QUALITY_FEEDBACK,
                self._counts(sc.MIGRATION_NPS_CLASS, lambda a: a.nps),
                "{answer}",
                "NPS answers by class: promoter, passive, detractor.",
            ),
            (
                sc.METRIC_QUALITY_CSAT,
                self._counts(sc.MIGRATION_CSAT_RATING, lambda a: a.csat),
                "{answer}",
                "CSAT answers by rating (1-5).",
            ),
            (
                sc.METRIC_QUALITY_SENTIMENT,
                self._counts(sc.MIGRATION_SENTIMENT, lambda a: a.sentiment),
                "{answer}",
                "Sentiment of feedback text.",
            ),
            (
                sc.METRIC_QUALITY_UPGRADES,
                self._read_upgrades,
                "{upgrade}",
                "Answers regenerated with a higher model tier.",
            ),
        )
        observables(
            meter.create_observable_gauge,
            (
                sc.METRIC_QUALITY_NPS,
                self._read_nps_score,
                "1",
                "Net Promoter Score (-100 to 100) of all answers so far.",
            ),
        )

    def reset_after_fork(self) -> None:
        """In a forked child: start empty (the parent exports its own) with a fresh lock."""
        self._lock = threading.Lock()
        self._aggregates = {}

    def add_sample_sink(self, sink: Callable[[str, str, str, float], None]) -> None:
        """``sink(metric, migration, version, value)`` receives every score (for verdicts)."""
        self._sample_sinks.append(sink)

    def _aggregate(self, key: _Key) -> _Aggregate:
        found = self._aggregates.get(key)
        if found is None:
            found = self._aggregates[key] = _Aggregate()
        return found

    def score(self, key: _Key, score: float) -> None:
        with self._lock:
            a = self._aggregate(key)
            a.scores.append(score)
            a.score_count += 1
            a.score_sum += score
            band = _band(score)
            a.bands[band] = a.bands.get(band, 0) + 1
        self._score.record(score, _attributes(key))
        for sink in self._sample_sinks:
            sink("quality", key[0], key[1], score)

    def action(self, key: _Key, action: str, edits: int, seconds: float | None) -> None:
        with self._lock:
            a = self._aggregate(key)
            a.actions[action] = a.actions.get(action, 0) + 1
            a.edits += edits
            if seconds is not None and action in ("approved", "edited"):
                a.approval_seconds.append(seconds)

    def feedback(self, key: _Key, rating: int, scale: str, sentiment: str | None) -> None:
        with self._lock:
            a = self._aggregate(key)
            if scale == "nps":
                cls = _nps_class(rating)
                a.nps[cls] = a.nps.get(cls, 0) + 1
            else:
                a.csat[rating] = a.csat.get(rating, 0) + 1
            if sentiment is not None:
                a.sentiment[sentiment] = a.sentiment.get(sentiment, 0) + 1

    def confidence(self, key: _Key, value: float) -> None:
        with self._lock:
            a = self._aggregate(key)
            a.confidence_count += 1
            a.confidence_sum += value
            a.low_confidence += value < LOW_CONFIDENCE
        self._confidence.record(value, _attributes(key))

    def upgrade(self, key: _Key) -> None:
        with self._lock:
            self._aggregate(key).upgrades += 1

    def stats(self) -> list[QualityStats]:
        with self._lock:
            return [_stats(key, a) for key, a in sorted(self._aggregates.items())]

    def totals(self) -> list[tuple[_Key, dict[str, int], dict[str, int], dict[int, int]]]:
        """Cumulative actions, NPS classes and CSAT ratings per (migration, version, tier), copied."""
        with self._lock:
            return [(k, dict(a.actions), dict(a.nps), dict(a.csat)) for k, a in self._aggregates.items()]

    # -- observable callbacks ---------------------------------------------------------------------
    def _items(self) -> list[tuple[_Key, _Aggregate]]:
        with self._lock:
            return list(self._aggregates.items())

    def _counts(
        self, label: str, counts: Callable[[_Aggregate], Mapping[Any, int]]
    ) -> Callable[[], Measured]:
        """A read of the counts ``counts(aggregate)`` keeps, each labelled ``label`` = its key as text."""

        def read() -> Measured:
            with self._lock:  # copied under the lock: a record_* call may be adding to them
                found = [(k, list(counts(a).items())) for k, a in self._aggregates.items()]
            return [(n, {**_attributes(k), label: str(value)}) for k, items in found for value, n in items]

        return read

    def _read_upgrades(self) -> Measured:
        return [(a.upgrades, _attributes(k)) for k, a in self._items() if a.upgrades]

    def _read_nps_score(self) -> Measured:
        result = []
        for k, a in self._items():
            nps = _nps(a.nps)
            if nps is not None:
                result.append((nps, _attributes(k)))
        return result


def _attributes(key: _Key) -> dict[str, str]:
    return {sc.MIGRATION_NAME: key[0], sc.MIGRATION_VERSION: key[1], sc.LLM_TIER: key[2]}


def _nps(counts: dict[str, int]) -> float | None:
    answers = sum(counts.values())
    if not answers:
        return None
    return 100 * (counts.get("promoter", 0) - counts.get("detractor", 0)) / answers


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _stats(key: _Key, a: _Aggregate) -> QualityStats:
    actions = sum(a.actions.values())
    csat_answers = sum(a.csat.values())
    return QualityStats(
        migration=key[0],
        version=key[1],
        tier=key[2],
        scores=a.score_count,
        mean_score=a.score_sum / a.score_count if a.score_count else None,
        score_bands=dict(a.bands),
        actions=actions,
        acceptance_rate=_rate(a.actions.get("approved", 0), actions),
        edit_rate=_rate(a.actions.get("edited", 0), actions),
        regeneration_rate=_rate(a.actions.get("regenerated", 0), actions),
        abandonment_rate=_rate(a.actions.get("abandoned", 0), actions),
        median_time_to_approval_s=statistics.median(a.approval_seconds) if a.approval_seconds else None,
        nps=_nps(a.nps),
        nps_answers=sum(a.nps.values()),
        csat=sum(r * n for r, n in a.csat.items()) / csat_answers if csat_answers else None,
        csat_satisfied=_rate(a.csat.get(4, 0) + a.csat.get(5, 0), csat_answers),
        sentiment=dict(a.sentiment),
        mean_confidence=a.confidence_sum / a.confidence_count if a.confidence_count else None,
        low_confidence=a.low_confidence,
        upgrade_rate=_rate(a.upgrades, actions),
    )


# -- the public functions ---------------------------------------------------------------------------
def _number(name: str, value: object, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= high
        or math.isnan(value)
    ):
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _key(migration: str | None, version: str | None, tier: str | None) -> tuple[QualityTracker, _Key] | None:
    telemetry = active()
    tracker = telemetry.find(QualityTracker) if telemetry is not None and telemetry.enabled else None
    if telemetry is None or tracker is None:
        return None
    scope = current_scope()
    return tracker, (
        migration or (scope.migration if scope else telemetry.settings.migration),
        version or (scope.version if scope else "unversioned"),
        tier or "unknown",
    )


def _event(
    name: str, value: float | None = None, label: str | None = None, explanation: str | None = None
) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, str | float] = {sc.GEN_AI_EVALUATION_NAME: name}
    if value is not None:
        attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE] = value
    if label is not None:
        attributes[sc.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if explanation is not None:
        attributes[sc.GEN_AI_EVALUATION_EXPLANATION] = explanation
    span.add_event(sc.GEN_AI_EVALUATION_EVENT, attributes)


def record_quality(
    score: float,
    *,
    version: str | None = None,
    migration: str | None = None,
    tier: str | None = None,
    explanation: str | None = None,
) -> None:
    """A 0-100 quality score of an answer (excellent >= 90, good 70-89, fair 50-69, poor < 50)."""
    value = _number("score", score, 0, 100)
    found = _key(migration, version, tier)
    _event("quality_score", value, _band(value), explanation)
    if found is not None:
        found[0].score(found[1], value)


def record_action(
    action: Literal["approved", "edited", "regenerated", "abandoned"],
    *,
    edits: int = 0,
    seconds: float | None = None,
    version: str | None = None,
    migration: str | None = None,
    tier: str | None = None,
) -> None:
    """What the user did with an answer; ``seconds`` from answer to approval feeds time to approval."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if isinstance(edits, bool) or not isinstance(edits, int) or edits < 0:
        raise ValueError(f"edits must be a whole number >= 0, got {edits!r}")
    if action == "approved" and edits:
        action = "edited"  # approved after edits is an edit, not an acceptance
    if seconds is not None:
        seconds = _number("seconds", seconds, 0, math.inf)
    found = _key(migration, version, tier)
    _event("user_action", None, action)
    if found is not None:
        found[0].action(found[1], action, edits, seconds)


def record_feedback(
    rating: int,
    *,
    scale: Literal["nps", "csat"] = "nps",
    text: str | None = None,
    version: str | None = None,
    migration: str | None = None,
    tier: str | None = None,
) -> None:
    """A survey answer: NPS 0-10 or CSAT 1-5, with optional free text whose sentiment is counted."""
    if scale not in ("nps", "csat"):
        raise ValueError(f"scale must be 'nps' or 'csat', got {scale!r}")
    low, high = (0, 10) if scale == "nps" else (1, 5)
    if isinstance(rating, bool) or not isinstance(rating, int) or not low <= rating <= high:
        raise ValueError(f"rating must be a whole number from {low} to {high} for {scale}, got {rating!r}")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text must be a string, got {text!r}")
    sentiment = sentiment_of(text) if text else None
    found = _key(migration, version, tier)
    label = _nps_class(rating) if scale == "nps" else f"csat_{rating}"
    _event(scale, float(rating), label, f"sentiment: {sentiment}" if sentiment else None)
    if found is not None:
        found[0].feedback(found[1], rating, scale, sentiment)


def record_confidence(
    confidence: float, *, version: str | None = None, migration: str | None = None, tier: str | None = None
) -> None:
    """The model's own confidence in an answer, 0-1 (low below 0.7)."""
    value = _number("confidence", confidence, 0, 1)
    found = _key(migration, version, tier)
    _event("confidence", value, "low" if value < LOW_CONFIDENCE else "ok")
    if found is not None:
        found[0].confidence(found[1], value)


def record_upgrade(
    from_tier: str, to_tier: str, *, version: str | None = None, migration: str | None = None
) -> None:
    """An answer regenerated with a higher model tier (counted against ``from_tier``)."""
    for name, value in (("from_tier", from_tier), ("to_tier", to_tier)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    found = _key(migration, version, from_tier)
    _event("model_upgrade", None, f"{from_tier}->{to_tier}")
    if found is not None:
        found[0].upgrade(found[1])
