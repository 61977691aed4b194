"""``event(name, **attributes)``: an OpenTelemetry event (a log record with an event name) and its count.

The record goes to the configuration's LoggerProvider (the one ``configure()`` builds, with the
same destination as the traces, or the application's own); its ``BatchLogRecordProcessor`` does
the I/O on its own thread, so emitting costs the caller building one record and a queue append,
and never blocks. The record carries the trace context in effect (its trace and span ids) and the
migration scope (migration, operation, version, phase), so an event is found next to the call it
happened in. ``migration.events`` counts events by name, migration and version, whether or not
there is anywhere to send the records.

Limits: event names are the caller's; past :data:`MAX_SERIES` distinct (name, migration,
version) series, further ones are counted in one overflow series (``otel.metric.overflow=true``),
as the SDK does for its own instruments, so memory stays bounded.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Final

from opentelemetry._logs import Logger, LoggerProvider, SeverityNumber
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.util.types import AttributeValue

from .._core import semconv as sc
from .._core.context import current_scope
from .._core.instruments import Measured, items_under, observer
from .._core.lifecycle import log_once
from .._core.providers import global_logger_provider
from .._core.runtime import active
from ..version import __version__
from .names import WARNINGS

__all__ = ["MAX_SERIES", "EventCounts", "Events", "event"]

MAX_SERIES: Final = 2000

_Key = tuple[str, str, str]  # event name, migration, version
_OVERFLOW: Final[_Key] = ("", "", "")


class EventCounts:
    """``migration.events``: cumulative counts by event name, migration and version, per MeterProvider."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self.counts: dict[_Key, int] = {}
        # As the recorder does: a forked child starts from zero (the parent exports its own counts)
        # with a lock no parent thread can be holding.
        weak_reinit = weakref.WeakMethod(self._reinit_after_fork)
        os.register_at_fork(after_in_child=lambda: (method := weak_reinit()) is not None and method())
        meter.create_observable_counter(
            sc.METRIC_EVENTS,
            [observer(self._read)],
            unit="{event}",
            description="Events emitted with otel_migration.event(), by event name, migration and version.",
        )

    def add(self, key: _Key) -> None:
        with self._lock:
            counts = self.counts
            if key not in counts and len(counts) >= MAX_SERIES:
                key = _OVERFLOW
            counts[key] = counts.get(key, 0) + 1

    def _reinit_after_fork(self) -> None:
        self._lock = threading.Lock()
        self.counts.clear()

    def _read(self) -> Measured:
        out: list[tuple[float, dict[str, AttributeValue]]] = []
        for (name, migration, version), n in items_under(self._lock, self.counts):
            if (name, migration, version) == _OVERFLOW:
                out.append((n, {sc.OTEL_METRIC_OVERFLOW: True}))
            else:
                out.append(
                    (
                        n,
                        {
                            sc.MIGRATION_EVENT_NAME: name,
                            sc.MIGRATION_NAME: migration,
                            sc.MIGRATION_VERSION: version,
                        },
                    )
                )
        return out


_counts_lock: Final = threading.Lock()
_counts: weakref.WeakKeyDictionary[MeterProvider, EventCounts] = weakref.WeakKeyDictionary()


class Events:
    """This configuration's events: where the records go (``logger``, or nowhere) and their counts."""

    def __init__(self, logger: Logger | None, counts: EventCounts, migration: str) -> None:
        self.logger = logger
        self.counts = counts
        self.migration = migration

    @classmethod
    def build(
        cls, meter_provider: MeterProvider, logger_provider: LoggerProvider | None, migration: str
    ) -> Events:
        """The set-up's constructor: counts live as long as the MeterProvider (instruments register once)."""
        with _counts_lock:
            counts = _counts.get(meter_provider)
            if counts is None:
                meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
                counts = _counts[meter_provider] = EventCounts(meter)
        logger_provider = logger_provider or global_logger_provider()  # attached lazily: the app's own
        logger = (
            logger_provider.get_logger(sc.INSTRUMENTATION_SCOPE, __version__)
            if logger_provider is not None
            else None
        )
        return cls(logger, counts, migration)

    def emit(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        scope = current_scope()
        if scope is not None:
            migration, version = scope.migration, scope.version
            scoped: dict[str, AttributeValue] = {
                sc.MIGRATION_NAME: scope.migration,
                sc.MIGRATION_OPERATION: scope.operation,
                sc.MIGRATION_VERSION: scope.version,
            }
            if scope.phase:
                scoped[sc.MIGRATION_PHASE] = scope.phase
            attributes = scoped | attributes  # what the caller says wins
        else:
            migration, version = self.migration, ""
        self.counts.add((name, migration, version))
        logger = self.logger
        if logger is not None:
            warn = name in WARNINGS
            logger.emit(
                timestamp=time.time_ns(),
                event_name=name,
                attributes=attributes,
                severity_number=SeverityNumber.WARN if warn else SeverityNumber.INFO,
                severity_text="WARN" if warn else "INFO",
            )


def event(name: str, /, **attributes: AttributeValue) -> None:
    """Emit the OpenTelemetry event ``name`` with ``attributes``, in the trace and migration scope in effect.

    For example ``event(EventName.RETRY_ATTEMPTED, attempt=2, **{"error.type": "TimeoutError"})``.
    Attribute values are what OpenTelemetry allows (str, bool, int, float, or a list of one of them);
    the SDK drops others with a warning. A ``ValueError`` for a name that is not a non-empty string;
    anything else that goes wrong is logged once and never reaches the caller.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"event(): name must be a non-empty string, got {name!r}")
    try:
        telemetry = active()
        if telemetry is None or not telemetry.enabled:
            return
        events = telemetry.find(Events)
        if events is not None:
            events.emit(name, attributes)
    except Exception:
        log_once("event", "otel-migration: could not emit the event %r", name)
