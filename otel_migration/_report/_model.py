"""What every source is read into, and the figures a report shows.

Each source (the in-process state, an OTLP JSON lines file, a Prometheus server) fills one
:class:`Measurements`: the same counters, gauges and histograms the package exports, keyed by their
attributes. :func:`otel_migration._report._figures.build` turns that into :class:`Figures`, a flat
list of tidy rows, so the HTML, JSON and CSV of one report are the same numbers by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["SECTIONS", "Figure", "Figures", "Histogram", "Measurements", "VerdictFact"]

#: Sections in the order of the report (and of the dashboards).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("version_split", "Version split"),
    ("adoption", "Adoption over time"),
    ("errors", "Errors by version and category"),
    ("latency", "Latency per version"),
    ("verdicts", "Verdicts"),
    ("cost", "Cost and budget"),
    ("quality", "Quality and NPS"),
)

Key = tuple[str, ...]  # attribute values, in the order the comment above each field says
State = Literal["better", "worse", "inconclusive", "no_data"]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Explicit-bucket histogram: ``counts[i]`` calls took at most ``bounds[i]`` (the last: +Inf)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float = 0.0  # sum of the durations

    def merged(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError(f"histogram bounds differ: {self.bounds!r} and {other.bounds!r}")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.total + other.total)


@dataclass(frozen=True, slots=True)
class VerdictFact:
    migration: str
    operation: str
    version: str  # the candidate
    metric: str  # latency, error_rate, cost, quality
    state: State
    reason: str | None = None  # the statistical reason, when the source has it (in process)
    control: str | None = None


@dataclass
class Measurements:
    """The package's exported state, as one source saw it (cumulative counts since process start)."""

    source: str
    taken_at: float
    # (migration, operation, version, outcome) -> calls
    requests: dict[Key, float] = field(default_factory=dict)
    # (migration, operation, version, error category) -> errors
    errors: dict[Key, float] = field(default_factory=dict)
    # (migration, operation, version, statistic) -> seconds, over the most recent successful calls
    durations: dict[Key, float] = field(default_factory=dict)
    # (migration, operation, version) -> every call's duration
    histograms: dict[Key, Histogram] = field(default_factory=dict)
    # (migration, window, at) -> candidates' share of users
    adoption: list[tuple[str, str, float, float]] = field(default_factory=list)
    # (migration, version) -> unique users over the last 24 h (HyperLogLog)
    users: dict[Key, float] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    verdicts: list[VerdictFact] = field(default_factory=list)
    # (migration, operation, version, statistic) -> percent faster than the control
    improvements: dict[Key, float] = field(default_factory=dict)
    # (migration, version, model, tier) -> USD
    cost: dict[Key, float] = field(default_factory=dict)
    # (migration, version, model, tier) -> LLM calls
    llm_calls: dict[Key, float] = field(default_factory=dict)
    # (budget, period) -> spend / limit
    budgets: dict[Key, float] = field(default_factory=dict)
    # (migration, version) -> (sum of scores, number of scores)
    quality: dict[Key, tuple[float, float]] = field(default_factory=dict)
    # (migration, version, action) -> count
    actions: dict[Key, float] = field(default_factory=dict)
    # (migration, version, promoter|passive|detractor) -> answers, when the source has them by class
    feedback: dict[Key, float] = field(default_factory=dict)
    # (migration, version) -> (promoters - detractors, answers): the in-process source has only these
    nps: dict[Key, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the reader should know (skipped lines...)


@dataclass(frozen=True, slots=True)
class Figure:
    """One number of the report (or one sentence, for verdicts), as a tidy row."""

    section: str
    metric: str
    value: float | None
    migration: str = ""
    version: str = ""
    operation: str = ""
    label: str = ""  # the row's other dimension: category, statistic, window, model, action...
    at: float | None = None  # seconds since the epoch, for series over time
    text: str = ""

    COLUMNS = ("section", "metric", "migration", "version", "operation", "label", "at", "value", "text")


@dataclass(frozen=True, slots=True)
class Figures:
    source: str
    taken_at: float
    rows: tuple[Figure, ...]
    notes: tuple[str, ...] = ()

    def select(self, section: str, metric: str | None = None, **match: str) -> list[Figure]:
        """Rows of ``section`` (and ``metric``) whose fields equal ``match``."""
        return [
            row
            for row in self.rows
            if row.section == section
            and (metric is None or row.metric == metric)
            and all(getattr(row, key) == value for key, value in match.items())
        ]

    def migrations(self) -> list[str]:
        return sorted({row.migration for row in self.rows if row.migration})

    def __iter__(self) -> Iterator[Figure]:
        return iter(self.rows)
