"""The OpenTelemetry SDK pipeline: attach to the application's providers, or build ours.

Replacing an application's global TracerProvider or MeterProvider is the complaint users have most
about LLM SDKs, so we never do it: when a real provider is installed globally we use it as it is.
Only when the globals are still the API's proxies do we build SDK providers, exporting where the
standard ``OTEL_*`` variables say (the exporters read endpoint, headers, timeout, compression and
certificates themselves), with the BatchSpanProcessor and the PeriodicExportingMetricReader doing
all network I/O on their own threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import TracerProvider

from ._config import Settings
from ._file_export import JsonLinesMetricExporter, JsonLinesSpanExporter

__all__ = [
    "Providers",
    "build_providers",
    "exporter_choice",
    "global_meter_provider",
    "global_tracer_provider",
]

_ENDPOINT_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


@dataclass(frozen=True, slots=True)
class Providers:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    #: The providers we built (and so must shut down), as opposed to ones we attached to.
    owned_tracer_provider: SdkTracerProvider | None = None
    owned_meter_provider: SdkMeterProvider | None = None
    destination: str = "attached"


def global_tracer_provider() -> TracerProvider | None:
    """The application's global TracerProvider, or None while it is still the API's proxy."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def global_meter_provider() -> MeterProvider | None:
    """The application's global MeterProvider, or None while it is still the API's proxy."""
    provider = metrics.get_meter_provider()
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


def exporter_choice(settings: Settings, env: Mapping[str, str]) -> str:
    """``otlp``, ``file``, ``console`` or ``none``: what ``exporter = "auto"`` resolves to."""
    if settings.exporter != "auto":
        return settings.exporter
    if any(env.get(name) for name in _ENDPOINT_VARS):
        return "otlp"
    return "file"


def _protocol(env: Mapping[str, str], signal: str) -> str:
    # Python's own auto-configuration (opentelemetry-instrument) defaults to gRPC; so do we.
    return (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()


def _otlp_span_exporter(env: Mapping[str, str]) -> SpanExporter:
    if _protocol(env, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter()


def _otlp_metric_exporter(env: Mapping[str, str]) -> MetricExporter:
    if _protocol(env, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def _exporters(
    choice: str, settings: Settings, env: Mapping[str, str]
) -> tuple[SpanExporter | None, MetricExporter | None, str]:
    if choice == "otlp":
        destination = f"OTLP {_protocol(env, 'TRACES')} to " + next(
            (env[name] for name in _ENDPOINT_VARS if env.get(name)), "the default endpoint"
        )
        return _otlp_span_exporter(env), _otlp_metric_exporter(env), destination
    if choice == "file":
        path = os.path.abspath(settings.file_path)
        return JsonLinesSpanExporter(path), JsonLinesMetricExporter(path), f"OTLP JSON lines in {path}"
    if choice == "console":
        return ConsoleSpanExporter(), ConsoleMetricExporter(), "console"
    return None, None, "nowhere (exporter = none)"


def build_providers(
    settings: Settings,
    env: Mapping[str, str],
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Providers:
    """Providers given explicitly win, then the global ones, then new SDK providers built here."""
    tracer_provider = tracer_provider or global_tracer_provider()
    meter_provider = meter_provider or global_meter_provider()
    if tracer_provider is not None and meter_provider is not None:
        return Providers(tracer_provider, meter_provider)

    span_exporter, metric_exporter, destination = _exporters(exporter_choice(settings, env), settings, env)
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, merged by the SDK
    owned_tp = owned_mp = None
    if tracer_provider is None:
        owned_tp = SdkTracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
        if span_exporter is not None:
            owned_tp.add_span_processor(BatchSpanProcessor(span_exporter))
        tracer_provider = owned_tp
    if meter_provider is None:
        readers = [PeriodicExportingMetricReader(metric_exporter)] if metric_exporter is not None else []
        owned_mp = SdkMeterProvider(resource=resource, metric_readers=readers)
        meter_provider = owned_mp
    return Providers(tracer_provider, meter_provider, owned_tp, owned_mp, destination)
