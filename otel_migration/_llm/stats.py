"""What this process's LLM calls came to, per migration, version and model tier: the public read.

The figures are the ones the metrics export, read from the same aggregates: calls and their cost
(``migration.llm.calls``, ``migration.llm.cost``, summed over phases, providers and models) joined
with the quality recorded for the same migration, version and tier (``QualityStats``). Keys are the
metric labels as they are: an LLM call outside any versioned call has the version ``""``, while
quality recorded outside one is ``"unversioned"``, so the two stay on separate rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import LLMMetrics
from .quality import QualityStats, QualityTracker

__all__ = ["LLMStats", "llm_stats"]


@dataclass(frozen=True, slots=True)
class LLMStats:
    """LLM calls of one migration, version and model tier so far, and the quality of their answers."""

    migration: str
    version: str
    tier: str
    #: Every call, failed ones included; ``errors`` of them raised.
    calls: int
    errors: int
    #: Spend of the priced calls in USD (a model the price table lacks adds nothing).
    cost_usd: float
    #: None when no quality was recorded for this migration, version and tier.
    quality: QualityStats | None


def llm_stats(metrics: LLMMetrics, quality: QualityTracker) -> list[LLMStats]:
    """One row per migration, version and tier that has calls or quality, sorted by those three."""
    totals = metrics.totals_by_tier()
    graded = {(q.migration, q.version, q.tier): q for q in quality.stats()}
    return [
        LLMStats(*key, *totals.get(key, (0, 0, 0.0)), graded.get(key))
        for key in sorted(totals.keys() | graded.keys())
    ]
