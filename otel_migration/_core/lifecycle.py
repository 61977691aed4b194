"""One lifecycle for every call we trace (versioned calls, phases, LLM calls).

start (span opened, context built) -> activate (context attached around the work) -> deactivate
(context restored, for a generator between steps) -> finish (span ended, record submitted), at
most once. :class:`InFlight` owns the first three steps; each kind of call says how it finishes.
Instrumentation must never hurt the host: every step here is guarded and logs a failure once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from .runtime import Telemetry

__all__ = ["InFlight", "log_once"]

_logger = logging.getLogger("otel_migration")
_logged: set[str] = set()
_logged_lock: Final = threading.Lock()


def log_once(key: str, message: str, *args: object) -> None:
    """Log an instrumentation failure with its traceback, once per ``key``: never flood the host's logs."""
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    _logger.exception(message, *args)


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
