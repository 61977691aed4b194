"""LLM spans made by someone else (the SDK tracing itself, another GenAI instrumentation), enriched.

Adding a second span for a call that is already traced doubles every count downstream. When an
LLM span already exists we leave it as the one span of the call and add what we know to it:

- at its start (``on_start``, when a span is still writable) the migration, version, operation
  and phase in effect, read from the context it starts in;
- at its end, its cost and tier, from its own ``gen_ai.usage.*`` and model attributes and the
  same price table the SDK uses. An ended span is read-only, so this processor sits in front of
  the exporting processor of the pipeline :func:`otel_migration.configure` builds and hands it an
  enriched copy. When we attach to an application's own pipeline we cannot reach its exporting
  processors: there foreign spans get the migration attributes (at start) but not the cost, which
  still reaches the cost metrics through our instrumentation.
"""

from __future__ import annotations

import logging
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Span as ApiSpan

from .._core import semconv as sc
from .._core.context import current_scope
from .._core.runtime import configured
from .pricing import PriceTable
from .runtime import LLMRuntime

__all__ = ["LLMSpanEnricher", "is_llm_span"]

_logger = logging.getLogger(__name__)
_MARKERS: Final = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    "gen_ai.system",
    sc.GEN_AI_PROVIDER_NAME,
)
_OURS: Final = sc.INSTRUMENTATION_SCOPE
#: GenAI operations that are not a model call: an agent or tool span around LLM calls is not one of them.
_NOT_INFERENCE: Final = frozenset(
    {sc.GEN_AI_OPERATION_INVOKE_AGENT, sc.GEN_AI_OPERATION_EXECUTE_TOOL, "create_agent", "invoke_workflow"}
)


def is_llm_span(span: ApiSpan | ReadableSpan) -> bool:
    """Whether a span describes an LLM call (carries GenAI attributes, and is no agent or tool span)."""
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return False
    keys = attributes.keys()  # a plain key view: much cheaper than the mapping's generic __contains__
    return not keys.isdisjoint(_MARKERS) and attributes.get(sc.GEN_AI_OPERATION_NAME) not in _NOT_INFERENCE


def _is_ours(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == _OURS


class LLMSpanEnricher(SpanProcessor):
    """Wraps the exporting processor: foreign LLM spans get migration attributes, cost and tier."""

    def __init__(self, delegate: SpanProcessor, prices: PriceTable | None = None) -> None:
        self._delegate = delegate
        self._prices = prices

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            if not _is_ours(span) and is_llm_span(span):
                scope = current_scope(parent_context)
                if scope is not None:
                    span.set_attributes(scope.span_attributes())
        except Exception:
            _logger.exception("otel-migration: failed to label a foreign LLM span")
        self._delegate.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            span = self._enriched(span)
        except Exception:
            _logger.exception("otel-migration: failed to price a foreign LLM span")
        self._delegate.on_end(span)

    def _enriched(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes or {}
        if _is_ours(span) or sc.LLM_COST in attributes or not is_llm_span(span):
            return span
        model = attributes.get(sc.GEN_AI_RESPONSE_MODEL) or attributes.get(sc.GEN_AI_REQUEST_MODEL)
        tokens_in, tokens_out = (
            attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
            attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
        )
        if not isinstance(model, str) or not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            return span
        prices = self._prices or _current_prices()
        price = prices.lookup(model) if prices is not None else None
        extra: dict[str, str | float] = {sc.LLM_TIER: price.tier if price is not None else "unknown"}
        if price is not None:
            cache_read = attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
            # anthropic's own spans say cache_write where the conventions say cache_creation
            cache_write = attributes.get(
                sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                attributes.get("gen_ai.usage.cache_write.input_tokens", 0),
            )
            extra[sc.LLM_COST] = price.cost(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cache_read_tokens=cache_read if isinstance(cache_read, int) else 0,
                cache_write_tokens=cache_write if isinstance(cache_write, int) else 0,
            )
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes={**attributes, **extra},
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._delegate.force_flush(timeout_millis)


def _current_prices() -> PriceTable | None:
    telemetry = configured()
    llm = telemetry.find(LLMRuntime) if telemetry is not None else None
    return llm.prices if llm is not None else None
