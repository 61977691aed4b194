"""The SDK providers a configuration uses, and how to tell whether the application installed its own.

Only the types live here (the core needs them); :mod:`otel_migration._export.pipeline` builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import LoggerProvider
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import TracerProvider

__all__ = [
    "ExportCounts",
    "Providers",
    "global_logger_provider",
    "global_meter_provider",
    "global_tracer_provider",
]


class ExportCounts(Protocol):
    """Spans the exporter of a pipeline we built delivered and failed to deliver."""

    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class Providers:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    #: The providers we built (and so must shut down), as opposed to ones we attached to.
    owned_tracer_provider: SdkTracerProvider | None = None
    owned_meter_provider: SdkMeterProvider | None = None
    destination: str = "attached"
    #: The exporter of the pipeline we built, counting delivered and failed spans.
    span_exporter: ExportCounts | None = None
    #: Where log records (fleet sketches, events) go; None when there is nowhere to send them.
    logger_provider: LoggerProvider | None = None
    owned_logger_provider: SdkLoggerProvider | None = None


def global_tracer_provider() -> TracerProvider | None:
    """The application's global TracerProvider, or None while it is still the API's proxy."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def global_meter_provider() -> MeterProvider | None:
    """The application's global MeterProvider, or None while it is still the API's proxy."""
    provider = metrics.get_meter_provider()
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


def global_logger_provider() -> LoggerProvider | None:
    """The application's global LoggerProvider, or None while it is still the API's proxy or a no-op."""
    provider = _logs.get_logger_provider()
    return None if type(provider).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider") else provider
