"""GenAI metrics and cost counters, aggregated off the call path from every :class:`LLMRecord`.

``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` with the GenAI
conventions' bucket advice, time to first chunk for streams, and cost and calls by model, tier,
version and phase. All of this feature's instruments are created here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.batch import CallBatch
from .._core.instruments import Measured, histogram, items_under, observables
from .._core.records import LLMRecord, Record

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "LLMMetrics"]

TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)


_CostKey = tuple[str, str, str, str, str, str]  # migration, version, phase, provider, model, tier


class LLMMetrics:
    """A call listener: GenAI histograms and cost counters from every :class:`LLMRecord`."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self.cost: dict[_CostKey, float] = {}
        self.calls: dict[tuple[str, ...], int] = {}
        self.unpriced: dict[str, int] = {}
        #: (provider, token type) -> token counts of SDK responses that were out of range, clamped.
        self.clamped: dict[tuple[str, str], int] = {}
        self._sample_sinks: list[Callable[[str, str, str, float], None]] = []
        self._tokens = histogram(
            meter,
            sc.METRIC_GEN_AI_TOKEN_USAGE,
            "{token}",
            "Tokens used per LLM call, by token type.",
            TOKEN_BUCKETS,
        )
        self._duration = histogram(
            meter,
            sc.METRIC_GEN_AI_OPERATION_DURATION,
            "s",
            "Duration of LLM calls as the client sees it.",
            DURATION_BUCKETS,
        )
        self._first_chunk = histogram(
            meter,
            sc.METRIC_GEN_AI_TIME_TO_FIRST_CHUNK,
            "s",
            "Time to the first streamed chunk.",
            DURATION_BUCKETS,
        )
        observables(
            meter.create_observable_counter,
            (
                sc.METRIC_LLM_COST,
                self._read_cost,
                "{USD}",
                "LLM spend in USD by model, tier, version and phase.",
            ),
            (
                sc.METRIC_LLM_CALLS,
                self._read_calls,
                "{call}",
                "LLM calls by model, tier, version, phase and outcome.",
            ),
            (
                sc.METRIC_LLM_UNPRICED,
                self._read_unpriced,
                "{call}",
                "LLM calls whose model has no price in the table.",
            ),
            (
                sc.METRIC_LLM_USAGE_CLAMPED,
                self._read_clamped,
                "{value}",
                "Token counts in SDK responses that were negative or absurd, clamped to 0 ... 10**9.",
            ),
        )

    def count_clamped(self, provider: str, token_type: str) -> None:
        """Count one clamped token count; called on the call path, rarely (bad network data only)."""
        key = (provider, token_type)
        with self._lock:
            self.clamped[key] = self.clamped.get(key, 0) + 1

    def reset_after_fork(self) -> None:
        """In a forked child: start empty (the parent exports its own calls) with a fresh lock."""
        self._lock = threading.Lock()
        self.cost, self.calls, self.unpriced = {}, {}, {}

    def add_sample_sink(self, sink: Callable[[str, str, str, float], None]) -> None:
        """``sink("cost", migration, version, usd)`` receives the cost of every priced, versioned call."""
        self._sample_sinks.append(sink)

    def on_batch(self, batch: CallBatch) -> None:
        """Only the batch's LLM calls concern these figures."""
        for record in batch.llm:
            self.on_call(record)

    def on_call(self, record: Record) -> None:
        if not isinstance(record, LLMRecord):
            return
        scope = record.scope
        base = {
            sc.GEN_AI_OPERATION_NAME: record.operation,
            sc.GEN_AI_PROVIDER_NAME: record.provider,
            sc.GEN_AI_REQUEST_MODEL: record.request_model,
            sc.GEN_AI_RESPONSE_MODEL: record.response_model,
        }
        if record.error_type is not None:
            self._duration.record(record.duration_s, {**base, sc.ERROR_TYPE: record.error_type})
        else:
            self._duration.record(record.duration_s, base)
        if record.error_type is None and record.usage_known:
            self._tokens.record(record.input_tokens, {**base, sc.GEN_AI_TOKEN_TYPE: "input"})
            self._tokens.record(record.output_tokens, {**base, sc.GEN_AI_TOKEN_TYPE: "output"})
        if record.time_to_first_chunk_s is not None:
            self._first_chunk.record(record.time_to_first_chunk_s, base)
        key = (
            scope.migration,
            scope.version,
            scope.phase or "",
            record.provider,
            record.request_model,
            record.tier,
        )
        with self._lock:
            calls_key = (*key, record.outcome)
            self.calls[calls_key] = self.calls.get(calls_key, 0) + 1
            if record.cost_usd is not None:
                self.cost[key] = self.cost.get(key, 0.0) + record.cost_usd
            elif record.outcome == sc.OUTCOME_OK and record.usage_known:
                self.unpriced[record.request_model] = self.unpriced.get(record.request_model, 0) + 1
        if record.cost_usd is not None and scope.version:
            for sink in self._sample_sinks:
                sink("cost", scope.migration, scope.version, record.cost_usd)

    @staticmethod
    def _attributes(key: tuple[str, ...]) -> dict[str, str]:
        migration, version, phase, provider, model, tier = key[:6]
        return {
            sc.MIGRATION_NAME: migration,
            sc.MIGRATION_VERSION: version,
            sc.MIGRATION_PHASE: phase,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.LLM_TIER: tier,
        }

    def _read_cost(self) -> Measured:
        return [(usd, self._attributes(key)) for key, usd in items_under(self._lock, self.cost)]

    def _read_calls(self) -> Measured:
        items = items_under(self._lock, self.calls)
        return [(n, {**self._attributes(key), sc.MIGRATION_OUTCOME: key[6]}) for key, n in items]

    def _read_unpriced(self) -> Measured:
        return [(n, {sc.GEN_AI_REQUEST_MODEL: model}) for model, n in items_under(self._lock, self.unpriced)]

    def _read_clamped(self) -> Measured:
        return [
            (n, {sc.GEN_AI_PROVIDER_NAME: provider, sc.GEN_AI_TOKEN_TYPE: token_type})
            for (provider, token_type), n in items_under(self._lock, self.clamped)
        ]

    def totals_by_tier(self) -> dict[tuple[str, str, str], tuple[int, int, float]]:
        """(calls, failed calls, USD) per (migration, version, tier), over phases, providers and models."""
        with self._lock:
            calls, cost = list(self.calls.items()), list(self.cost.items())
        totals: dict[tuple[str, str, str], tuple[int, int, float]] = {}
        for (migration, version, _phase, _provider, _model, tier, outcome), n in calls:
            found, failed, usd = totals.get((migration, version, tier), (0, 0, 0.0))
            failed += n if outcome == sc.OUTCOME_ERROR else 0
            totals[(migration, version, tier)] = (found + n, failed, usd)
        for (migration, version, _phase, _provider, _model, tier), usd in cost:
            found, failed, total = totals.get((migration, version, tier), (0, 0, 0.0))
            totals[(migration, version, tier)] = (found, failed, total + usd)
        return totals

    def total_cost(self, **match: str) -> float:
        """Sum of costs whose attributes include ``match`` (e.g. version="2.0")."""
        names = ("migration", "version", "phase", "provider", "model", "tier")
        with self._lock:
            return sum(
                usd
                for key, usd in self.cost.items()
                if all(key[names.index(k)] == v for k, v in match.items())
            )
