"""Exact per-call metrics that cost the caller one ``deque.append``.

Why not call ``Counter.add`` and ``Histogram.record`` on every call, as hand-written instrumentation
does? With opentelemetry-sdk 1.45 those two calls cost about half as much again as the span itself
(attribute cleaning and hashing on every measurement). Here the call path only appends a finished
call to a queue: a plain call as a row of strings and numbers (``records.CallRow``), which the
garbage collector stops tracking, so thousands of them waiting cost the host's collections nothing.
A background thread (and every metric collection, so nothing is stale when the reader exports)
drains the queue in chunks: each chunk is grouped once (:class:`CallBatch`), exact cumulative
request and error counts are kept per group and reported through observable counters, durations go
to batch histograms (``histograms.py``: one numpy bucketing per group instead of an SDK ``record``
per call), and the batch goes to the registered listeners (the analytics processors), which
aggregate it with numpy too. Counts therefore come from every call, whether or not its span was
sampled.

Limits: the queue is bounded by ``max_queue_size``; past it a record is dropped, counted in
``migration.telemetry.dropped`` and logged once, never silently lost. Past half of it, callers
help: a call that finds no drain running aggregates a chunk itself (without waiting for a lock),
because many busy threads leave the aggregator thread too small a share of the GIL to keep up.
(Only one thread drains at a time, with its share of the GIL: many threads doing nothing but
empty versioned calls can still outrun it, and then what does not fit is dropped, counted.)
``benchmarks/aggregator_ceiling.py`` measures the rate the aggregation sustains. After ``os.fork``
the child starts with an empty queue and zeroed counts: the parent exports its own. After
:meth:`CallRecorder.shutdown` calls finishing are not recorded at all (nothing exports them any
more), rather than counted as dropped.

Re-entry: a signal handler may call ``force_flush``/``shutdown`` on the main thread while that
thread is inside :meth:`CallRecorder.drain`. The drain lock is re-entrant for *readers* (the
metric callbacks copy the counts), but a drain re-entered on its own thread returns at once: the
interrupted drain goes on when the handler returns, and running it twice would lose updates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Final

from opentelemetry.metrics import Meter

from . import process
from . import semconv as sc
from .batch import CallBatch
from .histograms import HistogramSet
from .instruments import Measured, items_under, observer
from .records import CallListener, Queued

__all__ = ["CallRecorder"]

_logger = logging.getLogger(__name__)

_WAKE_AT: Final = 8192  # records waiting before the worker is woken early
_DRAIN_INTERVAL_S: Final = 0.5  # longest a record waits for aggregation when calls are rare
# Calls aggregated per hold of the drain lock: large enough that numpy's and the listeners' per-group
# overhead is spread over many calls (woken at 2,048 with chunks of 4,096, the aggregation cost about
# 40 % more per call), small enough that a metric collection waiting to read waits milliseconds.
_CHUNK: Final = 8192
_COLLECT_DRAIN_MILLIS: Final = 1_000  # a metric collection drains at most this long, then reads


_RequestKey = tuple[str, str, str, str]  # migration, operation, version, outcome
_ErrorKey = tuple[str, str, str, str, str]  # migration, operation, version, error.type, category
_PhaseKey = tuple[str, str, str, str, str]  # migration, operation, version, phase, outcome


class CallRecorder:
    """The queue, its drain, and the instruments the drained records feed."""

    def __init__(
        self,
        meter: Meter,
        *,
        max_queue_size: int,
        listeners: Iterable[CallListener] = (),
        histograms: HistogramSet | None = None,
    ) -> None:
        self._max_queue_size = max_queue_size
        self._assist_at = max(max_queue_size // 2, _WAKE_AT)
        self._queue: deque[Queued] = deque()
        self._listeners: tuple[CallListener, ...] = tuple(listeners)
        self._drain_lock = threading.RLock()
        self._drain_owner: int | None = None  # the thread inside drain(), for re-entry from a handler
        self._drop_lock = threading.Lock()
        # Wakes the worker. A SimpleQueue, not a threading.Event: its put() takes no Python-level
        # lock, so stop() from a signal handler that landed inside submit()'s wake-up cannot wait
        # on a lock its own thread holds (an Event's set() would: a deadlock, no deadline).
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._stopped = False
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._dropped = 0
        self._abandoned = 0  # queued records a shutdown had no time left to aggregate
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
        histograms = histograms or HistogramSet(meter, owned=False)
        self._duration = histograms.explicit(
            sc.METRIC_DURATION, "s", "Duration of versioned calls.", sc.DURATION_BUCKETS
        )
        self._phase_duration = histograms.explicit(
            sc.METRIC_PHASE_DURATION,
            "s",
            "Duration of pipeline phases inside versioned calls.",
            sc.DURATION_BUCKETS,
        )
        weak_reinit = weakref.WeakMethod(self._reinit_after_fork)
        os.register_at_fork(after_in_child=lambda: (method := weak_reinit()) is not None and method())

    # -- the call path ----------------------------------------------------------------------------
    def submit(self, record: Queued) -> None:
        """Queue a finished call; never blocks, never raises."""
        if self._stopped:
            return
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self._assist()  # make room if no drain is running; else the record is dropped, counted
            if len(queue) >= self._max_queue_size:
                self._drop()
                return
        queue.append(record)
        waiting = len(queue)
        if self._worker is None:
            self._start_worker()
        elif waiting == _WAKE_AT:
            self._wake.put(None)
        elif waiting >= self._assist_at:
            self._assist()

    def _assist(self) -> None:
        """The queue is half full: this caller aggregates one chunk itself, if nobody else is.

        Many threads making calls share the GIL with the one aggregator thread, which then gets
        too small a share to keep up and the queue would overflow. While it is past the half-way
        mark, a call that finds no drain running pays for one chunk (a millisecond or two) instead,
        which keeps the queue from filling. Never waits: when a drain is running, or this thread
        is inside one (a signal handler), it returns at once.
        """
        if self._drain_owner is not None or not self._drain_lock.acquire(blocking=False):
            return
        try:
            self._drain_chunk(_CHUNK, None)
        except Exception:  # pragma: no cover - defensive: never raise into the caller
            _logger.exception("otel-migration: failed to aggregate a chunk of calls")
        finally:
            self._drain_lock.release()

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
            process.mark_served()
            self._worker = threading.Thread(target=self._run, name="otel-migration-aggregator", daemon=True)
            self._worker.start()

    # -- the background side ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=_DRAIN_INTERVAL_S)
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

    def drain(self, deadline: process.Deadline | None = None) -> bool:
        """Aggregate everything queued so far; safe from any thread and from a signal handler.

        Works in chunks, releasing the lock between them, so a metric collection waiting to read
        the counts never waits for a whole long drain. With a ``deadline`` it stops when the
        deadline passes (the rest waits for the next drain). True when everything queued at the
        start was aggregated.
        """
        if self._drain_owner == threading.get_ident():
            return False  # re-entered by a signal handler: the interrupted drain resumes after it
        left = len(self._queue)
        while left > 0:
            if self._stopped and deadline is None and threading.current_thread() is self._worker:
                return False  # shutdown's own drain takes over, under its deadline
            chunk = min(left, _CHUNK)
            if not self._drain_chunk(chunk, deadline):
                return False
            left -= chunk
        return True

    def _drain_chunk(self, size: int, deadline: process.Deadline | None) -> bool:
        lock = self._drain_lock
        if not lock.acquire(timeout=deadline.remaining_s() if deadline is not None else -1):
            return False
        self._drain_owner = threading.get_ident()
        try:
            with process.busy():
                # Only drains pop, under this lock, so the length read here can only grow meanwhile.
                pop = self._queue.popleft
                records: list[Queued] = [pop() for _ in range(min(size, len(self._queue)))]
                if records:
                    try:
                        self._aggregate(CallBatch(records))
                    except Exception:  # pragma: no cover - defensive: an SDK or listener bug
                        _logger.exception("otel-migration: failed to aggregate %d call records", len(records))
        finally:
            self._drain_owner = None
            lock.release()
        return deadline is None or not deadline.expired

    def _aggregate(self, batch: CallBatch) -> None:
        self._count(batch)
        for listener in self._listeners:
            try:
                on_batch = getattr(listener, "on_batch", None)
                if on_batch is not None:
                    on_batch(batch)
                else:
                    for record in batch.records:
                        listener.on_call(record)
            except Exception:
                _logger.exception("otel-migration: listener %r failed", listener)

    def _count(self, batch: CallBatch) -> None:
        for phase in batch.phases:
            self._phase_duration.record(phase.durations, self._attrs_for(phase.key, _PHASE_NAMES))
        for group in batch.calls:
            key = (group.migration, group.operation, group.version, group.outcome)
            self._requests[key] = self._requests.get(key, 0) + group.size
            self._duration.record(group.durations, self._attrs_for(key, _REQUEST_NAMES))
            if group.outcome == sc.OUTCOME_ERROR:
                for err_type, category in zip(group.error_types, group.error_categories, strict=True):
                    if err_type is not None:
                        error_key = (*key[:3], err_type, category or "unknown")
                        self._errors[error_key] = self._errors.get(error_key, 0) + 1

    def _attrs_for(self, key: tuple[str, ...], names: tuple[str, ...]) -> dict[str, str]:
        by_key = self._attributes.setdefault(names, {})
        attrs = by_key.get(key)
        if attrs is None:
            attrs = by_key[key] = dict(zip(names, key, strict=True))
        return attrs

    # -- observable callbacks ---------------------------------------------------------------------
    def _read_requests(self) -> Measured:
        self.drain(process.Deadline(_COLLECT_DRAIN_MILLIS))
        items = items_under(self._drain_lock, self._requests)
        return [(count, self._attrs_for(key, _REQUEST_NAMES)) for key, count in items]

    def _read_errors(self) -> Measured:
        self.drain(process.Deadline(_COLLECT_DRAIN_MILLIS))
        items = items_under(self._drain_lock, self._errors)
        return [(count, self._attrs_for(key, _ERROR_NAMES)) for key, count in items]

    def _read_dropped(self) -> Measured:
        dropped = [(self._dropped, {"reason": "queue_full"})]
        if self._abandoned:
            dropped.append((self._abandoned, {"reason": "shutdown"}))
        return dropped

    # -- reading and lifecycle --------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Records lost: the queue was full, or the shutdown's deadline passed before they were counted."""
        return self._dropped + self._abandoned

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

    @property
    def queued(self) -> int:
        """Records waiting for aggregation."""
        return len(self._queue)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Take no more records (calls finishing from now on are not recorded) and stop the worker."""
        self._stopped = True
        self._wake.put(None)

    def shutdown(self, timeout_s: float = 5.0, deadline: process.Deadline | None = None) -> bool:
        """Stop taking records, stop the worker and drain what is queued, within the deadline.

        What the deadline leaves queued is counted in ``migration.telemetry.dropped`` with
        ``reason=shutdown`` (so the final export says what was lost) and let go. True when
        nothing was left.
        """
        deadline = deadline or process.Deadline(timeout_s * 1000)
        self.stop()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(deadline.remaining_s())
        self.drain(deadline)
        if not self._drain_lock.acquire(timeout=0.5):  # pragma: no cover - a drain stuck in a listener
            return False
        try:
            left = len(self._queue)
            self._queue.clear()
            self._abandoned += left
        finally:
            self._drain_lock.release()
        if left:
            _logger.warning(
                "otel-migration: shutdown deadline passed with %d calls not aggregated; counted in %s",
                left,
                sc.METRIC_TELEMETRY_DROPPED,
            )
        return not left

    def _reinit_after_fork(self) -> None:
        # Locks may have been held by a parent thread that does not exist in the child.
        self._drain_lock = threading.RLock()
        self._drain_owner = None
        self._drop_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._wake = queue.SimpleQueue()
        self._queue.clear()
        self._requests.clear()
        self._errors.clear()
        self._dropped = 0
        self._abandoned = 0
        self._drop_logged = False
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
