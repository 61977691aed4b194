"""OTLP JSON lines in a local file: the default destination when no collector is configured.

One line per export request, in the OTLP/JSON encoding (hex trace and span ids, lowerCamelCase
field names), which is what the collector's ``file`` exporter writes and its ``otlpjsonfile``
receiver reads: a file written here can be replayed into any backend later. Writes go through
``os.write`` on an ``O_APPEND`` descriptor, one line at a time, so processes forked from one parent
(pre-fork servers) append whole lines to the same file.

Being the default destination, it must not fail silently. The destination is checked when an
exporter is built (at ``configure()``): a missing folder, a directory, a folder or file system
that cannot be written, a full device (``/dev/full``, a disk with no space left) or a pipe nobody
reads is a :class:`ConfigError` naming the path and the reason. Later failures (a disk that fills
up) fail the export, so the spans are counted as failed, and are logged rate-limited. A short
write (the kernel took part of a line) never counts as delivered: the rest is retried, and if the
line cannot be completed the part written is cut off again (or, when another process appended
meanwhile, ended with a newline before the next line), so the file holds only whole lines.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import stat
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

from .._core.errors import ConfigError
from .._core.lifecycle import RateLimitedLog

__all__ = ["JsonLinesMetricExporter", "JsonLinesSpanExporter", "open_destination", "to_otlp_json"]

_log = RateLimitedLog(logging.getLogger("otel_migration"))
_FIELD = "file_path"

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


def _refuse(path: str, reason: str) -> ConfigError:
    return ConfigError(_FIELD, path, reason)


def open_destination(path: str) -> int:
    """An ``O_APPEND`` descriptor on ``path``, checked writable; ConfigError naming the path otherwise."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise _refuse(path, "is a directory; give a file name")
    if not os.path.isdir(folder):
        reason = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise _refuse(path, f"the folder {folder} {reason}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode):
            flags |= os.O_NONBLOCK  # opening a pipe for writing would block until a reader comes
    except OSError:
        pass
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise _refuse(path, "is a pipe nobody reads") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _refuse(path, f"not writable: {exc.strerror}") from None
        raise _refuse(path, f"cannot be opened for writing: {exc.strerror}") from None
    try:
        if flags & os.O_NONBLOCK:
            os.set_blocking(fd, True)
        # A zero-length write writes nothing, yet a device that refuses every write (/dev/full) says so.
        os.write(fd, b"")
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and os.fstatvfs(fd).f_bavail == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.ENOSPC:
            raise _refuse(path, "no space left on the device") from None
        raise _refuse(path, f"not writable: {exc.strerror}") from None
    return fd


class _LineWriter:
    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = open_destination(path)
        self._lock = threading.Lock()
        self._broken_line = False  # a part line we could neither complete nor cut off is in the file

    def write(self, message: Message) -> None:
        """Append one whole line, or raise OSError (logged, rate-limited) with no part of it left behind."""
        line = (json.dumps(to_otlp_json(message), separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                if self._broken_line:
                    line = b"\n" + line
                self._append(self._fd, line)
                self._broken_line = False
            except OSError as exc:
                _log.warning(
                    "file-export", "otel-migration: could not write telemetry to %s: %s", self._path, exc
                )
                raise

    def _append(self, fd: int, line: bytes) -> None:
        """Write all of ``line``; on failure after a part of it, take that part back out of the file."""
        start = os.fstat(fd).st_size
        written = 0
        try:
            while written < len(line):
                count = os.write(fd, line[written:])
                if count <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
        except OSError:
            if written:
                self._undo(fd, start, written)
            raise

    def _undo(self, fd: int, start: int, written: int) -> None:
        try:
            if os.fstat(fd).st_size == start + written:  # nobody else appended since: cut it off
                os.ftruncate(fd, start)
                return
        except OSError:
            pass
        self._broken_line = True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class JsonLinesSpanExporter(SpanExporter):
    """Spans as OTLP/JSON lines appended to ``path``; ConfigError at once if it cannot be written."""

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
