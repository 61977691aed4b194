"""LLM operations: prompt-cache hit rate, tokens by version and operation, calls in flight.

A call listener fed with every :class:`LLMRecord` off the call path, like :mod:`.metrics`, for what
the GenAI conventions' instruments do not carry:

- ``migration.llm.tokens``: tokens by migration, operation, version, model and type (``input``,
  ``output``, ``cache_read``, ``cache_write``). ``gen_ai.client.token.usage`` keeps the conventions'
  attributes only; this counter answers "how many tokens does 2.0's ``summarize`` use".
- the prompt cache, per model and version: ``migration.llm.prompt_cache.hit_ratio`` is cache-read
  tokens over input tokens (input tokens include the cached ones, for Anthropic as for OpenAI:
  the instrumentation normalises them), cumulative since the start; ``migration.llm.prompt_cache.calls``
  counts calls that read from the cache (``hit``) and calls that did not (``miss``). Calls with
  unknown usage or an error count in neither.
- ``migration.llm.in_flight``: LLM calls running now (an observable up-down counter over
  :class:`InFlightCounts`: two dict updates per call instead of two SDK ``add`` calls).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final

from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.batch import CallBatch
from .._core.inflight import InFlightCounts
from .._core.instruments import Measured, items_under, observables
from .._core.records import LLMRecord, Record

__all__ = ["CacheStats", "LLMOperations"]

_TokenKey = tuple[str, str, str, str, str, str]  # migration, operation, version, provider, model, type
_CacheKey = tuple[str, str, str, str]  # migration, version, provider, model

_TOKEN_NAMES: Final = (
    sc.MIGRATION_NAME,
    sc.MIGRATION_OPERATION,
    sc.MIGRATION_VERSION,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_TOKEN_TYPE,
)
_CACHE_NAMES: Final = (
    sc.MIGRATION_NAME,
    sc.MIGRATION_VERSION,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
)


class CacheStats:
    """Prompt-cache totals of one model and version."""

    __slots__ = ("hits", "input_tokens", "misses", "read_tokens")

    def __init__(self) -> None:
        self.input_tokens = self.read_tokens = self.hits = self.misses = 0

    @property
    def hit_ratio(self) -> float:
        """Cache-read tokens over input tokens (0 when no input was counted)."""
        return self.read_tokens / self.input_tokens if self.input_tokens else 0.0


class LLMOperations:
    """A call listener: tokens by version and operation, the prompt cache, and LLM calls in flight."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self.in_flight = InFlightCounts()
        self.tokens: dict[_TokenKey, int] = {}
        self.cache: dict[_CacheKey, CacheStats] = {}
        # A lock held by the parent's aggregator at fork would never be released in the child.
        weak = weakref.ref(self)

        def new_lock_in_child() -> None:
            me = weak()
            if me is not None:
                me._lock = threading.Lock()

        os.register_at_fork(after_in_child=new_lock_in_child)
        observables(
            meter.create_observable_counter,
            (
                sc.METRIC_LLM_TOKENS,
                self._read_tokens,
                "{token}",
                "LLM tokens by migration, operation, version, model and token type.",
            ),
            (
                sc.METRIC_LLM_PROMPT_CACHE_CALLS,
                self._read_cache_calls,
                "{call}",
                "LLM calls that read from the prompt cache (hit) or did not (miss).",
            ),
        )
        observables(
            meter.create_observable_gauge,
            (
                sc.METRIC_LLM_PROMPT_CACHE_HIT_RATIO,
                self._read_hit_ratio,
                "1",
                "Cache-read input tokens over all input tokens, per model and version.",
            ),
        )
        observables(
            meter.create_observable_up_down_counter,
            (
                sc.METRIC_LLM_IN_FLIGHT,
                self._read_in_flight,
                "{call}",
                "LLM calls running now, by migration, version, provider and model.",
            ),
        )

    def on_batch(self, batch: CallBatch) -> None:
        """Only the batch's LLM calls concern these figures."""
        for record in batch.llm:
            self.on_call(record)

    def on_call(self, record: Record) -> None:
        if not isinstance(record, LLMRecord) or not record.usage_known or record.error_type is not None:
            return
        scope = record.scope
        base = (scope.migration, scope.operation, scope.version, record.provider, record.request_model)
        cache_key = (scope.migration, scope.version, record.provider, record.request_model)
        with self._lock:
            for kind, count in (
                ("input", record.input_tokens),
                ("output", record.output_tokens),
                ("cache_read", record.cache_read_tokens),
                ("cache_write", record.cache_write_tokens),
            ):
                key = (*base, kind)
                self.tokens[key] = self.tokens.get(key, 0) + count
            stats = self.cache.get(cache_key)
            if stats is None:
                stats = self.cache[cache_key] = CacheStats()
            stats.input_tokens += record.input_tokens
            stats.read_tokens += record.cache_read_tokens
            if record.cache_read_tokens > 0:
                stats.hits += 1
            else:
                stats.misses += 1

    def _read_tokens(self) -> Measured:
        return [
            (n, dict(zip(_TOKEN_NAMES, key, strict=True))) for key, n in items_under(self._lock, self.tokens)
        ]

    def _read_hit_ratio(self) -> Measured:
        with self._lock:
            ratios = [(s.hit_ratio, key) for key, s in self.cache.items() if s.input_tokens]
        return [(ratio, dict(zip(_CACHE_NAMES, key, strict=True))) for ratio, key in ratios]

    def _read_cache_calls(self) -> Measured:
        with self._lock:
            counts = [(key, s.hits, s.misses) for key, s in self.cache.items()]
        result = []
        for key, hits, misses in counts:
            attrs = dict(zip(_CACHE_NAMES, key, strict=True))
            result.append((hits, {**attrs, sc.MIGRATION_PROMPT_CACHE: "hit"}))
            result.append((misses, {**attrs, sc.MIGRATION_PROMPT_CACHE: "miss"}))
        return result

    def _read_in_flight(self) -> Measured:
        names = (sc.MIGRATION_NAME, sc.MIGRATION_VERSION, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL)
        return [(n, dict(zip(names, key, strict=True))) for key, n in self.in_flight.items()]
