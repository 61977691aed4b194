"""The log pipeline: where OTel log records (fleet sketches, events) go, alongside traces and metrics.

Built only when we build the other providers, with the same destination: OTLP (gRPC or HTTP, as
``OTEL_EXPORTER_OTLP_*`` says), the same OTLP JSON lines file, the console, or nowhere. A
``BatchLogRecordProcessor`` does the I/O on its own thread, so emitting never blocks a caller;
its ending is the set-up's bounded one, never the SDK's unbounded ``atexit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource

from .file import _LineWriter

__all__ = ["JsonLinesLogExporter", "build_logger_provider"]


class JsonLinesLogExporter(LogRecordExporter):
    """Log records as OTLP/JSON lines, in the same file as the spans and metrics."""

    def __init__(self, path: str) -> None:
        self._writer = _LineWriter(path)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            self._writer.write(encode_logs(batch))
        except Exception:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._writer.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _otlp_log_exporter(protocol: str) -> LogRecordExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        return GrpcLogExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter()


def build_logger_provider(
    choice: str, env: Mapping[str, str], resource: Resource, file_path: str
) -> SdkLoggerProvider:
    """A LoggerProvider exporting like the traces do (``choice``: otlp, file, console, none).

    Like the tracer and meter providers we build, it registers no ``atexit`` shutdown of its own:
    the SDK's waits for the batch worker (up to 30 s) and the exporter (its timeout, 10 s by
    default, on a collector that never answers) with no deadline. The set-up's bounded exit
    shutdown ends it with the others (``otel_migration._setup``).
    """
    provider = SdkLoggerProvider(resource=resource, shutdown_on_exit=False)
    exporter: LogRecordExporter | None = None
    if choice == "otlp":
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        ).strip()
        exporter = _otlp_log_exporter(protocol)
    elif choice == "file":
        exporter = JsonLinesLogExporter(file_path)
    elif choice == "console":
        exporter = ConsoleLogRecordExporter()
    if exporter is not None:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider
