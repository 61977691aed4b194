"""The OTLP JSON lines source: what the default file exporter (or the collector's ``file`` exporter) wrote.

Read line by line, keeping only the latest point of each series, so memory follows the number of
series, not the size of the file. A cumulative counter or histogram is one series per process
(resource and start time): its latest point is the process's total, and the processes add up. A
delta series (from another exporter's settings) is summed over its points instead. A gauge is a
process's latest evaluation; a process that stopped writing five minutes before the file's last
point (an earlier run appending to the same file) no longer counts, as Prometheus forgets a series
after five minutes. Lines that are not metrics (spans) or not JSON (a line cut by a crash) are
skipped and counted.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from .._core import semconv as sc
from ._model import Histogram, Measurements
from ._series import Series, to_measurements

__all__ = ["from_otlp_file"]

_DELTA: Final = 1
_MAX_HISTORY: Final = 50_000  # adoption points kept per file (the most recent ones)
_STALE_NS: Final = 300 * 10**9  # Prometheus's lookback: a gauge older than this is gone

Attrs = tuple[tuple[str, str], ...]


def _value(value: Mapping[str, Any]) -> str:
    """An OTLP AnyValue as text (migration attributes are strings; others are shown as written)."""
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return str(value[key])
    return json.dumps(value, sort_keys=True)


def _attrs(items: list[Mapping[str, Any]] | None) -> Attrs:
    return tuple(sorted((item["key"], _value(item.get("value", {}))) for item in items or ()))


def _number(point: Mapping[str, Any]) -> float:
    return float(point.get("asDouble", point.get("asInt", 0)))


def _histogram(point: Mapping[str, Any]) -> Histogram:
    bounds = (*(float(b) for b in point.get("explicitBounds", ())), math.inf)
    counts = tuple(int(c) for c in point.get("bucketCounts", ()))
    if len(counts) != len(bounds):  # no buckets recorded: everything in +Inf
        counts = (*(0,) * (len(bounds) - 1), int(point.get("count", 0)))
    return Histogram(bounds, counts, float(point.get("sum", 0.0)))


def _metrics(line: Mapping[str, Any]) -> Iterator[tuple[Attrs, Mapping[str, Any]]]:
    for resource_metrics in line.get("resourceMetrics", ()):
        resource = _attrs(resource_metrics.get("resource", {}).get("attributes"))
        for scope_metrics in resource_metrics.get("scopeMetrics", ()):
            for metric in scope_metrics.get("metrics", ()):
                yield resource, metric


class _Reader:
    def __init__(self) -> None:
        # (metric, resource, attributes, start) -> (time, value)
        self.counters: dict[tuple[str, Attrs, Attrs, str], tuple[int, float]] = {}
        self.histograms: dict[tuple[str, Attrs, Attrs, str], tuple[int, Histogram]] = {}
        # (metric, resource, attributes) -> (time, value)
        self.gauges: dict[tuple[str, Attrs, Attrs], tuple[int, float]] = {}
        self.history: deque[tuple[Attrs, float, float]] = deque(maxlen=_MAX_HISTORY)
        self.latest_ns = 0
        self.skipped = 0

    def line(self, text: str) -> None:
        try:
            document = json.loads(text)
        except ValueError:
            self.skipped += 1
            return
        if not isinstance(document, dict):
            self.skipped += 1
            return
        for resource, metric in _metrics(document):
            name = metric.get("name", "")
            if "sum" in metric:
                self._cumulative(self.counters, name, resource, metric["sum"], _number)
            elif "histogram" in metric:
                self._cumulative(self.histograms, name, resource, metric["histogram"], _histogram)
            elif "gauge" in metric:
                for point in metric["gauge"].get("dataPoints", ()):
                    t, attrs, value = (
                        int(point.get("timeUnixNano", 0)),
                        _attrs(point.get("attributes")),
                        _number(point),
                    )
                    self.latest_ns = max(self.latest_ns, t)
                    key = (name, resource, attrs)
                    if key not in self.gauges or self.gauges[key][0] <= t:
                        self.gauges[key] = (t, value)
                    if name == sc.METRIC_ADOPTION_RATIO:
                        self.history.append((attrs, t / 1e9, value))

    def _cumulative(self, store: dict[Any, Any], name: str, resource: Attrs, data: Any, read: Any) -> None:
        delta = data.get("aggregationTemporality") == _DELTA
        for point in data.get("dataPoints", ()):
            t, attrs = int(point.get("timeUnixNano", 0)), _attrs(point.get("attributes"))
            self.latest_ns = max(self.latest_ns, t)
            value = read(point)
            key = (name, resource, attrs, "delta" if delta else str(point.get("startTimeUnixNano", "")))
            seen = store.get(key)
            if delta and seen is not None:
                store[key] = (
                    max(t, seen[0]),
                    seen[1] + value if isinstance(value, float) else seen[1].merged(value),
                )
            elif seen is None or seen[0] <= t:
                store[key] = (t, value)


def from_otlp_file(path: str | os.PathLike[str]) -> Measurements:
    """Measurements from an OTLP JSON lines file; raises ``FileNotFoundError`` naming the path."""
    reader = _Reader()
    with Path(path).open(encoding="utf-8", errors="replace") as lines:
        for text in lines:
            if text.strip():
                reader.line(text)
    series = Series(source=f"OTLP JSON lines file {os.fspath(path)}", taken_at=reader.latest_ns / 1e9)
    for (name, _, attrs, _), (_, value) in reader.counters.items():
        series.counters[name].append((dict(attrs), value))
    for (name, _, attrs, _), (_, hist) in reader.histograms.items():
        series.histograms[name].append((dict(attrs), hist))
    last_seen: dict[Attrs, int] = {}  # resource -> its latest gauge point
    for (_, resource, _), (t, _) in reader.gauges.items():
        last_seen[resource] = max(t, last_seen.get(resource, 0))
    for (name, resource, attrs), (_, value) in reader.gauges.items():
        if last_seen[resource] >= reader.latest_ns - _STALE_NS:
            series.gauges[name].append((dict(attrs), value))
    series.ratio_history = [(dict(attrs), at, ratio) for attrs, at, ratio in reader.history]
    measurements = to_measurements(series, lambda attribute: attribute)
    if reader.skipped:
        measurements.notes.append(f"{reader.skipped} lines of the file were not JSON and were skipped.")
    return measurements
