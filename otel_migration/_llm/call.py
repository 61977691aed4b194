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

What callers hand us is checked where they hand it (``record_llm_call``: ``TypeError``/``ValueError``
naming the argument, before any span exists), while what arrives from the network (usage in an
SDK response) is never refused: out-of-range token counts are clamped (see
:mod:`otel_migration._core.limits`) and counted in ``migration.llm.usage.clamped``. Model, provider
and operation names are bounded and cleaned; their metric labels are capped per process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._core import limits
from .._core import semconv as sc
from .._core.categories import error_type
from .._core.context import Scope, Subject, current_scope, current_subject
from .._core.lifecycle import InFlight, rate_limited
from .._core.records import LLMRecord
from .._core.runtime import Telemetry, active
from .agents import current_loop
from .operations import LLMOperations
from .runtime import LLMRuntime

__all__ = ["LLMCall", "record_llm_call"]

_FUNCTION = "record_llm_call"


def _warn_unpriced(model: str) -> None:
    # One line for the first unknown model, then one now and then with how many more there were.
    rate_limited.warning(
        "unpriced-model",
        "otel-migration: no price for LLM model %r; its calls are counted as unpriced (add it with "
        "pricing_file)",
        model,
    )


class LLMCall(InFlight):
    """An LLM call in flight. ``start`` may raise :class:`BudgetExceeded`; nothing else ever raises."""

    __slots__ = (
        "_first_chunk",
        "_in_flight",
        "agent",
        "llm",
        "model_label",
        "operation",
        "provider",
        "request_model",
        "scope",
        "subject",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        llm: LLMRuntime,
        provider: str,
        operation: str,
        request_model: str,
        span: Span,
        *,
        scope: Scope,
        subject: Subject | None,
    ) -> None:
        # The span is made current while the SDK sends the request; an invalid span never is.
        context = trace.set_span_in_context(span) if span is not trace.INVALID_SPAN else None
        super().__init__(telemetry, span, context)
        self.llm = llm
        # Labels are capped; the model's own (cleaned) name still finds its price and tier.
        self.provider = limits.admit("provider", limits.clean(provider))
        self.operation = limits.admit("llm_operation", limits.clean(operation))
        self.request_model = request_model
        self.model_label = limits.admit("model", request_model) if request_model else request_model
        self.scope, self.subject = scope, subject
        self._first_chunk: int | None = None
        self.agent = current_loop()  # the agent loop this call is a turn of, if any
        # In flight until finished (migration.llm.in_flight, _llm/operations.py).
        ops = telemetry.find(LLMOperations)
        self._in_flight = (
            (ops.in_flight, (scope.migration, scope.version, provider, request_model)) if ops else None
        )
        if self._in_flight is not None:
            self._in_flight[0].enter(self._in_flight[1])

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
        telemetry = active()
        if telemetry is None or not telemetry.enabled:
            return None
        llm = telemetry.find(LLMRuntime)
        if llm is None:
            return None
        subject = current_subject()
        llm.budgets.check(user=subject.user if subject else None, tenant=subject.tenant if subject else None)
        try:
            # From an SDK's keyword arguments: any type, any length.
            request_model = limits.clean(
                request_model if isinstance(request_model, str) else str(request_model)
            )
            provider, operation = limits.clean(str(provider)), limits.clean(str(operation))
            # Captured now: a stream may well be finished outside the versioned call that started it.
            scope = scope or current_scope()
            attributes = {
                sc.GEN_AI_OPERATION_NAME: operation,
                sc.GEN_AI_PROVIDER_NAME: provider,
                sc.GEN_AI_REQUEST_MODEL: request_model,
            }
            if scope is not None:
                attributes |= scope.span_attributes()
            else:
                # Outside any versioned call: counted under the configured migration, with no version.
                scope = Scope(telemetry.settings.migration, "", "")
            if subject is not None:
                scope = replace(scope, subject=subject.user)
            if span is None and not own_span:
                span = trace.INVALID_SPAN
            elif span is None:
                span = telemetry.tracer.start_span(
                    f"{operation} {request_model}", kind=SpanKind.CLIENT, attributes=attributes
                )
            elif span.is_recording():
                span.set_attributes(attributes)
            return cls(telemetry, llm, provider, operation, request_model, span, scope=scope, subject=subject)
        except Exception:
            rate_limited.exception("llm-start", "otel-migration: failed to start an LLM call's telemetry")
            return None

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
        if not self.claim_finish():
            return None
        if self._in_flight is not None:
            self._in_flight[0].exit(self._in_flight[1])
        try:
            usage = _Usage(
                self._in_range("input", input_tokens),
                self._in_range("output", output_tokens),
                self._in_range("cache_read", cache_read_tokens),
                self._in_range("cache_write", cache_write_tokens),
                usage_known,
            )
            if response_model is not None:
                response_model = limits.clean(str(response_model)) or None
            return self._finish(response_model, usage, error)
        except Exception:
            rate_limited.exception("llm-finish", "otel-migration: failed to finish an LLM call's telemetry")
            return None

    def _in_range(self, token_type: str, value: object) -> int:
        """A token count from the network, clamped to 0 ... MAX_TOKENS; each clamp counted."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limits.MAX_TOKENS:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            clamped = limits.MAX_TOKENS if value > limits.MAX_TOKENS else int(value)
        else:
            clamped = 0  # negative, NaN, or not a number at all
        if clamped != value:
            self.llm.metrics.count_clamped(self.provider, token_type)
        return clamped

    def _finish(self, response_model: str | None, usage: _Usage, error: BaseException | None) -> float | None:
        duration = self.elapsed_s()
        ttft = (self._first_chunk - self.start_ns) / 1e9 if self._first_chunk is not None else None
        model = response_model or self.request_model
        cost = self._cost(model, usage) if error is None else None
        tier = self.llm.tier_of(model)
        model_label = limits.admit("model", response_model) if response_model else self.model_label
        self._end_span(response_model, usage, cost, ttft, tier, error)
        if self.agent is not None:
            self.agent.llm_call_finished(usage.input_tokens, usage.output_tokens)
        subject = self.subject
        if cost is not None:
            self.llm.budgets.add(
                cost, user=subject.user if subject else None, tenant=subject.tenant if subject else None
            )
        self.telemetry.recorder.submit(
            LLMRecord(
                self.scope,
                self.provider,
                self.operation,
                self.model_label,
                model_label,
                tier,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read,
                usage.cache_write,
                cost,
                duration,
                ttft,
                sc.OUTCOME_ERROR if error is not None else sc.OUTCOME_OK,
                error_type(error) if error is not None else None,
                time.time_ns(),
                usage.known,
            )
        )
        return cost

    def _cost(self, model: str, usage: _Usage) -> float | None:
        """The price table's cost; None (and a warning once) for an unknown model or unknown usage."""
        if not usage.known:
            return None
        prices = self.llm.prices
        price = prices.lookup(model) or prices.lookup(self.request_model)
        if price is None:
            _warn_unpriced(model)
            return None
        return price.cost(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read,
            cache_write_tokens=usage.cache_write,
        )

    def _end_span(
        self,
        response_model: str | None,
        usage: _Usage,
        cost: float | None,
        ttft: float | None,
        tier: str,
        error: BaseException | None,
    ) -> None:
        span = self.span
        if span.is_recording():
            attributes: dict[str, str | int | float] = {sc.LLM_TIER: tier}
            if usage.known:
                attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
                attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if response_model:
                attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
            if usage.cache_read:
                attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read
            if usage.cache_write:
                attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write
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


@dataclass(frozen=True, slots=True)
class _Usage:
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    known: bool


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

    Every argument is checked first, before anything is started: a wrong type is a ``TypeError``
    and a bad value (a token count below 0 or above 10**9, a ``duration_s`` that is negative, NaN
    or infinite, an empty name) a ``ValueError``, each naming the argument.
    """
    model = limits.check_name(model, "model", _FUNCTION)
    provider = limits.check_name(provider, "provider", _FUNCTION)
    operation = limits.check_name(operation, "operation", _FUNCTION)
    if response_model is not None:
        response_model = limits.check_name(response_model, "response_model", _FUNCTION)
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens),
        ("cache_write_tokens", cache_write_tokens),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{_FUNCTION}(): {name} must be a whole number, got {type(value).__name__}")
        if not isinstance(value, int) or not 0 <= value <= limits.MAX_TOKENS:
            raise ValueError(
                f"{_FUNCTION}(): {name} must be a whole number from 0 to {limits.MAX_TOKENS}, got {value!r}"
            )
    if cache_read_tokens + cache_write_tokens > input_tokens:
        raise ValueError(
            f"{_FUNCTION}(): cache tokens ({cache_read_tokens} + {cache_write_tokens}) exceed "
            f"input_tokens ({input_tokens}), which include them"
        )
    if duration_s is not None:
        duration_s = limits.check_finite(duration_s, "duration_s", _FUNCTION)
    if error is not None and not isinstance(error, BaseException):
        raise TypeError(f"{_FUNCTION}(): error must be an exception, got {type(error).__name__}")
    names: dict[str, str] = {}
    for name, given in (("version", version), ("migration", migration), ("phase", phase)):
        if given is not None:
            names[name] = limits.admit(name, limits.check_name(given, name, _FUNCTION))

    telemetry = active()
    scope = current_scope()
    if names:
        scope = Scope(
            names.get("migration")
            or (scope.migration if scope else telemetry.settings.migration if telemetry else "default"),
            scope.operation if scope else limits.admit("operation", operation),
            names.get("version") or (scope.version if scope else ""),
            names.get("phase") or (scope.phase if scope else None),
        )
    span = None
    if telemetry is not None and telemetry.enabled and duration_s is not None:
        start = time.time_ns() - int(duration_s * 1e9)
        span = telemetry.tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, start_time=start)
    try:
        call = LLMCall.start(provider, operation, model, span=span, scope=scope)
    except BaseException:  # a hard-stop budget: the span we opened must not stay open
        if span is not None:
            span.end()
        raise
    if call is None:
        if span is not None:
            span.end()
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
