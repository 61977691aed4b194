"""Batch histograms equal the SDK's own aggregation of the same values, point for point."""

from __future__ import annotations

import math

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_migration._core.histograms import MAX_ATTRIBUTE_SETS, HistogramSet

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
ATTRS = {"migration.name": "m", "migration.version": "2.0"}


def _values(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=-4, sigma=2.5, size=n)  # 10 µs .. minutes: forces downscaling
    values[: n // 50] = 0.0  # exact zeros
    values[n // 50 : n // 25] = np.ldexp(1.0, rng.integers(-20, 8, size=n // 25 - n // 50))  # powers of two
    values[n // 25 : n // 20] = rng.choice(BOUNDS, size=n // 20 - n // 25)  # exactly on a boundary
    rng.shuffle(values)
    return values


def _sdk_points(
    values: np.ndarray, max_size: int
) -> tuple[HistogramDataPoint, ExponentialHistogramDataPoint]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[
            View(
                instrument_name="expo",
                aggregation=ExponentialBucketHistogramAggregation(max_size=max_size, max_scale=6),
            ),
            View(instrument_name="explicit"),
        ],
    )
    meter = provider.get_meter("sdk")
    explicit = meter.create_histogram("explicit", explicit_bucket_boundaries_advisory=BOUNDS)
    expo = meter.create_histogram("expo")
    for value in values.tolist():
        explicit.record(value, ATTRS)
        expo.record(value, ATTRS)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    point_e = metrics["explicit"].data.data_points[0]
    point_x = metrics["expo"].data.data_points[0]
    assert isinstance(point_e, HistogramDataPoint) and isinstance(point_x, ExponentialHistogramDataPoint)
    provider.shutdown()
    return point_e, point_x


@pytest.mark.parametrize(("seed", "max_size"), [(1, 2048), (2, 160), (3, 40)])
def test_owned_points_equal_the_sdks(seed: int, max_size: int) -> None:
    values = _values(seed, 20_000)
    sdk_explicit, sdk_expo = _sdk_points(values, max_size)
    histograms = HistogramSet(MeterProvider().get_meter("ours"), owned=True)
    explicit = histograms.explicit("explicit", "s", "", BOUNDS)
    expo = histograms.exponential("expo", "s", "", max_scale=6, max_size=max_size)
    rng = np.random.default_rng(seed)
    start = 0
    while start < values.size:  # batches of uneven sizes, as drained chunks are
        size = int(rng.integers(1, 700))
        explicit.record(values[start : start + size], ATTRS)
        expo.record(values[start : start + size], ATTRS)
        start += size
    metrics = {m.name: m for m in histograms.metrics()}
    ours_e = metrics["explicit"].data.data_points[0]
    ours_x = metrics["expo"].data.data_points[0]
    assert isinstance(ours_e, HistogramDataPoint) and isinstance(ours_x, ExponentialHistogramDataPoint)
    assert metrics["explicit"].data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert list(ours_e.bucket_counts) == list(sdk_explicit.bucket_counts)
    assert list(ours_e.explicit_bounds) == list(sdk_explicit.explicit_bounds)
    for ours, sdk in ((ours_e, sdk_explicit), (ours_x, sdk_expo)):
        assert ours.count == sdk.count == values.size
        assert math.isclose(ours.sum, sdk.sum, rel_tol=1e-9)
        assert (ours.min, ours.max) == (sdk.min, sdk.max)
        assert ours.attributes == ATTRS
    assert ours_x.scale == sdk_expo.scale
    assert ours_x.zero_count == sdk_expo.zero_count
    assert ours_x.positive.offset == sdk_expo.positive.offset
    sdk_counts = list(sdk_expo.positive.bucket_counts)
    while sdk_counts and sdk_counts[-1] == 0:  # the SDK exports its backing array's spare tail
        sdk_counts.pop()
    assert list(ours_x.positive.bucket_counts) == sdk_counts


def test_delta_points_restart_after_each_export() -> None:
    histograms = HistogramSet(MeterProvider().get_meter("ours"), owned=True)
    explicit = histograms.explicit("explicit", "s", "", BOUNDS)
    explicit.record([0.001, 0.2], ATTRS)
    first = histograms.metrics(delta=True)[0].data
    explicit.record([0.3], ATTRS)
    second = histograms.metrics(delta=True)[0].data
    assert first.aggregation_temporality is AggregationTemporality.DELTA
    assert [p.count for p in first.data_points] == [2]
    assert [p.count for p in second.data_points] == [1]
    assert second.data_points[0].start_time_unix_nano >= first.data_points[0].time_unix_nano
    assert histograms.metrics(delta=True) == []


def test_bad_values_are_dropped_and_attribute_sets_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    histograms = HistogramSet(MeterProvider().get_meter("ours"), owned=True)
    explicit = histograms.explicit("capped", "s", "", BOUNDS)
    explicit.record([-1.0, math.nan, math.inf, 0.5], ATTRS)
    for i in range(MAX_ATTRIBUTE_SETS + 10):
        explicit.record([0.01], {"k": str(i)})
    points = histograms.metrics()[0].data.data_points
    assert len(points) == MAX_ATTRIBUTE_SETS + 1
    overflow = [p for p in points if p.attributes == {"otel.metric.overflow": True}]
    assert [p.count for p in overflow] == [11]  # ATTRS took one of the sets
    assert sum(p.count for p in points) == MAX_ATTRIBUTE_SETS + 10 + 1
    assert "capped got negative or non-finite values; they are not recorded" in caplog.text


def test_an_sdk_backed_set_records_through_the_sdk() -> None:
    reader = InMemoryMetricReader()
    histograms = HistogramSet(MeterProvider(metric_readers=[reader]).get_meter("ours"), owned=False)
    histograms.explicit("explicit", "s", "", BOUNDS).record([0.01, 0.02, 0.3], ATTRS)
    assert histograms.metrics() == []
    data = reader.get_metrics_data()
    assert data is not None
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert point.count == 3 and list(point.explicit_bounds) == BOUNDS
