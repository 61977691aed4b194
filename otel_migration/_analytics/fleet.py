"""Mergeable state for the fleet: what every process exports so the collector can add it all up.

A process can only count what it saw: distinct users, percentiles and verdicts do not add up across
pre-fork workers and replicas. So next to its own figures each process exports *state* that merges
exactly (the contract is ``docs/fleet.md``; the collector's ``migration_analytics`` component
merges it and emits ``migration.fleet.*``):

- counts as cumulative sums (``migration.state.calls``, LLM tokens, quality actions, NPS, CSAT);
- distributions as base-2 exponential histograms at scale 6 (durations and thread CPU seconds of
  successful calls, LLM cost, quality scores): merged buckets give percentiles within 0.55 %;
- distinct users, sessions and users with an error as HyperLogLog sketches per migration, version
  and 5-minute bucket, shipped as OTLP log records (``migration.state.sketch``, the registers as a
  bytes body). A sketch is re-sent whole while its bucket changes: a register-wise maximum is
  idempotent, so a lost or repeated record never miscounts. No raw id leaves the process.

Everything is updated on the aggregator thread (or, for quality scores, where they are recorded),
never on the call path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

import numpy as np
import numpy.typing as npt
from opentelemetry._logs import Logger, LogRecord
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from .._core import semconv as sc
from .._core.batch import CallBatch, split_by
from .._core.histograms import HistogramSet
from .._core.instruments import Measured, items_under, observer
from .._core.records import LLMRecord, Record
from .sketch import PRECISION, HyperLogLog

__all__ = ["SKETCH_BUCKET_S", "FleetState", "QualityTotals", "views"]

_logger = logging.getLogger(__name__)

SKETCH_BUCKET_S: Final = 300
#: Scale 6: buckets 2^(1/64) wide, a midpoint within 0.54 % of every value in its bucket; 2048
#: buckets span 32 octaves (10 µs to 11 h) before the SDK has to lower the scale.
HISTOGRAM_MAX_SCALE: Final = 6
HISTOGRAM_MAX_SIZE: Final = 2048
#: Sketches held: the current and the previous bucket of every key (older ones were shipped whole).
_MAX_SKETCH_KEYS: Final = 4096
_SKETCH_EVERY_S: Final = 10.0

_CALL_NAMES: Final = (sc.MIGRATION_NAME, sc.MIGRATION_OPERATION, sc.MIGRATION_VERSION, sc.MIGRATION_OUTCOME)


def views() -> list[View]:
    """The views a MeterProvider needs for the state histograms to be exponential (see docs/fleet.md)."""
    aggregation = ExponentialBucketHistogramAggregation(
        max_size=HISTOGRAM_MAX_SIZE, max_scale=HISTOGRAM_MAX_SCALE
    )
    return [
        View(instrument_name=name, aggregation=aggregation)
        for name in (
            sc.METRIC_STATE_DURATION,
            sc.METRIC_STATE_CPU,
            sc.METRIC_STATE_LLM_COST,
            sc.METRIC_STATE_QUALITY_SCORE,
        )
    ]


#: (migration, version, tier) -> actions, NPS classes, CSAT ratings, as the quality tracker counts them.
QualityTotals = Iterable[tuple[tuple[str, str, str], dict[str, int], dict[str, int], dict[int, int]]]


class FleetState:
    """A call listener that keeps and exports this process's mergeable state."""

    def __init__(
        self,
        meter: Meter,
        logger: Logger | None,
        quality_totals: Callable[[], QualityTotals] | None = None,
        histograms: HistogramSet | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._logger = logger
        self._calls: dict[tuple[str, str, str, str], int] = {}
        self._tokens: dict[tuple[str, str, str], int] = {}
        # (migration, version, kind, bucket start) -> sketch, and whether it changed since it was shipped
        self._sketches: dict[tuple[str, str, str, int], tuple[HyperLogLog, bool]] = {}
        self._shipped_at = 0.0
        self._quality_totals = quality_totals
        histograms = histograms or HistogramSet(meter, owned=False)
        self._duration, self._cpu, self._cost, self._score = (
            histograms.exponential(
                name, unit, description, max_scale=HISTOGRAM_MAX_SCALE, max_size=HISTOGRAM_MAX_SIZE
            )
            for name, unit, description in (
                (sc.METRIC_STATE_DURATION, "s", "Durations of successful calls (mergeable)."),
                (sc.METRIC_STATE_CPU, "s", "Thread CPU time of successful calls (mergeable)."),
                (sc.METRIC_STATE_LLM_COST, "USD", "Cost of each priced LLM call (mergeable)."),
                (sc.METRIC_STATE_QUALITY_SCORE, "1", "Quality scores, 0-100 (mergeable)."),
            )
        )
        meter.create_observable_counter(
            sc.METRIC_STATE_CALLS,
            [observer(self._read_calls)],
            unit="{call}",
            description="Finished versioned calls by outcome (mergeable state).",
        )
        meter.create_observable_counter(
            sc.METRIC_STATE_LLM_TOKENS,
            [observer(self._read_tokens)],
            unit="{token}",
            description="Tokens of LLM calls made by a version (mergeable state).",
        )
        meter.create_observable_counter(
            sc.METRIC_STATE_QUALITY_ACTIONS,
            [observer(lambda: self._read_quality(1))],
            unit="{action}",
            description="What users did with answers (mergeable state).",
        )
        meter.create_observable_counter(
            sc.METRIC_STATE_QUALITY_NPS,
            [observer(lambda: self._read_quality(2))],
            unit="{response}",
            description="NPS answers by class (mergeable state).",
        )
        meter.create_observable_counter(
            sc.METRIC_STATE_QUALITY_CSAT,
            [observer(lambda: self._read_quality(3))],
            unit="{response}",
            description="CSAT answers by rating (mergeable state).",
        )

    # -- intake (the aggregator thread) -----------------------------------------------------------

    def reset_after_fork(self) -> None:
        """In a forked child: this process's state starts empty (the parent ships its own)."""
        self._lock = threading.Lock()
        self._calls, self._tokens, self._sketches = {}, {}, {}
        self._shipped_at = 0.0

    def on_call(self, record: Record) -> None:
        self.on_batch(CallBatch([record]))

    def on_batch(self, batch: CallBatch) -> None:
        """Add a drained chunk: counts and sketches per group, one histogram update per group."""
        for group in batch.calls:
            key = (group.migration, group.operation, group.version, group.outcome)
            buckets = group.end_ns // (SKETCH_BUCKET_S * 1_000_000_000) * SKETCH_BUCKET_S
            users, sessions = group.users, group.sessions
            with self._lock:
                self._calls[key] = self._calls.get(key, 0) + group.size
                for bucket, in_bucket in split_by(buckets):
                    if users[0].size:
                        hashes = users[1][in_bucket[users[0]]]
                        self._add(group.migration, group.version, "users", bucket, hashes)
                        if group.outcome == sc.OUTCOME_ERROR:
                            self._add(group.migration, group.version, "error_users", bucket, hashes)
                    if sessions[0].size:
                        hashes = sessions[1][in_bucket[sessions[0]]]
                        self._add(group.migration, group.version, "sessions", bucket, hashes)
            if group.outcome == sc.OUTCOME_OK:
                attributes = self._attributes(key[:3], _CALL_NAMES[:3])
                self._duration.record(group.durations, attributes)
                # Only the calls that measured their CPU (measure_cpu): an empty array records nothing.
                self._cpu.record(group.cpu, attributes)
        for record in batch.llm:
            self._on_llm(record)

    def _on_llm(self, record: LLMRecord) -> None:
        scope = record.scope
        if not scope.version:
            return  # made outside any versioned call: no version to merge it under
        base = {sc.MIGRATION_NAME: scope.migration, sc.MIGRATION_VERSION: scope.version}
        if record.cost_usd is not None:
            self._cost.record((record.cost_usd,), base)
        if record.usage_known and record.outcome == sc.OUTCOME_OK:
            with self._lock:
                for kind, tokens in (("input", record.input_tokens), ("output", record.output_tokens)):
                    key = (scope.migration, scope.version, kind)
                    self._tokens[key] = self._tokens.get(key, 0) + tokens

    def add_sample(self, metric: str, migration: str, version: str, value: float) -> None:
        """A sample sink: quality scores join the mergeable score distribution."""
        if metric == "quality" and version:
            self._score.record((value,), {sc.MIGRATION_NAME: migration, sc.MIGRATION_VERSION: version})

    def _add(
        self, migration: str, version: str, kind: str, bucket: int, hashes: npt.NDArray[np.uint64]
    ) -> None:
        if hashes.size == 0:
            return
        key = (migration, version, kind, bucket)
        found = self._sketches.get(key)
        if found is None:
            if len(self._sketches) >= _MAX_SKETCH_KEYS:
                return
            found = (HyperLogLog(), True)
        sketch = found[0]
        sketch.add_many(hashes)
        self._sketches[key] = (sketch, True)

    def set_logger(self, logger: Logger | None) -> None:
        """Where sketches go from now on (set when a configuration takes effect)."""
        self._logger = logger

    # -- shipping the sketches ----------------------------------------------------------------------
    def tick(self) -> None:
        """Ship changed sketches every few seconds (called by the aggregator thread)."""
        if time.monotonic() - self._shipped_at >= _SKETCH_EVERY_S:
            self.ship()

    def ship(self) -> int:
        """Emit every sketch that changed since it was last shipped; drop buckets that are done."""
        self._shipped_at = time.monotonic()
        now_bucket = int(time.time()) // SKETCH_BUCKET_S * SKETCH_BUCKET_S
        with self._lock:
            changed = [(key, sketch.copy()) for key, (sketch, dirty) in self._sketches.items() if dirty]
            for key, (sketch, _) in list(self._sketches.items()):
                if key[3] < now_bucket - SKETCH_BUCKET_S:
                    del self._sketches[key]  # shipped whole already; no call can land in it any more
                else:
                    self._sketches[key] = (sketch, False)
        logger = self._logger
        if logger is None:
            return 0
        for (migration, version, kind, bucket), sketch in changed:
            try:
                logger.emit(
                    LogRecord(
                        timestamp=time.time_ns(),
                        event_name=sc.EVENT_STATE_SKETCH,
                        body=sketch.registers.tobytes(),
                        attributes={
                            sc.MIGRATION_NAME: migration,
                            sc.MIGRATION_VERSION: version,
                            sc.MIGRATION_SKETCH_KIND: kind,
                            sc.MIGRATION_SKETCH_BUCKET_START: bucket,
                            sc.MIGRATION_SKETCH_BUCKET_WIDTH: SKETCH_BUCKET_S,
                            sc.MIGRATION_SKETCH_PRECISION: PRECISION,
                        },
                    )
                )
            except Exception:
                _logger.exception("otel-migration: could not emit a sketch record")
        return len(changed)

    # -- observable callbacks -----------------------------------------------------------------------
    @staticmethod
    def _attributes(key: tuple[str, ...], names: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(names, key, strict=True))

    def _read_calls(self) -> Measured:
        return [(n, self._attributes(key, _CALL_NAMES)) for key, n in items_under(self._lock, self._calls)]

    def _read_tokens(self) -> Measured:
        names = (sc.MIGRATION_NAME, sc.MIGRATION_VERSION, sc.GEN_AI_TOKEN_TYPE)
        return [(n, self._attributes(key, names)) for key, n in items_under(self._lock, self._tokens)]

    def _read_quality(self, column: int) -> Measured:
        """Quality counts summed over tiers: the fleet merges per migration and version."""
        if self._quality_totals is None:
            return []
        labels = (sc.MIGRATION_QUALITY_ACTION, sc.MIGRATION_NPS_CLASS, sc.MIGRATION_CSAT_RATING)
        label = labels[column - 1]
        totals: dict[tuple[str, str, str], int] = {}
        for row in self._quality_totals():
            (migration, version, _tier), counts = row[0], row[column]
            if not version:
                continue
            assert isinstance(counts, dict)
            for value, n in counts.items():
                key = (migration, version, str(value))
                totals[key] = totals.get(key, 0) + n
        names = (sc.MIGRATION_NAME, sc.MIGRATION_VERSION, label)
        return [(n, self._attributes(key, names)) for key, n in totals.items()]
