"""One lifecycle for every call we trace (versioned calls, phases, LLM calls).

start (span opened, context built) -> activate (context attached around the work) -> deactivate
(context restored, for a generator between steps) -> finish (span ended, record submitted), at
most once. :class:`InFlight` owns the first three steps; each kind of call says how it finishes.
Instrumentation must never hurt the host: every step here is guarded, and failures are logged
through :class:`RateLimitedLog` (one line per kind, then a count of the repeats), never a flood.
Three small tools every kind of call shares live here too: :class:`OwnedStack` (what a shared
``with`` object has open, per thread and task), :class:`ReentryGuard` (our own code never traces
itself) and the rate-limited log.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from .runtime import Telemetry

__all__ = ["InFlight", "OwnedStack", "RateLimitedLog", "ReentryGuard", "log_once", "rate_limited", "reentry"]

T = TypeVar("T")

_logger = logging.getLogger("otel_migration")
_monotonic = time.monotonic  # module-level so tests can move the clock
_get_ident: Final = threading.get_ident
#: Shortest time between two lines of one kind; the second says how many were not logged meanwhile.
LOG_INTERVAL_S: Final = 300.0


class RateLimitedLog:
    """One line per kind of message, then at most one per ``interval_s`` with the count suppressed.

    "Logged once" is not enough: a kind of failure that repeats for hours deserves a line now and
    then saying so, and one that varies (a different unknown model each call) must not print a line
    per variant. Kinds are code constants, so the state is bounded. Thread-safe.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}  # kind -> (last logged at, suppressed since)

    def log(self, level: int, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        now = self._clock() if self._clock is not None else _monotonic()
        with self._lock:
            state = self._state.get(kind)
            if state is not None and now - state[0] < self._interval_s:
                self._state[kind] = (state[0], state[1] + 1)
                return
            self._state[kind] = (now, 0)
        if state is not None and state[1]:
            message = f"{message} (%d more like it in the last %ds were not logged)"
            args = (*args, state[1], int(now - state[0]))
        self._logger.log(level, message, *args, exc_info=exc_info)

    def reset(self) -> None:
        """Forget what was logged (for tests)."""
        with self._lock:
            self._state.clear()

    def warning(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)

    def error(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.ERROR, kind, message, *args)

    def exception(self, kind: str, message: str, *args: object) -> None:
        """An error with the traceback of the exception being handled."""
        self.log(logging.ERROR, kind, message, *args, exc_info=True)


#: The package's own rate-limited log (logger ``otel_migration``).
rate_limited: Final = RateLimitedLog(_logger)


def log_once(key: str, message: str, *args: object) -> None:
    """Log an instrumentation failure with its traceback, rate-limited per ``key``: never flood the host."""
    rate_limited.exception(key, message, *args)


class OwnedStack(Generic[T]):
    """What shared ``with`` objects have open in the current thread or task, newest last.

    One object may be entered by many threads and tasks at once (a module-level
    ``versioned(...)`` or ``subject(...)``), so what it opened cannot live on the object; and a
    context variable per object would stay in every context it was set in for as long as that
    context lives, one per object ever created. One module-level variable holding a stack of
    ``(owner, item)`` pairs has neither problem: an entry exists only while its block is open.
    """

    __slots__ = ("_var",)

    def __init__(self, name: str) -> None:
        self._var: contextvars.ContextVar[tuple[tuple[object, T], ...]] = contextvars.ContextVar(
            name, default=()
        )

    def push(self, owner: object, item: T) -> None:
        self._var.set((*self._var.get(), (owner, item)))

    def pop(self, owner: object) -> tuple[bool, T | None]:
        """``(True, item)`` for ``owner``'s newest open entry in this context, ``(False, None)`` if none."""
        stack = self._var.get()
        for index in range(len(stack) - 1, -1, -1):
            if stack[index][0] is owner:
                self._var.set(stack[:index] + stack[index + 1 :])
                return True, stack[index][1]
        return False, None


class ReentryGuard:
    """True while this thread runs our own instrumentation code, so that code never traces itself.

    A configured target called from inside our path (a sampler, an exporter or a listener calling
    application code we wrap) would otherwise start a call inside the start of a call, and so on:
    it runs untraced instead.
    """

    __slots__ = ("busy",)

    def __init__(self) -> None:
        #: Idents of the threads inside our code. A set rather than a threading.local: a lookup
        #: costs less than a thread-local attribute, this runs twice per call, and set operations
        #: are atomic. The versioned-call path reads it directly.
        self.busy: set[int] = set()
        os.register_at_fork(after_in_child=self.busy.clear)

    def enter(self) -> bool:
        """Mark this thread busy; False (and nothing marked) when it is busy already."""
        ident = _get_ident()
        busy = self.busy
        if ident in busy:
            return False
        busy.add(ident)
        return True

    def exit(self) -> None:
        self.busy.discard(_get_ident())


#: The guard every kind of call shares.
reentry: Final = ReentryGuard()


class InFlight:
    """A call in flight: its telemetry, span, the context that makes it current, and its start time."""

    __slots__ = ("_finished", "_token", "context", "span", "start_ns", "telemetry")

    def __init__(self, telemetry: Telemetry, span: Span, context: otel_context.Context | None) -> None:
        self.telemetry = telemetry
        self.span = span
        self.context = context
        self._token: object | None = None
        self._finished = False
        self.start_ns = time.perf_counter_ns()

    def activate(self) -> None:
        """Make the call's context current (no-op when it has none, or is current already)."""
        if self.context is None or self._token is not None:
            return
        try:
            self._token = otel_context.attach(self.context)
        except Exception:
            log_once("attach", "otel-migration: could not make the span current")

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                log_once("detach", "otel-migration: could not restore the context")

    def claim_finish(self) -> bool:
        """True once: the caller is the one that finishes the call (a second finish is a no-op)."""
        if self._finished:
            return False
        self._finished = True
        return True

    def elapsed_s(self) -> float:
        return (time.perf_counter_ns() - self.start_ns) / 1e9
