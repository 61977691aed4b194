"""Wrapper factories: one span and one call record per versioned call or phase.

Every wrapper is a ``(wrapped, instance, args, kwargs)`` closure for ``wrapt.FunctionWrapper``,
with a twin per kind of callable, because a span must cover the *work*: for a coroutine that is
the awaited body, for a generator every step up to exhaustion, not the instant the object is
created. Generators need care: they run in their caller's context, so the span is made current
around each step and detached before yielding, or it would leak into the caller between steps.

Instrumentation must never hurt the host: every piece of our own work is guarded, failures are
logged (rate-limited), and the user's call runs (and its result or exception comes back) unchanged.
Our own work never traces itself: a wrapped function called from inside it (a sampler or an
exporter calling application code) runs untraced (see :class:`ReentryGuard`). Every name a span
or record carries is bounded, cleaned and capped once, when its :class:`CallSpec` is built.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._core import limits
from .._core import runtime as _runtime
from .._core import semconv as sc
from .._core.categories import error_type
from .._core.context import (
    SCOPE_KEY,
    SPAN_KEY,
    SUBJECT_KEY,
    Scope,
    Subject,
    call_context,
    current_scope,
    current_subject,
)
from .._core.inflight import exit_slot
from .._core.lifecycle import InFlight, log_once, reentry
from .._core.records import SCOPE_IDS, CallRecord, make_row
from .._core.runtime import Telemetry
from .resources import stepped, traced_memory, usage_plan

__all__ = ["ActiveCall", "CallSpec", "make_wrapper", "start_call"]

KIND_CALL: Final = "call"
KIND_PHASE: Final = "phase"
KIND_UNVERSIONED_PHASE: Final = "phase-unversioned"  # a span only: no version to count it under
_perf_counter_ns: Final = time.perf_counter_ns
_thread_time_ns: Final = time.thread_time_ns
_time_ns: Final = time.time_ns
_get_ident: Final = threading.get_ident
_BUSY: Final = reentry.busy  # the shared re-entry guard's set, read directly on this path
_get_current: Final = otel_context.get_current
_attach: Final = otel_context.attach
_detach: Final = otel_context.detach
_Context: Final = otel_context.Context
_INTERNAL: Final = SpanKind.INTERNAL


class _Bound:
    """A spec as one telemetry runs it: what every call of it needs, looked up once, not per call."""

    __slots__ = ("attributes", "cpu", "in_flight", "memory", "scope", "scope_id", "telemetry")

    def __init__(self, spec: CallSpec, telemetry: Telemetry) -> None:
        migration = spec.migration or telemetry.settings.migration
        self.telemetry = telemetry
        self.scope = spec.scope(migration, None)
        self.scope_id = SCOPE_IDS.id(self.scope)
        self.attributes = spec.attributes(migration)
        plan = usage_plan(telemetry)
        self.cpu, self.memory = plan.cpu, plan.memory
        scope = self.scope
        self.in_flight: list[None] | None = (
            plan.in_flight.slot((scope.migration, scope.operation, scope.version))
            if plan.in_flight is not None
            else None
        )


class CallSpec:
    """What a wrapper knows before the call: the static half of the span and record."""

    __slots__ = ("_attributes", "_bound", "_scopes", "code_function", "migration", "operation", "version")

    def __init__(
        self, *, version: str, operation: str, migration: str | None, code_function: str | None
    ) -> None:
        # Cleaned and capped here, once per spec: every call of the spec shares the result.
        self.version = limits.admit("version", limits.clean(version))
        self.operation = limits.admit("operation", limits.clean(operation))
        self.migration = limits.admit("migration", limits.clean(migration)) if migration else None
        self.code_function = limits.clean(code_function) if code_function else None
        self._attributes: dict[str, dict[str, str]] = {}
        self._scopes: dict[str, Scope] = {}
        self._bound: _Bound | None = None

    def bind(self, telemetry: Telemetry) -> _Bound:
        """This spec under ``telemetry`` (kept for the telemetry in effect; a new one binds anew)."""
        bound = self._bound
        if bound is None or bound.telemetry is not telemetry:
            bound = self._bound = _Bound(self, telemetry)
        return bound

    def attributes(self, migration: str) -> dict[str, str]:
        """Span attributes, built once per migration name and shared by every call."""
        attrs = self._attributes.get(migration)
        if attrs is None:
            attrs = {
                sc.MIGRATION_NAME: self.scope(migration, None).migration,
                sc.MIGRATION_OPERATION: self.operation,
                sc.MIGRATION_VERSION: self.version,
            }
            if self.code_function:
                attrs[sc.CODE_FUNCTION_NAME] = self.code_function
            self._attributes[migration] = attrs
        return attrs

    def scope(self, migration: str, subject: Subject | None) -> Scope:
        """The scope of a call; shared (it is immutable) when no subject makes it per-user."""
        scope = self._scopes.get(migration)
        if scope is None:
            name = limits.admit("migration", limits.clean(migration))
            scope = self._scopes[migration] = Scope(name, self.operation, self.version)
        if subject is not None:
            return Scope(scope.migration, self.operation, self.version, None, subject.user, subject.session)
        return scope


class ActiveCall(InFlight):
    """A versioned call or phase in flight (see :class:`InFlight` for the lifecycle).

    It also carries what the call costs (``_calls/resources.py`` says how each is measured): the
    thread CPU of its active spans, the traced memory at its start (opt-in), its marker in the
    in-flight count, and when a generator produced its first item. These are fields here rather
    than a second object, because every attribute lookup and function call on this path is paid
    on every call (``benchmarks/call_overhead.py``).
    """

    __slots__ = ("__dict__", "_cpu_from", "_in_flight", "cpu", "cpu_ns", "kind", "scope", "scope_id")

    # Rare per call (generators, coroutines, measure_memory): class defaults, so a plain call does
    # not pay for setting them; the few calls that change one get an instance dict.
    _first_item_ns = 0
    _memory_from = -1
    is_stepped = False
    streamed = False

    def __init__(
        self,
        telemetry: Telemetry,
        scope: Scope,
        kind: str,
        span: Span,
        context: otel_context.Context,
        bound: _Bound | None = None,
    ) -> None:
        # InFlight's fields, set here rather than through super().__init__: one call less per call.
        self.telemetry, self.span, self.context = telemetry, span, context
        self._token: object | None = None
        self._finished = False
        self.scope, self.kind = scope, kind
        self.cpu_ns = self._cpu_from = 0
        if bound is None:  # a phase: its resources are its call's; nothing reads them per phase
            self.cpu, self._in_flight, self.scope_id = False, None, -1
        else:
            self.cpu, self.scope_id = bound.cpu, bound.scope_id
            if bound.memory:
                self._memory_from = traced_memory()
            in_flight = self._in_flight = bound.in_flight
            if in_flight is not None:
                in_flight.append(None)
        self.start_ns = _perf_counter_ns()

    @classmethod
    def adopt(
        cls,
        bound: _Bound,
        scope: Scope,
        span: Span,
        token: object,
        start_ns: int,
        cpu_from: int,
    ) -> ActiveCall:
        """A call the plain-call path started and entered, handed over to finish the general way."""
        call = cls.__new__(cls)
        call.telemetry, call.span, call.context = bound.telemetry, span, None
        call._token, call._finished = token, False
        call.scope, call.kind, call.scope_id = scope, KIND_CALL, bound.scope_id
        call.cpu, call.cpu_ns, call._cpu_from = bound.cpu, 0, cpu_from
        call._in_flight, call.start_ns = bound.in_flight, start_ns
        return call

    def activate(self) -> None:
        """Make the call's context current, and count this thread's CPU from now (unless stepped)."""
        if self._token is None and self.context is not None:
            try:
                self._token = otel_context.attach(self.context)
            except Exception:
                log_once("attach", "otel-migration: could not make the span current")
        if self.cpu and not self.is_stepped:
            self._cpu_from = _thread_time_ns()

    def deactivate(self) -> None:
        if self._cpu_from:
            self.cpu_ns += _thread_time_ns() - self._cpu_from
            self._cpu_from = 0
        super().deactivate()

    def stepped(self, awaitable: Any) -> Any:
        """``awaitable`` with its CPU measured per step (a coroutine's or async generator's work)."""
        if not self.cpu:
            return awaitable
        self.is_stepped = True
        self._cpu_from = 0  # a resume before the await would charge the loop's other tasks
        return stepped(awaitable, self)

    def first_item(self) -> None:
        """A generator produced an item; the first one sets the time to first item."""
        self.streamed = True
        if not self._first_item_ns:
            self._first_item_ns = max(_perf_counter_ns() - self.start_ns, 1)

    def close(self, exc: BaseException | None) -> None:
        """Leave the call's context, then finish it."""
        self.deactivate()
        self.finish(exc)

    def finish(self, exc: BaseException | None) -> None:
        """End the span and queue the record; never raises. A broken span still leaves the call counted."""
        if self._finished:
            return
        self._finished = True
        in_flight = self._in_flight
        if in_flight is not None:
            self._in_flight = None
            exit_slot(in_flight)
        # Our own work from here: a wrapped function it reaches (an exporter, say) runs untraced.
        ident = _get_ident()
        busy = _BUSY
        entered = ident not in busy
        if entered:
            busy.add(ident)
        try:
            self._finish(exc, (_perf_counter_ns() - self.start_ns) / 1e9)
        finally:
            if entered:
                busy.discard(ident)

    def _finish(self, exc: BaseException | None, duration_s: float) -> None:
        err_type = category = None
        if exc is None:
            outcome = sc.OUTCOME_OK
            try:
                self.span.end()
            except Exception:
                log_once("end", "otel-migration: failed to end a span; the call is still counted")
        else:
            try:
                if isinstance(exc, GeneratorExit):
                    outcome = sc.OUTCOME_OK
                elif isinstance(exc, Exception):
                    outcome = sc.OUTCOME_ERROR
                    err_type = error_type(exc)
                    category = self.telemetry.classifier.categorize(exc)
                else:
                    outcome = sc.OUTCOME_CANCELLED
            except Exception:
                log_once("classify", "otel-migration: failed to classify a call's outcome")
                return
            self._end_span(exc, outcome, err_type, category)
        if self.kind == KIND_UNVERSIONED_PHASE:
            return
        try:
            scope, end_ns, cpu_s = self.scope, _time_ns(), self.cpu_ns / 1e9 if self.cpu else None
            if self._memory_from < 0 and not self.streamed:  # a plain call: a row (records.CallRow)
                scope_id = self.scope_id if self.scope_id >= 0 else SCOPE_IDS.id(scope)
                row = make_row(scope_id, scope, outcome, duration_s, end_ns, err_type, category, cpu_s)
                self.telemetry.recorder.submit(row)
                return
            record = CallRecord(scope, outcome, duration_s, end_ns, err_type, category, cpu_s)
            if self._memory_from >= 0:
                now = traced_memory()
                if now >= 0:
                    record.memory_delta_bytes = now - self._memory_from
            if self.streamed:
                record.streamed = True
                record.time_to_first_item_s = self._first_item_ns / 1e9
            self.telemetry.recorder.submit(record)
        except Exception:
            log_once("submit", "otel-migration: failed to record a call")

    def _end_span(self, exc: BaseException, outcome: str, err_type: str | None, category: str | None) -> None:
        span = self.span
        try:
            if span.is_recording():
                if outcome == sc.OUTCOME_ERROR:
                    span.set_attributes(
                        {
                            sc.ERROR_TYPE: err_type or "",
                            sc.MIGRATION_ERROR_CATEGORY: category or "",
                            sc.MIGRATION_OUTCOME: outcome,
                        }
                    )
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                elif outcome == sc.OUTCOME_CANCELLED:
                    span.set_attribute(sc.MIGRATION_OUTCOME, outcome)
            span.end()
        except Exception:
            log_once("end", "otel-migration: failed to end a span; the call is still counted")


def _start_span(
    telemetry: Telemetry, name: str, parent: otel_context.Context, attributes: dict[str, str]
) -> Span:
    """A span, or the invalid (non-recording) span when the SDK pipeline fails: the call is still counted."""
    try:
        return telemetry.tracer.start_span(name, parent, SpanKind.INTERNAL, attributes)
    except Exception:
        log_once("span", "otel-migration: failed to start a span; the call is counted but not traced")
        return trace.INVALID_SPAN


def start_call(spec: CallSpec | None, phase: str | None = None) -> ActiveCall | None:
    """Start a versioned call (``spec``) or a phase of the current one; None when disabled or broken.

    None as well when called from inside our own work on this thread (a re-entry): it runs untraced.
    """
    ident = _get_ident()
    busy = _BUSY
    if ident in busy:
        return None
    busy.add(ident)
    try:
        telemetry = _runtime.active()
        if telemetry is None or not telemetry.enabled:
            return None
        parent_ctx = otel_context.get_current()
        if spec is None:
            assert phase is not None
            return _start_phase(telemetry, parent_ctx, phase)
        bound = spec._bound
        if bound is None or bound.telemetry is not telemetry:
            bound = spec.bind(telemetry)
        subject = current_subject(parent_ctx)
        scope = bound.scope if subject is None else spec.scope(bound.scope.migration, subject)
        span = _start_span(telemetry, spec.operation, parent_ctx, bound.attributes)
        return ActiveCall(telemetry, scope, KIND_CALL, span, call_context(parent_ctx, span, scope), bound)
    except Exception:
        log_once("start", "otel-migration: failed to start a call's telemetry; the call runs untraced")
        return None
    finally:
        busy.discard(ident)


def _start_phase(telemetry: Telemetry, parent_ctx: otel_context.Context, phase: str) -> ActiveCall:
    parent = current_scope(parent_ctx)
    if parent is None:
        # A phase outside any versioned call: a span with the phase, no version to count it under.
        span = _start_span(telemetry, phase, parent_ctx, {sc.MIGRATION_PHASE: phase})
        context = trace.set_span_in_context(span, parent_ctx)
        return ActiveCall(telemetry, Scope("", "", "", phase), KIND_UNVERSIONED_PHASE, span, context)
    scope = parent.with_phase(phase)
    span = _start_span(telemetry, phase, parent_ctx, scope.span_attributes())
    return ActiveCall(telemetry, scope, KIND_PHASE, span, call_context(parent_ctx, span, scope))


# -- wrapper factories -----------------------------------------------------------------------------
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _sync_wrapper(spec: CallSpec | None, phase: str | None) -> Wrapper:
    def general(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = start_call(spec, phase)
        if call is None:
            return wrapped(*args, **kwargs)
        call.activate()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.close(exc)
            raise
        call.close(None)
        return result

    return general if spec is None else _plain_call_wrapper(spec, general)


def _plain_call_wrapper(spec: CallSpec, general: Wrapper) -> Wrapper:
    """A synchronous versioned call with :func:`start_call`, ``activate`` and ``close`` in one frame.

    The same lifecycle, guards and outcome as the general path, minus its calls and the
    :class:`ActiveCall` object: every function call and attribute lookup here is paid on every call
    of the host's busiest code (``benchmarks/call_overhead.py``). The general path takes the first
    call of a spec (which binds it), a call under a new telemetry, calls that measure memory, and
    a failure to start; a call that raises is handed over to :meth:`ActiveCall.adopt`, because its
    outcome, error type and span status are the general path's work. The row is written out here
    rather than built by ``records.make_row`` for the same reason. ``tests/test_call_path.py`` holds
    the two paths to the same spans and records.
    """
    operation = spec.operation

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ident = _get_ident()
        busy = _BUSY
        if ident in busy:  # our own work reached a wrapped function: it runs untraced
            return wrapped(*args, **kwargs)
        bound = spec._bound
        telemetry = _runtime.active()
        if (
            telemetry is None
            or bound is None
            or bound.telemetry is not telemetry
            or bound.memory
            or not telemetry.enabled
        ):
            return general(wrapped, instance, args, kwargs)
        busy.add(ident)
        try:
            parent = _get_current()
            subject = parent.get(SUBJECT_KEY)
            scope = bound.scope if subject is None else spec.scope(bound.scope.migration, subject)  # type: ignore[arg-type]
            span = telemetry.tracer.start_span(operation, parent, _INTERNAL, bound.attributes)
            token = _attach(_Context({**parent, SPAN_KEY: span, SCOPE_KEY: scope}))
        except Exception:
            token = None
        busy.discard(ident)
        if token is None:  # the general path starts the call, or logs why it cannot
            return general(wrapped, instance, args, kwargs)
        in_flight = bound.in_flight
        if in_flight is not None:
            in_flight.append(None)
        cpu_from = _thread_time_ns() if bound.cpu else 0
        start_ns = _perf_counter_ns()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            ActiveCall.adopt(bound, scope, span, token, start_ns, cpu_from).close(exc)
            raise
        cpu_s = (_thread_time_ns() - cpu_from) / 1e9 if bound.cpu else None
        end_ns = _perf_counter_ns()
        try:
            _detach(token)
        except Exception:
            log_once("detach", "otel-migration: could not restore the context")
        if in_flight is not None:
            exit_slot(in_flight)
        entered = ident not in busy
        if entered:
            busy.add(ident)
        try:
            try:
                span.end()
            except Exception:
                log_once("end", "otel-migration: failed to end a span; the call is still counted")
            telemetry.recorder.submit(
                (
                    bound.scope_id,
                    scope.subject,
                    scope.session,
                    sc.OUTCOME_OK,
                    (end_ns - start_ns) / 1e9,
                    _time_ns(),
                    None,
                    None,
                    cpu_s,
                )
            )
        except Exception:
            log_once("submit", "otel-migration: failed to record a call")
        finally:
            if entered:
                busy.discard(ident)
        return result

    return wrapper


def _coroutine_wrapper(spec: CallSpec | None, phase: str | None) -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = start_call(spec, phase)
        if call is None:
            return await wrapped(*args, **kwargs)
        call.activate()
        try:
            result = await call.stepped(wrapped(*args, **kwargs))
        except BaseException as exc:
            call.close(exc)
            raise
        call.close(None)
        return result

    return wrapper


class _Untraced:
    """Stands in for an :class:`ActiveCall` when instrumentation is off or failed: every step a no-op."""

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def close(self, exc: BaseException | None) -> None:
        pass

    def stepped(self, awaitable: Any) -> Any:
        return awaitable

    def first_item(self) -> None:
        pass


_UNTRACED: Final = _Untraced()


def _traced_generator(
    generator: Generator[Any, Any, Any], spec: CallSpec | None, phase: str | None
) -> Generator[Any, Any, Any]:
    # Started lazily: creating a generator does no work, its first step does.
    call: ActiveCall | _Untraced | None = None
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        if call is None:
            call = start_call(spec, phase) or _UNTRACED
        call.activate()
        try:
            item = generator.send(to_send) if to_throw is None else generator.throw(to_throw)
        except StopIteration as stop:
            call.close(None)
            return stop.value
        except BaseException as exc:
            call.close(exc)
            raise
        call.deactivate()
        call.first_item()
        to_send, to_throw = None, None
        try:
            to_send = yield item
        except GeneratorExit:
            # Closed early by the consumer: run the generator's own cleanup under the span.
            call.activate()
            try:
                generator.close()
            finally:
                call.close(None)
            raise
        except BaseException as exc:
            to_throw = exc


async def _traced_async_generator(
    generator: AsyncGenerator[Any, Any], spec: CallSpec | None, phase: str | None
) -> AsyncGenerator[Any, Any]:
    call: ActiveCall | _Untraced | None = None
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        if call is None:
            call = start_call(spec, phase) or _UNTRACED
        call.activate()
        try:
            item = await call.stepped(
                generator.asend(to_send) if to_throw is None else generator.athrow(to_throw)
            )
        except StopAsyncIteration:
            call.close(None)
            return
        except BaseException as exc:
            call.close(exc)
            raise
        call.deactivate()
        call.first_item()
        to_send, to_throw = None, None
        try:
            to_send = yield item
        except GeneratorExit:
            call.activate()
            try:
                await generator.aclose()
            finally:
                call.close(None)
            raise
        except BaseException as exc:
            to_throw = exc


def _generator_wrapper(spec: CallSpec | None, phase: str | None) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return _traced_generator(wrapped(*args, **kwargs), spec, phase)

    return wrapper


def _async_generator_wrapper(spec: CallSpec | None, phase: str | None) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return _traced_async_generator(wrapped(*args, **kwargs), spec, phase)

    return wrapper


def underlying_function(obj: Any) -> Any:
    """The plain function behind a classmethod, staticmethod or bound method, to tell its kind."""
    while True:
        if isinstance(obj, (classmethod, staticmethod)) or inspect.ismethod(obj):
            obj = obj.__func__
        else:
            return obj


def make_wrapper(target: Any, spec: CallSpec | None, phase: str | None = None) -> Wrapper:
    """The wrapper that fits ``target``: sync, coroutine, generator or async generator function."""
    function = underlying_function(target)
    if inspect.isasyncgenfunction(function):
        return _async_generator_wrapper(spec, phase)
    if inspect.iscoroutinefunction(function):
        return _coroutine_wrapper(spec, phase)
    if inspect.isgeneratorfunction(function):
        return _generator_wrapper(spec, phase)
    return _sync_wrapper(spec, phase)
