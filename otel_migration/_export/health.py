"""Spans a dead or refusing collector never took, counted for every protocol.

The SDK's own ``otel.sdk.exporter.span.exported`` metric carries an ``error.type`` for a failed
gRPC export, but (opentelemetry-exporter-otlp-proto-http 1.45) not for an HTTP export that failed
on a status code such as 503, whose failure has no exception attached: lost spans then look
exported. Counting export *results* at the exporter boundary is protocol-neutral, so we wrap the
span exporter of the pipeline we build and report ``migration.telemetry.spans.failed``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._core import semconv as sc
from .._core.instruments import Measured, observer
from ..version import __version__

__all__ = ["CountingSpanExporter"]


class CountingSpanExporter(SpanExporter):
    """Delegates every call; counts the spans of each delivered and each failed (or raising) export."""

    def __init__(self, delegate: SpanExporter, meter_provider: MeterProvider) -> None:
        self._delegate = delegate
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
        meter.create_observable_counter(
            sc.METRIC_TELEMETRY_SPANS_FAILED,
            callbacks=[observer(self._read)],
            unit="{span}",
            description="Spans the exporter could not deliver (collector down, refusing, or timing out).",
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._delegate.export(spans)
        except Exception:
            self._count(len(spans), delivered=False)
            raise
        self._count(len(spans), delivered=result is SpanExportResult.SUCCESS)
        return result

    def _count(self, spans: int, *, delivered: bool) -> None:
        with self._lock:
            if delivered:
                self.delivered += spans
            else:
                self.failed += spans

    def _read(self) -> Measured:
        return [(self.failed, {"exporter": type(self._delegate).__qualname__})]

    def shutdown(self) -> None:
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._delegate.force_flush(timeout_millis)
