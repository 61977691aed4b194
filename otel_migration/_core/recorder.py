"""Exact per-call metrics that cost the caller one ``deque.append``.

Why not call ``Counter.add`` and ``Histogram.record`` on every call, as hand-written instrumentation
does? With opentelemetry-sdk 1.45 those two calls cost about half as much again as the span itself
(attribute cleaning and hashing on every measurement). Here the call path only appends a finished
:class:`CallRecord` to a queue. A background thread (and every metric collection, so nothing is
stale when the reader exports) drains the queue: it keeps exact cumulative request and error counts,
reported through observable counters, feeds durations to an SDK histogram (so users' Views and
bucket advice still apply), and hands each record to the registered listeners (the analytics
processors). Counts therefore come from every call, whether or not its span was sampled.

Limits: the queue is bounded by ``max_queue_size``; past it a record is dropped, counted in
``migration.telemetry.dropped`` and logged once, never silently lost. After ``os.fork`` the child
starts with an empty queue and zeroed counts: the parent exports its own.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Final

from opentelemetry.metrics import Meter

from . import semconv as sc
from .instruments import Measured, items_under, observer
from .records import CallListener, CallRecord, Record

__all__ = ["CallRecorder"]

_logger = logging.getLogger(__name__)

_WAKE_AT: Final = 2048  # records waiting before the worker is woken early
_DRAIN_INTERVAL_S: Final = 0.5  # longest a record waits for aggregation when calls are rare


_RequestKey = tuple[str, str, str, str]  # migration, operation, version, outcome
_ErrorKey = tuple[str, str, str, str, str]  # migration, operation, version, error.type, category
_PhaseKey = tuple[str, str, str, str, str]  # migration, operation, version, phase, outcome


class CallRecorder:
    """The queue, its drain, and the instruments the drained records feed."""

    def __init__(self, meter: Meter, *, max_queue_size: int, listeners: Iterable[CallListener] = ()) -> None:
        self._max_queue_size = max_queue_size
        self._queue: deque[Record] = deque()
        self._listeners: tuple[CallListener, ...] = tuple(listeners)
        self._drain_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._dropped = 0
        self._drop_logged = False
        self._requests: dict[_RequestKey, int] = {}
        self._errors: dict[_ErrorKey, int] = {}
        # Attribute dicts built once per distinct key and reused: keys are few (bounded by code).
        self._attributes: dict[tuple[str, ...], dict[tuple[str, ...], dict[str, str]]] = {}

        meter.create_observable_counter(
            sc.METRIC_REQUESTS,
            callbacks=[observer(self._read_requests)],
            unit="{request}",
            description="Versioned calls by migration, operation, version and outcome; sampled or not.",
        )
        meter.create_observable_counter(
            sc.METRIC_ERRORS,
            callbacks=[observer(self._read_errors)],
            unit="{error}",
            description="Versioned calls that raised, by error.type and error category.",
        )
        meter.create_observable_counter(
            sc.METRIC_TELEMETRY_DROPPED,
            callbacks=[observer(self._read_dropped)],
            unit="{call}",
            description="Finished calls not aggregated because the in-process queue was full.",
        )
        self._duration = meter.create_histogram(
            sc.METRIC_DURATION,
            unit="s",
            description="Duration of versioned calls.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self._phase_duration = meter.create_histogram(
            sc.METRIC_PHASE_DURATION,
            unit="s",
            description="Duration of pipeline phases inside versioned calls.",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        weak_reinit = weakref.WeakMethod(self._reinit_after_fork)
        os.register_at_fork(after_in_child=lambda: (method := weak_reinit()) is not None and method())

    # -- the call path ----------------------------------------------------------------------------
    def submit(self, record: Record) -> None:
        """Queue a finished call; never blocks, never raises."""
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self._drop()
            return
        queue.append(record)
        if self._worker is None:
            self._start_worker()
        elif len(queue) == _WAKE_AT:
            self._wake.set()

    def _drop(self) -> None:
        with self._drop_lock:
            self._dropped += 1
            first = not self._drop_logged
            self._drop_logged = True
        if first:
            _logger.warning(
                "otel-migration: call queue full (max_queue_size=%d); dropped calls are counted in %s",
                self._max_queue_size,
                sc.METRIC_TELEMETRY_DROPPED,
            )

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._worker is not None or self._stopped:
                return
            self._worker = threading.Thread(target=self._run, name="otel-migration-aggregator", daemon=True)
            self._worker.start()

    # -- the background side ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(_DRAIN_INTERVAL_S)
            self._wake.clear()
            self.drain()
            self._tick_listeners()

    def _tick_listeners(self) -> None:
        """Give listeners with periodic work (re-evaluating analytics) a turn, off the call path."""
        for listener in self._listeners:
            tick = getattr(listener, "tick", None)
            if tick is not None:
                try:
                    tick()
                except Exception:
                    _logger.exception("otel-migration: listener %r failed to tick", listener)

    def drain(self) -> None:
        """Aggregate everything queued so far; safe to call from any thread."""
        with self._drain_lock:
            queue = self._queue
            for _ in range(len(queue)):
                try:
                    record = queue.popleft()
                except IndexError:
                    break
                try:
                    self._aggregate(record)
                except Exception:  # pragma: no cover - defensive: an SDK or listener bug
                    _logger.exception("otel-migration: failed to aggregate a call record")

    def _aggregate(self, record: Record) -> None:
        if isinstance(record, CallRecord):  # LLM records are the listeners' alone
            self._count(record)
        for listener in self._listeners:
            try:
                listener.on_call(record)
            except Exception:
                _logger.exception("otel-migration: listener %r failed", listener)

    def _count(self, record: CallRecord) -> None:
        scope = record.scope
        if scope.phase is not None:
            phase_key = (scope.migration, scope.operation, scope.version, scope.phase, record.outcome)
            self._phase_duration.record(record.duration_s, self._attrs_for(phase_key, _PHASE_NAMES))
            return
        key = (scope.migration, scope.operation, scope.version, record.outcome)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._duration.record(record.duration_s, self._attrs_for(key, _REQUEST_NAMES))
        if record.error_type is not None:
            category = record.error_category or "unknown"
            error_key = (scope.migration, scope.operation, scope.version, record.error_type, category)
            self._errors[error_key] = self._errors.get(error_key, 0) + 1

    def _attrs_for(self, key: tuple[str, ...], names: tuple[str, ...]) -> dict[str, str]:
        by_key = self._attributes.setdefault(names, {})
        attrs = by_key.get(key)
        if attrs is None:
            attrs = by_key[key] = dict(zip(names, key, strict=True))
        return attrs

    # -- observable callbacks ---------------------------------------------------------------------
    def _read_requests(self) -> Measured:
        self.drain()
        items = items_under(self._drain_lock, self._requests)
        return [(count, self._attrs_for(key, _REQUEST_NAMES)) for key, count in items]

    def _read_errors(self) -> Measured:
        self.drain()
        items = items_under(self._drain_lock, self._errors)
        return [(count, self._attrs_for(key, _ERROR_NAMES)) for key, count in items]

    def _read_dropped(self) -> Measured:
        return [(self._dropped, {"reason": "queue_full"})]

    # -- reading and lifecycle --------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def queue_depth(self) -> int:
        """Finished calls waiting for aggregation now (``migration.telemetry.queue.depth``)."""
        return len(self._queue)

    @property
    def max_queue_size(self) -> int:
        return self._max_queue_size

    def request_counts(self) -> dict[_RequestKey, int]:
        """Cumulative requests by (migration, operation, version, outcome), after a drain."""
        self.drain()
        with self._drain_lock:
            return dict(self._requests)

    def error_counts(self) -> dict[_ErrorKey, int]:
        self.drain()
        with self._drain_lock:
            return dict(self._errors)

    def add_listener(self, listener: CallListener) -> None:
        self._listeners = (*self._listeners, listener)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Drain what is queued and stop the worker."""
        self._stopped = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)
        self.drain()

    def _reinit_after_fork(self) -> None:
        # Locks may have been held by a parent thread that does not exist in the child.
        self._drain_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._wake = threading.Event()
        self._queue.clear()
        self._requests.clear()
        self._errors.clear()
        self._dropped = 0
        self._worker = None


_REQUEST_NAMES: Final = (
    sc.MIGRATION_NAME,
    sc.MIGRATION_OPERATION,
    sc.MIGRATION_VERSION,
    sc.MIGRATION_OUTCOME,
)
_ERROR_NAMES: Final = (
    sc.MIGRATION_NAME,
    sc.MIGRATION_OPERATION,
    sc.MIGRATION_VERSION,
    sc.ERROR_TYPE,
    sc.MIGRATION_ERROR_CATEGORY,
)
_PHASE_NAMES: Final = (
    sc.MIGRATION_NAME,
    sc.MIGRATION_OPERATION,
    sc.MIGRATION_VERSION,
    sc.MIGRATION_PHASE,
    sc.MIGRATION_OUTCOME,
)
