"""Telemetry a dead or refusing backend never took, counted for every protocol and both signals.

The SDK's own ``otel.sdk.exporter.span.exported`` metric carries an ``error.type`` for a failed
gRPC export, but (opentelemetry-exporter-otlp-proto-http 1.45) not for an HTTP export that failed
on a status code such as 503, whose failure has no exception attached: lost spans then look
exported. Counting export *results* at the exporter boundary is protocol-neutral, so we wrap the
span exporter of the pipeline we build and report ``migration.telemetry.spans.failed``, and the
metric exporter likewise (``migration.telemetry.metrics.failed``: nothing else counts those).

A failed result does not always mean the data is lost. When an OTLP export runs out of its whole
timeout with a request outstanding (a collector that hangs, or is paused, then resumes), the
collector may well have read the request and processes it later: the HTTP exporter gives its first
attempt the entire timeout, so a hung collector leaves no time for a retry and the export fails
while its spans arrive afterwards. Counting those as failed over-reports the loss, so a failure
that took the exporter's whole timeout is counted apart, as *unconfirmed*
(``migration.telemetry.spans.unconfirmed``): delivered or not, nobody can tell. A refusal, an error
status or a connection that never opened comes back before the deadline (the exporters give up
when the next back-off would pass it) and stays a failure. Limit: an attempt that never connected
but took until the deadline (a black-holed address) is counted as unconfirmed too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._core import semconv as sc
from .._core.instruments import Measured, observer
from ..version import __version__

__all__ = ["CountingMetricExporter", "CountingSpanExporter", "otlp_timeout_s"]

_DEFAULT_OTLP_TIMEOUT_S: Final = 10.0


def otlp_timeout_s(signal: str, env: Mapping[str, str] | None = None) -> float:
    """The OTLP exporters' timeout in seconds for ``signal`` (TRACES, METRICS), as they read it."""
    env = os.environ if env is None else env
    raw = env.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        return float(raw) if raw else _DEFAULT_OTLP_TIMEOUT_S
    except ValueError:
        return _DEFAULT_OTLP_TIMEOUT_S


def _is_otlp(exporter: object) -> bool:
    return type(exporter).__module__.startswith("opentelemetry.exporter.otlp")


class CountingSpanExporter(SpanExporter):
    """Delegates every call; counts the spans of each delivered, failed and unconfirmed export.

    ``timeout_s`` is the delegate's export timeout (by default what the OTLP exporters read from
    ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``/``OTEL_EXPORTER_OTLP_TIMEOUT``); a failure of an OTLP
    exporter that took at least that long is unconfirmed rather than failed (see the module doc).
    """

    def __init__(
        self, delegate: SpanExporter, meter_provider: MeterProvider, *, timeout_s: float | None = None
    ) -> None:
        self._delegate = delegate
        self._lock = threading.Lock()
        self._timeout_s = otlp_timeout_s("TRACES") if timeout_s is None else timeout_s
        self._may_time_out = _is_otlp(delegate)
        self.delivered = 0
        self.failed = 0
        self.unconfirmed = 0
        meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
        meter.create_observable_counter(
            sc.METRIC_TELEMETRY_SPANS_FAILED,
            callbacks=[observer(self._read_failed)],
            unit="{span}",
            description="Spans the exporter could not deliver (collector down, refusing, or timing out).",
        )
        meter.create_observable_counter(
            sc.METRIC_TELEMETRY_SPANS_UNCONFIRMED,
            callbacks=[observer(self._read_unconfirmed)],
            unit="{span}",
            description="Spans of exports that ran out of time awaiting the collector's answer: "
            "delivered or not, unknown.",
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        started = time.monotonic()
        try:
            result = self._delegate.export(spans)
        except Exception:
            self._count(len(spans), "failed")
            raise
        if result is SpanExportResult.SUCCESS:
            self._count(len(spans), "delivered")
        elif self._may_time_out and time.monotonic() - started >= self._timeout_s:
            self._count(len(spans), "unconfirmed")
        else:
            self._count(len(spans), "failed")
        return result

    def _count(self, spans: int, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + spans)

    def _attributes(self) -> dict[str, str]:
        return {"exporter": type(self._delegate).__qualname__}

    def _read_failed(self) -> Measured:
        return [(self.failed, self._attributes())]

    def _read_unconfirmed(self) -> Measured:
        return [(self.unconfirmed, self._attributes())]

    def shutdown(self) -> None:
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._delegate.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    """Delegates every call; counts the metric exports that failed (or raised).

    Built before the MeterProvider it serves (the reader needs the exporter first), so its counter
    is registered afterwards with :meth:`register`. The count travels with the next export that
    gets through, as a cumulative counter does.
    """

    def __init__(self, delegate: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=delegate._preferred_temporality,
            preferred_aggregation=delegate._preferred_aggregation,
        )
        self._delegate = delegate
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def register(self, meter_provider: MeterProvider) -> None:
        """Report ``migration.telemetry.metrics.failed`` through ``meter_provider``."""
        meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
        meter.create_observable_counter(
            sc.METRIC_TELEMETRY_METRICS_FAILED,
            callbacks=[observer(self._read)],
            unit="{export}",
            description="Metric exports the exporter could not deliver (collector down, refusing, "
            "timing out, or a destination that cannot be written).",
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._delegate.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            self._count(delivered=False)
            raise
        self._count(delivered=result is MetricExportResult.SUCCESS)
        return result

    def _count(self, *, delivered: bool) -> None:
        with self._lock:
            if delivered:
                self.delivered += 1
            else:
                self.failed += 1

    def _read(self) -> Measured:
        return [(self.failed, {"exporter": type(self._delegate).__qualname__})]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._delegate.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._delegate.shutdown(timeout_millis=timeout_millis, **kwargs)
