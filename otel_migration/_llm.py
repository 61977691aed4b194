"""LLM calls: one span, its cost and tier, the budget, and the GenAI metrics, per call.

Every LLM call, whether seen by an SDK instrumentation or reported through
:func:`record_llm_call`, goes through :class:`LLMCall`: the budget's hard stop is checked before
the call starts; when it ends, the price table gives the cost (no invented price: an unknown
model is counted as unpriced and warned about once), the model map gives the tier, the span gets
both along with the migration version and phase in effect, the budget is charged, and an
:class:`LLMRecord` joins the call queue. Metrics are aggregated off the call path, like versioned
calls: ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` with the GenAI
conventions' bucket advice, time to first chunk for streams, and cost by model, tier, version
and phase.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _runtime
from . import _semconv as sc
from ._budgets import Budgets
from ._categories import error_type
from ._context import Scope, Subject, current_scope, current_subject
from ._pricing import PriceTable, normalize_model
from ._recorder import CallRecord

__all__ = ["LLMCall", "LLMMetrics", "LLMRecord", "budgets", "record_llm_call"]

_logger = logging.getLogger(__name__)

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
UNKNOWN_TIER: Final = "unknown"

#: The process's budgets, configured from ``[budgets.NAME]``.
budgets = Budgets()


@dataclass(slots=True)
class LLMRecord:
    """One finished LLM call, as the background aggregator sees it."""

    kind: str  # always "llm"
    migration: str
    version: str
    phase: str
    provider: str
    operation: str
    request_model: str
    response_model: str
    tier: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    duration_s: float
    time_to_first_chunk_s: float | None
    outcome: str
    error_type: str | None
    end_time_ns: int
    subject: str | None = None
    usage_known: bool = True


_warned_models: set[str] = set()
_warn_lock = threading.Lock()


def _warn_unpriced(model: str) -> None:
    with _warn_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    _logger.warning(
        "otel-migration: no price for LLM model %r; its calls are counted as unpriced (add it with "
        "pricing_file)",
        model,
    )


def tier_of(telemetry: _runtime.Telemetry, model: str, prices: PriceTable) -> str:
    """The model's tier: the configured map first, then the price table; cached per configuration."""
    tier = telemetry.tiers.get(model)
    if tier is None:
        override = telemetry.settings.model_tiers.get(normalize_model(model))
        price = prices.lookup(model)
        tier = override or (price.tier if price is not None else UNKNOWN_TIER)
        if len(telemetry.tiers) < 4096:
            telemetry.tiers[model] = tier
    return tier


class LLMCall:
    """An LLM call in flight. ``start`` may raise :class:`BudgetExceeded`; nothing else ever raises."""

    __slots__ = (
        "_finished",
        "_first_chunk",
        "_token",
        "operation",
        "provider",
        "request_model",
        "scope",
        "span",
        "start_ns",
        "subject",
        "telemetry",
    )

    def __init__(
        self,
        telemetry: _runtime.Telemetry,
        provider: str,
        operation: str,
        request_model: str,
        span: Span,
        start_ns: int,
    ) -> None:
        self.telemetry, self.provider, self.operation, self.request_model = (
            telemetry,
            provider,
            operation,
            request_model,
        )
        self.span = span
        self.start_ns = start_ns
        self._first_chunk: int | None = None
        self._token: object | None = None
        self._finished = False
        self.scope: Scope | None = None
        self.subject: Subject | None = None

    @classmethod
    def start(
        cls,
        provider: str,
        operation: str,
        request_model: str,
        *,
        span: Span | None = None,
        own_span: bool = True,
        scope: Scope | None = None,
    ) -> LLMCall | None:
        """Check the budget, then open a CLIENT span, or use ``span``; ``own_span=False`` opens none.

        No span of ours is wanted when the call is already traced (the SDK traces itself, or another
        GenAI instrumentation wraps outside ours): the call is still priced, charged and counted,
        and :class:`LLMSpanEnricher` labels that span instead.
        """
        telemetry = _runtime.active()
        if telemetry is None or not telemetry.enabled:
            return None
        subject = current_subject()
        budgets.check(user=subject.user if subject else None, tenant=subject.tenant if subject else None)
        try:
            # Captured now: a stream may well be finished outside the versioned call that started it.
            scope = scope or current_scope()
            attributes = {
                sc.GEN_AI_OPERATION_NAME: operation,
                sc.GEN_AI_PROVIDER_NAME: provider,
                sc.GEN_AI_REQUEST_MODEL: request_model,
            }
            if scope is not None:
                attributes |= {
                    sc.MIGRATION_NAME: scope.migration,
                    sc.MIGRATION_VERSION: scope.version,
                    sc.MIGRATION_OPERATION: scope.operation,
                }
                if scope.phase:
                    attributes[sc.MIGRATION_PHASE] = scope.phase
            if span is None and not own_span:
                span = trace.INVALID_SPAN
            elif span is None:
                span = telemetry.tracer.start_span(
                    f"{operation} {request_model}", kind=SpanKind.CLIENT, attributes=attributes
                )
            elif span.is_recording():
                span.set_attributes(attributes)
            call = cls(telemetry, provider, operation, request_model, span, time.perf_counter_ns())
            call.scope, call.subject = scope, subject
            return call
        except Exception:
            _logger.exception("otel-migration: failed to start an LLM call's telemetry")
            return None

    def activate(self) -> None:
        """Make the call's span current (while the SDK sends the request); pair with :meth:`deactivate`."""
        if self._token is None and self.span is not trace.INVALID_SPAN:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                _logger.exception("otel-migration: could not restore the context after an LLM call")

    def first_chunk(self) -> None:
        """Mark the first streamed chunk (time to first token)."""
        if self._first_chunk is None:
            self._first_chunk = time.perf_counter_ns()

    def finish(
        self,
        *,
        response_model: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        error: BaseException | None = None,
        usage_known: bool = True,
    ) -> float | None:
        """Price, label and end the call; returns its cost in USD (None: unpriced or usage unknown).

        ``usage_known=False`` (a stream without usage, a raw response) records the call without
        tokens or cost rather than pricing it at zero.
        """
        self.deactivate()
        if self._finished:
            return None
        self._finished = True
        try:
            return self._finish(
                response_model,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                error,
                usage_known,
            )
        except Exception:
            _logger.exception("otel-migration: failed to finish an LLM call's telemetry")
            return None

    def _finish(
        self,
        response_model: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_read: int,
        cache_write: int,
        error: BaseException | None,
        usage_known: bool,
    ) -> float | None:
        duration = (time.perf_counter_ns() - self.start_ns) / 1e9
        ttft = (self._first_chunk - self.start_ns) / 1e9 if self._first_chunk is not None else None
        model = response_model or self.request_model
        prices = self.telemetry.prices
        price = prices.lookup(model) or prices.lookup(self.request_model)
        cost = None
        if error is None and usage_known:
            if price is None:
                _warn_unpriced(model)
            else:
                cost = price.cost(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                )
        tier = tier_of(self.telemetry, model, prices)
        scope = self.scope
        span = self.span
        if span.is_recording():
            attributes: dict[str, str | int | float] = {sc.LLM_TIER: tier}
            if usage_known:
                attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
                attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            if response_model:
                attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
            if cache_read:
                attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
            if cache_write:
                attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
            if cost is not None:
                attributes[sc.LLM_COST] = cost
            if ttft is not None:
                attributes[sc.LLM_TIME_TO_FIRST_CHUNK] = ttft
            span.set_attributes(attributes)
            if error is not None:
                span.set_attribute(sc.ERROR_TYPE, error_type(error))
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        subject = self.subject
        if cost is not None:
            budgets.add(
                cost, user=subject.user if subject else None, tenant=subject.tenant if subject else None
            )
        self.telemetry.recorder.submit(
            LLMRecord(  # type: ignore[arg-type]
                "llm",
                scope.migration if scope else self.telemetry.settings.migration,
                scope.version if scope else "",
                scope.phase or "" if scope else "",
                self.provider,
                self.operation,
                self.request_model,
                response_model or self.request_model,
                tier,
                input_tokens,
                output_tokens,
                cache_read,
                cache_write,
                cost,
                duration,
                ttft,
                sc.OUTCOME_ERROR if error is not None else sc.OUTCOME_OK,
                error_type(error) if error is not None else None,
                time.time_ns(),
                subject.user if subject else None,
                usage_known,
            )
        )
        return cost


def record_llm_call(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    provider: str = "unknown",
    operation: str = "chat",
    response_model: str | None = None,
    duration_s: float | None = None,
    error: BaseException | None = None,
    version: str | None = None,
    migration: str | None = None,
    phase: str | None = None,
) -> float | None:
    """Report an LLM call made by a client we do not instrument; returns its cost in USD (None: unpriced).

    ``input_tokens`` counts every input token, cached ones included. ``version``, ``migration`` and
    ``phase`` default to the versioned call and phase in effect; give them to record a call after
    the fact, outside that call. The call gets a span (ending
    now, starting ``duration_s`` ago), a cost, a tier, the version and phase in effect, and is
    charged to the budgets; with a hard-stop budget spent it raises :class:`BudgetExceeded`.
    """
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens),
        ("cache_write_tokens", cache_write_tokens),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"record_llm_call(): {name} must be a whole number >= 0, got {value!r}")
    if cache_read_tokens + cache_write_tokens > input_tokens:
        raise ValueError(
            f"record_llm_call(): cache tokens ({cache_read_tokens} + {cache_write_tokens}) exceed "
            f"input_tokens ({input_tokens}), which include them"
        )
    if not model:
        raise ValueError(f"record_llm_call(): model must be a non-empty string, got {model!r}")
    telemetry = _runtime.active()
    span = None
    if telemetry is not None and telemetry.enabled and duration_s is not None:
        start = time.time_ns() - int(max(duration_s, 0.0) * 1e9)
        span = telemetry.tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, start_time=start)
    scope = current_scope()
    if version is not None or migration is not None or phase is not None:
        scope = Scope(
            migration
            or (scope.migration if scope else telemetry.settings.migration if telemetry else "default"),
            scope.operation if scope else operation,
            version or (scope.version if scope else ""),
            phase or (scope.phase if scope else None),
        )
    call = LLMCall.start(provider, operation, model, span=span, scope=scope)
    if call is None:
        return None
    if duration_s is not None:
        call.start_ns = time.perf_counter_ns() - int(duration_s * 1e9)
    return call.finish(
        response_model=response_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        error=error,
    )


_CostKey = tuple[str, str, str, str, str, str]  # migration, version, phase, provider, model, tier


class LLMMetrics:
    """A call listener: GenAI histograms and cost counters from every :class:`LLMRecord`."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self.cost: dict[_CostKey, float] = {}
        self.calls: dict[tuple[str, ...], int] = {}
        self.unpriced: dict[str, int] = {}
        self._sample_sinks: list[Callable[[str, str, str, float], None]] = []
        self._tokens = meter.create_histogram(
            sc.METRIC_GEN_AI_TOKEN_USAGE,
            unit="{token}",
            description="Tokens used per LLM call, by token type.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self._duration = meter.create_histogram(
            sc.METRIC_GEN_AI_OPERATION_DURATION,
            unit="s",
            description="Duration of LLM calls as the client sees it.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._first_chunk = meter.create_histogram(
            sc.METRIC_GEN_AI_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to the first streamed chunk.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        meter.create_observable_counter(
            sc.METRIC_LLM_COST,
            [self._observe_cost],
            unit="{USD}",
            description="LLM spend in USD by model, tier, version and phase.",
        )
        meter.create_observable_counter(
            sc.METRIC_LLM_CALLS,
            [self._observe_calls],
            unit="{call}",
            description="LLM calls by model, tier, version, phase and outcome.",
        )
        meter.create_observable_counter(
            sc.METRIC_LLM_UNPRICED,
            [self._observe_unpriced],
            unit="{call}",
            description="LLM calls whose model has no price in the table.",
        )

    def add_sample_sink(self, sink: Callable[[str, str, str, float], None]) -> None:
        """``sink("cost", migration, version, usd)`` receives the cost of every priced, versioned call."""
        self._sample_sinks.append(sink)

    def on_call(self, record: CallRecord | LLMRecord) -> None:
        if record.kind != "llm":
            return
        assert isinstance(record, LLMRecord)
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
            record.migration,
            record.version,
            record.phase,
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
        if record.cost_usd is not None and record.version:
            for sink in self._sample_sinks:
                sink("cost", record.migration, record.version, record.cost_usd)

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

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self.cost.items())
        return [Observation(usd, self._attributes(key)) for key, usd in items]

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self.calls.items())
        return [Observation(n, {**self._attributes(key), sc.MIGRATION_OUTCOME: key[6]}) for key, n in items]

    def _observe_unpriced(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self.unpriced.items())
        return [Observation(n, {sc.GEN_AI_REQUEST_MODEL: model}) for model, n in items]

    def total_cost(self, **match: str) -> float:
        """Sum of costs whose attributes include ``match`` (e.g. version="2.0")."""
        names = ("migration", "version", "phase", "provider", "model", "tier")
        with self._lock:
            return sum(
                usd
                for key, usd in self.cost.items()
                if all(key[names.index(k)] == v for k, v in match.items())
            )
