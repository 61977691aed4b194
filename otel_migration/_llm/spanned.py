"""One shape for ``tool(...)`` and ``agent(...)``: a decorator (sync or async function) and a ``with`` block.

Both open an INTERNAL span under the migration scope in effect (:func:`start_span`), and both runs
close the same way (:class:`SpannedRun`): the context restored, then finished at most once with an
outcome (:func:`outcome_of`), a failure of our own logged and never raised.

Like ``versioned``, one object may be shared by many threads and tasks at once (a module-level
``SEARCH = tool("search")``), so the runs a block has in flight are kept in a context variable of
that object, not on the object. Generators are refused: a span around a generator function would
cover creating the generator, not its work; wrap the loop that consumes it in a block instead.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from .._core import semconv as sc
from .._core.context import current_scope
from .._core.lifecycle import InFlight, log_once
from .._core.runtime import Telemetry

__all__ = ["Call", "Run", "Spanned", "SpannedRun", "outcome_of", "start_span"]

F = TypeVar("F", bound=Callable[..., Any])
#: A decorated call's positional and keyword arguments.
Call = tuple[tuple[Any, ...], dict[str, Any]]


class Run(Protocol):
    """A run in flight: made current around the work, then closed once with the exception, if any."""

    def activate(self) -> None: ...

    def close(self, exc: BaseException | None) -> None: ...

    def returned(self, result: Any) -> None:
        """What a decorated function returned, before ``close`` (blocks have none)."""


R = TypeVar("R", bound=Run)


def outcome_of(exc: BaseException | None) -> str:
    """ok, error (an exception) or cancelled (cancellation, KeyboardInterrupt, SystemExit)."""
    if exc is None or isinstance(exc, GeneratorExit):
        return sc.OUTCOME_OK
    return sc.OUTCOME_ERROR if isinstance(exc, Exception) else sc.OUTCOME_CANCELLED


def start_span(
    telemetry: Telemetry, name: str, attributes: dict[str, Any]
) -> tuple[Span, otel_context.Context, str, str]:
    """An INTERNAL span with ``attributes`` and those of the migration scope in effect; the context
    that makes it current; and the migration and version the run counts under (outside a versioned
    call: the configured migration and no version)."""
    scope = current_scope()
    if scope is not None:
        attributes = {**attributes, **scope.span_attributes()}
    span = telemetry.tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
    if scope is None:
        return span, trace.set_span_in_context(span), telemetry.settings.migration, ""
    return span, trace.set_span_in_context(span), scope.migration, scope.version


class SpannedRun:
    """A tool run or an agent loop in flight (no call when untraced): made current around the work,
    finished once however often it is closed."""

    __slots__ = ("_flight",)
    #: Names the run in the rate-limited log: its kind (the log key) and how a line calls it.
    _kind: ClassVar[str] = "run"
    _noun: ClassVar[str] = "a run"

    def __init__(self, flight: InFlight | None) -> None:
        self._flight = flight

    def activate(self) -> None:
        if self._flight is not None:
            self._flight.activate()

    def returned(self, result: Any) -> None:
        """What a decorated function returned: nothing is recorded unless a run says so."""

    def close(self, exc: BaseException | None) -> None:
        flight = self._flight
        if flight is None:
            return
        flight.deactivate()
        if not flight.claim_finish():
            return
        try:
            self._finish(flight.span, exc)
        except Exception:
            log_once(f"{self._kind}-finish", f"otel-migration: failed to finish {self._noun}'s telemetry")

    def _finish(self, span: Span, exc: BaseException | None) -> None:
        """End the span and count the run; called once, by :meth:`close`."""
        raise NotImplementedError


class _Running:
    """One call of a decorated function around its run: the run is current inside; on the way out it
    is closed with the exception that left, or first told what the function returned."""

    __slots__ = ("_run", "result")

    def __init__(self, run: Run) -> None:
        self._run = run
        self.result: Any = None

    def __enter__(self) -> _Running:
        self._run.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self._run.returned(self.result)
        self._run.close(exc)


class Spanned(Generic[R]):
    """Decorate with ``__call__``; enter as a (sync or async) block, which gives the run."""

    _kind = "spanned"

    def __init__(self) -> None:
        self._in_flight: contextvars.ContextVar[tuple[R, ...]] = contextvars.ContextVar(
            f"otel_migration_{self._kind}", default=()
        )

    def _start(self, function: Callable[..., Any] | None, call: Call | None = None) -> R:
        """Open the run (its span, its context); never raises, whatever the state of the telemetry.

        ``function`` and ``call`` (its positional and keyword arguments) are None for a block."""
        raise NotImplementedError

    def __call__(self, function: F) -> F:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(f"{self!r} cannot wrap the generator function {function!r}; use it as a block")
        if inspect.iscoroutinefunction(function):

            def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                async def run() -> Any:
                    with _Running(self._start(wrapped, (args, kwargs))) as running:
                        running.result = await wrapped(*args, **kwargs)
                    return running.result

                return run()

        else:

            def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                with _Running(self._start(wrapped, (args, kwargs))) as running:
                    running.result = wrapped(*args, **kwargs)
                return running.result

        return cast(F, wrapt.FunctionWrapper(function, wrapper))

    def __enter__(self) -> R:
        current = self._start(None)
        current.activate()
        self._in_flight.set((*self._in_flight.get(), current))
        return current

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = self._in_flight.get()
        if stack:
            self._in_flight.set(stack[:-1])
            stack[-1].close(exc)

    async def __aenter__(self) -> R:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
