"""Histograms aggregated a batch at a time with numpy, exported as ordinary OTLP histogram points.

Why not the SDK's ``Histogram.record``? It takes one value per call: with opentelemetry-sdk 1.45
each value costs a ``Measurement``, a copy and a hash of its attributes and a lock, and an
exponential bucket costs a logarithm in Python besides (``benchmarks/call_overhead.py``). The
recorder drains finished calls in chunks, so here the values of one attribute set in a chunk are
bucketed by one ``numpy.searchsorted`` (explicit buckets) or one vectorised ``log`` (base-2
exponential buckets) and added to running counts.

The points are the same as the SDK's: explicit buckets are upper-inclusive (``bisect_left``),
exponential indexes follow the SDK's logarithm mapping (exact powers of two at the top of their
bucket), the scale starts at ``max_scale`` and is lowered only when the indexes no longer fit in
``max_size`` buckets; count, sum, min and max are exact. ``tests/test_histograms.py`` checks both
against the SDK's own aggregation on the same values.

Two ways out, chosen once per MeterProvider by the set-up:

- **owned**: the provider's only reader exports through our metric exporter
  (:class:`otel_migration._export.pipeline.MigrationMetricExporter`, which every pipeline
  ``configure()`` builds uses, and which an application can wrap its own exporter in); that
  exporter adds :meth:`HistogramSet.metrics` to each export. No SDK instrument is created, so
  nothing is exported twice.
- **SDK**: otherwise (an application's provider with other readers) every value goes to an SDK
  histogram from the aggregator thread, one ``record`` each, as before: slower, never wrong, and
  the application's Views apply.

Memory is bounded: at most :data:`MAX_ATTRIBUTE_SETS` attribute sets per histogram (then one
overflow point, as the SDK does), and an exponential histogram holds at most ``max_size`` buckets.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Histogram,
    HistogramDataPoint,
    Metric,
)
from opentelemetry.util.types import AttributeValue

__all__ = ["BatchHistogram", "HistogramSet", "MAX_ATTRIBUTE_SETS"]

#: Attribute sets per histogram before the overflow point (the SDK's default cardinality limit).
MAX_ATTRIBUTE_SETS: Final = 2000
_logger = logging.getLogger(__name__)
_OVERFLOW: Final[dict[str, AttributeValue]] = {"otel.metric.overflow": True}
_OVERFLOW_KEY: Final = frozenset(_OVERFLOW.items())
_Values = npt.NDArray[np.float64]
_AttrKey = frozenset[tuple[str, AttributeValue]]


class _Point:
    """Running count, sum, min, max and bucket counts of one attribute set."""

    __slots__ = ("attributes", "count", "counts", "max", "min", "offset", "scale", "start_ns", "sum", "zero")

    def __init__(self, attributes: dict[str, AttributeValue], scale: int, start_ns: int) -> None:
        self.attributes = attributes
        self.start_ns = start_ns
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.counts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.offset = 0
        self.scale = scale
        self.zero = 0


class BatchHistogram:
    """One histogram instrument: explicit bucket boundaries, or base-2 exponential buckets."""

    def __init__(
        self,
        meter: Meter,
        owned: bool,
        name: str,
        unit: str,
        description: str,
        *,
        boundaries: Sequence[float] | None = None,
        max_scale: int = 20,
        max_size: int = 160,
    ) -> None:
        self.name, self.unit, self.description = name, unit, description
        self._boundaries = np.asarray(boundaries, dtype=np.float64) if boundaries is not None else None
        self._max_scale, self._max_size = max_scale, max_size
        self._lock = threading.Lock()
        self._points: dict[_AttrKey, _Point] = {}
        self._warned = False  # bad values are logged once per histogram
        self._sdk = (
            None
            if owned
            else meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(boundaries) if boundaries is not None else None,
            )
        )

    def record(self, values: Sequence[float] | _Values, attributes: dict[str, str]) -> None:
        """Add ``values`` (non-negative, finite; others are dropped with a warning) under ``attributes``."""
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return
        # Two reductions answer "all finite and non-negative" in the usual case (NaN fails >= 0,
        # an infinity makes the sum infinite); only a batch that fails them is filtered.
        if not (array.min() >= 0 and np.isfinite(array.sum())):
            valid = np.isfinite(array) & (array >= 0)
            if not valid.all():
                if not self._warned:
                    self._warned = True
                    _logger.warning(
                        "otel-migration: %s got negative or non-finite values; they are not recorded",
                        self.name,
                    )
                array = array[valid]
                if array.size == 0:
                    return
        sdk = self._sdk
        if sdk is not None:
            for value in array.tolist():
                sdk.record(value, attributes)
            return
        key: _AttrKey = frozenset(attributes.items())
        with self._lock:
            point = self._points.get(key)
            if point is None:
                chosen: dict[str, AttributeValue] = dict(attributes)
                if len(self._points) >= MAX_ATTRIBUTE_SETS:
                    key, chosen = _OVERFLOW_KEY, dict(_OVERFLOW)
                    point = self._points.get(key)
                if point is None:
                    point = self._points[key] = _Point(chosen, self._max_scale, time.time_ns())
            self._add(point, array)

    def _add(self, point: _Point, values: _Values) -> None:
        point.count += int(values.size)
        point.sum += float(values.sum())
        point.min = min(point.min, float(values.min()))
        point.max = max(point.max, float(values.max()))
        if self._boundaries is not None:
            buckets = np.searchsorted(self._boundaries, values, side="left")
            counts = np.bincount(buckets, minlength=self._boundaries.size + 1)
            if point.counts.size == 0:
                point.counts = counts.astype(np.int64)
            else:
                point.counts += counts
            return
        positive = values[values > 0]
        point.zero += int(values.size - positive.size)
        if positive.size:
            _add_exponential(point, _index(positive, self._max_scale), self._max_scale, self._max_size)

    # -- export -----------------------------------------------------------------------------------
    def metric(self, now_ns: int, delta: bool, since_ns: int) -> Metric | None:
        """This histogram's points (cumulative, or since the last call when ``delta``); None if empty."""
        with self._lock:
            points = list(self._points.values())
            if delta:
                self._points = {}
        if not points:
            return None
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        if self._boundaries is None:
            return Metric(
                self.name,
                self.description,
                self.unit,
                ExponentialHistogram(
                    [_exponential_point(p, now_ns, delta, since_ns) for p in points], temporality
                ),
            )
        bounds = self._boundaries.tolist()
        data = [
            HistogramDataPoint(
                attributes=p.attributes,
                start_time_unix_nano=max(p.start_ns, since_ns) if delta else p.start_ns,
                time_unix_nano=now_ns,
                count=p.count,
                sum=p.sum,
                bucket_counts=p.counts.tolist(),
                explicit_bounds=bounds,
                min=p.min,
                max=p.max,
            )
            for p in points
        ]
        return Metric(self.name, self.description, self.unit, Histogram(data, temporality))

    def reinit_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._points = {}


def _exponential_point(
    point: _Point, now_ns: int, delta: bool, since_ns: int
) -> ExponentialHistogramDataPoint:
    return ExponentialHistogramDataPoint(
        attributes=point.attributes,
        start_time_unix_nano=max(point.start_ns, since_ns) if delta else point.start_ns,
        time_unix_nano=now_ns,
        count=point.count,
        sum=point.sum,
        scale=point.scale,
        zero_count=point.zero,
        positive=Buckets(point.offset, point.counts.tolist()),
        negative=Buckets(0, []),
        flags=0,
        min=point.min,
        max=point.max,
    )


def _index(values: _Values, scale: int) -> npt.NDArray[np.int64]:
    """The SDK's logarithm mapping at ``scale`` > 0: ``floor(log(v) * 2^scale / ln 2)``; 2^k at its top."""
    mantissa, exponent = np.frexp(values)
    index = np.floor(np.log(values) * (math.ldexp(1.0, scale) / math.log(2))).astype(np.int64)
    exact = mantissa == 0.5  # an exact power of two: the upper boundary of the bucket below
    if exact.any():
        index[exact] = ((exponent[exact].astype(np.int64) - 1) << scale) - 1
    return index


def _add_exponential(point: _Point, index: npt.NDArray[np.int64], max_scale: int, max_size: int) -> None:
    """Add indexes computed at ``max_scale``; lower the point's scale until everything fits ``max_size``."""
    shift = max_scale - point.scale
    if shift:
        index = index >> shift
    low, high = int(index.min()), int(index.max())
    if point.counts.size:
        low, high = min(low, point.offset), max(high, point.offset + point.counts.size - 1)
    change = 0
    while (high >> change) - (low >> change) + 1 > max_size:
        change += 1
    if change:
        index = index >> change
        if point.counts.size:
            old = (np.arange(point.counts.size, dtype=np.int64) + point.offset) >> change
            merged = np.zeros(int(old[-1] - old[0]) + 1, dtype=np.int64)
            np.add.at(merged, old - old[0], point.counts)
            point.counts, point.offset = merged, int(old[0])
        point.scale -= change
        low, high = low >> change, high >> change
    if point.counts.size == 0:
        point.offset = low
        point.counts = np.zeros(high - low + 1, dtype=np.int64)
    elif low < point.offset or high >= point.offset + point.counts.size:
        grown = np.zeros(high - low + 1, dtype=np.int64)
        grown[point.offset - low : point.offset - low + point.counts.size] = point.counts
        point.counts, point.offset = grown, low
    point.counts += np.bincount(index - point.offset, minlength=point.counts.size)


class HistogramSet:
    """The batch histograms of one MeterProvider and, when owned, the metrics its exporter adds."""

    def __init__(self, meter: Meter, *, owned: bool) -> None:
        self._meter = meter
        self.owned = owned
        self._histograms: list[BatchHistogram] = []
        self._last_ns = time.time_ns()
        self._lock = threading.Lock()
        weak = weakref.ref(self)

        def reinit_in_child() -> None:
            me = weak()
            if me is not None:
                me._reinit_after_fork()

        os.register_at_fork(after_in_child=reinit_in_child)

    def explicit(self, name: str, unit: str, description: str, boundaries: Sequence[float]) -> BatchHistogram:
        histogram = BatchHistogram(self._meter, self.owned, name, unit, description, boundaries=boundaries)
        self._histograms.append(histogram)
        return histogram

    def exponential(
        self, name: str, unit: str, description: str, *, max_scale: int, max_size: int
    ) -> BatchHistogram:
        histogram = BatchHistogram(
            self._meter, self.owned, name, unit, description, max_scale=max_scale, max_size=max_size
        )
        self._histograms.append(histogram)
        return histogram

    def metrics(self, delta: bool = False) -> list[Metric]:
        """Every non-empty histogram's points now (owned only; an SDK-backed set exports through the SDK)."""
        if not self.owned:
            return []
        with self._lock:
            now = time.time_ns()
            since, self._last_ns = self._last_ns, now
            found = [h.metric(now, delta, since) for h in list(self._histograms)]
        return [metric for metric in found if metric is not None]

    def _reinit_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._last_ns = time.time_ns()
        for histogram in self._histograms:
            histogram.reinit_after_fork()
