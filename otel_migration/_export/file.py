"""OTLP JSON lines in a local file: the default destination when no collector is configured.

One line per export request, in the OTLP/JSON encoding (hex trace and span ids, lowerCamelCase
field names), which is what the collector's ``file`` exporter writes and its ``otlpjsonfile``
receiver reads: a file written here can be replayed into any backend later. Writes go through
``os.write`` on an ``O_APPEND`` descriptor, one call per line, so processes forked from one parent
(pre-fork servers) append whole lines to the same file.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonLinesMetricExporter", "JsonLinesSpanExporter", "to_otlp_json"]

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids(node: Any) -> Any:
    """protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants trace and span ids in hex."""
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_FIELDS and isinstance(value, str)
            else _hex_ids(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def to_otlp_json(message: Message) -> dict[str, Any]:
    """An OTLP export request as an OTLP/JSON document."""
    document = MessageToDict(message, preserving_proto_field_name=False, use_integers_for_enums=True)
    return _hex_ids(document)  # type: ignore[no-any-return]


class _LineWriter:
    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def write(self, message: Message) -> None:
        line = (json.dumps(to_otlp_json(message), separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class JsonLinesSpanExporter(SpanExporter):
    """Spans as OTLP/JSON lines appended to ``path``."""

    def __init__(self, path: str) -> None:
        self._writer = _LineWriter(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._writer.write(encode_spans(spans))
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._writer.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class JsonLinesMetricExporter(MetricExporter):
    """Metrics as OTLP/JSON lines appended to ``path``; cumulative, like the OTLP exporters' default."""

    def __init__(self, path: str) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self._writer = _LineWriter(path)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            self._writer.write(encode_metrics(metrics_data))
        except OSError:
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._writer.close()
