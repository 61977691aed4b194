"""The OpenTelemetry SDK pipeline: attach to the application's providers, or build ours.

Replacing an application's global TracerProvider or MeterProvider is the complaint users have most
about LLM SDKs, so we never do it: when a real provider is installed globally we use it as it is.
Only when the globals are still the API's proxies do we build SDK providers, exporting where the
standard ``OTEL_*`` variables say (the exporters read endpoint, headers, timeout, compression and
certificates themselves), with the BatchSpanProcessor and the PeriodicExportingMetricReader doing
all network I/O on their own threads.

Lost telemetry must be counted, not silent: for the pipeline we build we switch on the SDK's own
health metrics (``otel.sdk.processor.span.processed`` with ``error.type=queue_full`` for spans the
batch queue dropped, ``otel.sdk.exporter.span.exported`` with an ``error.type`` for spans a dead
collector never took), unless ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` says otherwise, and
report them through the same MeterProvider. Because the HTTP exporter does not mark a failed
export in those, the span exporter is also wrapped in a protocol-neutral counter of its own.

Process lifecycle: the providers we build do not register the SDK's own ``atexit`` shutdown (it
waits up to 30 s per provider on a dead collector); the set-up registers one bounded shutdown
instead. After ``os.fork`` a child's cumulative metrics must start from zero (it is a new
instance; the parent exports its own), which the SDK does not do: :func:`reset_metric_state`
clears its storage. A pre-fork master that forked workers and served no call itself is not an
instance: our metric exporter skips its exports (:class:`MigrationMetricExporter`), which also adds
the histograms we aggregate in batches.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry._logs import LoggerProvider
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TracerProvider

from .._core import process
from .._core.config import Settings
from .._core.lifecycle import log_once
from .._core.providers import Providers, global_logger_provider, global_meter_provider, global_tracer_provider
from .._core.resource import resource_attributes
from .._core.semconv import SERVICE_INSTANCE_ID
from .file import JsonLinesMetricExporter, JsonLinesSpanExporter
from .health import CountingMetricExporter, CountingSpanExporter
from .logs import build_logger_provider

__all__ = [
    "MigrationMetricExporter",
    "build_providers",
    "exporter_choice",
    "exporting_through_us",
    "provider_resource",
    "reset_metric_state",
]

_logger = logging.getLogger(__name__)

_SDK_HEALTH_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_ENDPOINT_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


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


#: The gRPC exporters of the pipelines we built: a forked child gets new channels for them.
_grpc_exporters: weakref.WeakSet[Any] = weakref.WeakSet()
_E = TypeVar("_E")


def _renewed_after_fork(exporter: _E) -> _E:
    _grpc_exporters.add(exporter)
    return exporter


def _renew_grpc_channels() -> None:
    """In a forked child: a fresh channel for each gRPC exporter we built.

    A gRPC channel is not fork-safe: when a parent thread was exporting at the fork, the child
    inherits the channel's locks held and its first export waits for them forever (the soak
    lost a whole child's metrics this way). The exporter's own reconnection method builds a new one.
    """
    for exporter in list(_grpc_exporters):
        try:
            exporter._initialize_channel_and_stub()
        except Exception:
            _logger.warning("otel-migration: could not renew a gRPC channel after fork", exc_info=True)


os.register_at_fork(after_in_child=_renew_grpc_channels)


def _otlp_span_exporter(env: Mapping[str, str], meter_provider: MeterProvider) -> SpanExporter:
    if _protocol(env, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return _renewed_after_fork(GrpcSpanExporter(meter_provider=meter_provider))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(meter_provider=meter_provider)


def _otlp_metric_exporter(env: Mapping[str, str]) -> MetricExporter:
    if _protocol(env, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return _renewed_after_fork(GrpcMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def _span_exporter(
    choice: str, settings: Settings, env: Mapping[str, str], meter_provider: MeterProvider
) -> SpanExporter | None:
    if choice == "otlp":
        return _otlp_span_exporter(env, meter_provider)
    if choice == "file":
        return JsonLinesSpanExporter(os.path.abspath(settings.file_path))
    if choice == "console":
        return ConsoleSpanExporter()
    return None


def _metric_exporter(choice: str, settings: Settings, env: Mapping[str, str]) -> MetricExporter | None:
    if choice == "otlp":
        return _otlp_metric_exporter(env)
    if choice == "file":
        return JsonLinesMetricExporter(os.path.abspath(settings.file_path))
    if choice == "console":
        return ConsoleMetricExporter()
    return None


def _destination(choice: str, settings: Settings, env: Mapping[str, str]) -> str:
    if choice == "otlp":
        endpoint = next((env[name] for name in _ENDPOINT_VARS if env.get(name)), "the default endpoint")
        return f"OTLP {_protocol(env, 'TRACES')} to {endpoint}"
    if choice == "file":
        return f"OTLP JSON lines in {os.path.abspath(settings.file_path)}"
    if choice == "console":
        return "console"
    return "nowhere (exporter = none)"


class MigrationMetricExporter(MetricExporter):
    """The metric exporter of every pipeline we build; an application may wrap its own in it too.

    Two jobs on the way to the wrapped exporter:

    - **Only instances export.** A gunicorn master that imported the application (``--preload``)
      and forked its workers would otherwise report itself every interval as one more instance of
      the service, with zeroed or stale series. Once it serves a call itself it exports again
      (cumulative: nothing is lost).
    - **It adds the histograms we aggregate in batches** (``_core/histograms.py``): when the
      MeterProvider's only reader exports through this exporter, the set-up binds the provider's
      :class:`HistogramSet` here and each export carries its points, in the temporality the wrapped
      exporter prefers for histograms, in the instrumentation scope of our other instruments.
    """

    def __init__(self, exporter: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self._exporter = exporter
        self._histograms: Callable[[bool], Sequence[Metric]] | None = None
        self._scope: InstrumentationScope | None = None
        self._resource: Resource | None = None
        self._delta = any(
            isinstance(kind, type)
            and issubclass(kind, SdkHistogram)
            and temporality is AggregationTemporality.DELTA
            for kind, temporality in (exporter._preferred_temporality or {}).items()
        )

    def bind(
        self, histograms: Callable[[bool], Sequence[Metric]], scope: InstrumentationScope, resource: Resource
    ) -> None:
        """Add ``histograms(delta)`` to every export from now on, under ``scope`` and ``resource``."""
        self._histograms, self._scope, self._resource = histograms, scope, resource

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not process.exports_as_instance():
            return MetricExportResult.SUCCESS
        if self._histograms is not None:
            try:
                metrics_data = self._with_histograms(metrics_data, list(self._histograms(self._delta)))
            except Exception:
                log_once("histograms", "otel-migration: could not add the batch histograms to an export")
        return self._exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def _with_histograms(self, data: MetricsData, extra: list[Metric]) -> MetricsData:
        if not extra:
            return data
        assert self._scope is not None and self._resource is not None
        resources = list(data.resource_metrics)
        if not resources:
            return MetricsData([ResourceMetrics(self._resource, [ScopeMetrics(self._scope, extra, "")], "")])
        first = resources[0]
        scopes = list(first.scope_metrics)
        for position, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self._scope.name:
                scopes[position] = ScopeMetrics(
                    scope_metrics.scope, [*scope_metrics.metrics, *extra], scope_metrics.schema_url
                )
                break
        else:
            scopes.append(ScopeMetrics(self._scope, extra, ""))
        resources[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData(resources)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


def exporting_through_us(meter_provider: MeterProvider) -> tuple[bool, MigrationMetricExporter | None]:
    """Whether the batch histograms of ``meter_provider`` can be ours, and the exporter to bind them to.

    Ours when the provider has no reader (nothing is exported, so nothing is lost) or exactly one,
    a periodic reader exporting through :class:`MigrationMetricExporter`. The SDK has no public way
    to list a provider's readers, so this reads its attributes, guarded: anything it does not
    recognise means "not ours", and the histograms go through the SDK's instruments instead.
    """
    try:
        if not isinstance(meter_provider, SdkMeterProvider):
            return False, None
        readers = getattr(meter_provider, "_metric_readers", None)
        if readers is None:
            readers = meter_provider._sdk_config.metric_readers  # type: ignore[attr-defined]  # older SDKs
        readers = list(readers)
        if not readers:
            return True, None
        if len(readers) == 1 and isinstance(readers[0], PeriodicExportingMetricReader):
            exporter = readers[0]._exporter
            if isinstance(exporter, MigrationMetricExporter):
                return True, exporter
    except Exception:
        _logger.debug("otel-migration: could not read the MeterProvider's readers", exc_info=True)
    return False, None


def provider_resource(meter_provider: MeterProvider) -> Resource:
    """The resource of an SDK MeterProvider (for points we add to its exports); empty if unknown."""
    try:
        resource = meter_provider._sdk_config.resource  # type: ignore[attr-defined]
        return resource if isinstance(resource, Resource) else Resource.get_empty()
    except Exception:
        return Resource.get_empty()


def reset_metric_state(meter_provider: MeterProvider, scope: str | None = None) -> int:
    """Forget every aggregated point of ``meter_provider`` (only ``scope``'s instruments if given).

    For a forked child, whose cumulative series must start from zero. The SDK has no public way to
    do this, so it reaches into its storage, guarded: a layout it does not know is left alone and
    logged. It also renews the SDK locks a parent thread may have held at the fork (a collection
    or an export in progress), which the SDK leaves as they were: the child's first collection
    would wait for them forever. Returns how many instrument streams were cleared.
    """
    cleared = 0
    try:
        consumer = meter_provider._measurement_consumer  # type: ignore[attr-defined]
        consumer._lock = threading.Lock()
        for reader in getattr(meter_provider, "_metric_readers", ()):
            if hasattr(reader, "_export_lock"):
                reader._export_lock = threading.Lock()
        for storage in consumer._reader_storages.values():
            storage._lock = threading.RLock()
            for instrument, matches in list(storage._instrument_view_instrument_matches.items()):
                if scope is not None and getattr(instrument.instrumentation_scope, "name", None) != scope:
                    continue
                for match in matches:
                    match._lock = threading.Lock()
                    match._attributes_aggregation = {}
                    match._previous_collection_start_nanos = None
                    cleared += 1
    except Exception:
        _logger.warning(
            "otel-migration: could not reset the SDK's metric state after fork; "
            "this child may re-export its parent's points",
            exc_info=True,
        )
    return cleared


def build_providers(
    settings: Settings,
    env: Mapping[str, str],
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    wrap_exporting: Callable[[SpanProcessor], SpanProcessor] = lambda processor: processor,
    views: Sequence[View] = (),
    logger_provider: LoggerProvider | None = None,
) -> Providers:
    """Providers given explicitly win, then the global ones, then new SDK providers built here.

    ``wrap_exporting`` wraps the exporting span processor of a pipeline we build (the set-up
    passes the LLM span enricher, so foreign LLM spans are priced before they are exported).
    ``views`` go to a MeterProvider we build (the fleet state's exponential histograms). Log
    records go where the traces go when we build the pipeline; attached to an application's
    providers, they go to its LoggerProvider (given, or global), or nowhere.
    """
    tracer_provider = tracer_provider or global_tracer_provider()
    meter_provider = meter_provider or global_meter_provider()
    logger_provider = logger_provider or global_logger_provider()
    if tracer_provider is not None and meter_provider is not None:
        return Providers(tracer_provider, meter_provider, logger_provider=logger_provider)

    choice = exporter_choice(settings, env)
    resource = process_resource(settings)
    owned_tp = owned_mp = counted = owned_lp = None
    if meter_provider is None:
        metric_exporter = _metric_exporter(choice, settings, env)
        counted_metrics = CountingMetricExporter(metric_exporter) if metric_exporter is not None else None
        readers = (
            [PeriodicExportingMetricReader(MigrationMetricExporter(counted_metrics))]
            if counted_metrics is not None
            else []
        )
        owned_mp = SdkMeterProvider(
            resource=resource, metric_readers=readers, views=list(views), shutdown_on_exit=False
        )
        if counted_metrics is not None:
            counted_metrics.register(owned_mp)
        meter_provider = owned_mp
    if tracer_provider is None:
        if env is os.environ:
            os.environ.setdefault(_SDK_HEALTH_METRICS, "true")
        # The sampler comes from OTEL_TRACES_SAMPLER; the set-up registers a bounded exit shutdown.
        owned_tp = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
        span_exporter = _span_exporter(choice, settings, env, meter_provider)
        if span_exporter is not None:
            counted = CountingSpanExporter(span_exporter, meter_provider)
            batch = BatchSpanProcessor(counted, meter_provider=meter_provider)
            owned_tp.add_span_processor(wrap_exporting(batch))
        tracer_provider = owned_tp
        if logger_provider is None:
            owned_lp = build_logger_provider(choice, env, resource, os.path.abspath(settings.file_path))
            logger_provider = owned_lp
    return Providers(
        tracer_provider,
        meter_provider,
        owned_tp,
        owned_mp,
        _destination(choice, settings, env),
        counted,
        logger_provider,
        owned_lp,
    )


def process_resource(settings: Settings | None = None) -> Resource:
    """The resource of this process: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (merged by
    the SDK) under the ``service_name``, ``service_version`` and ``deployment_environment`` settings
    (resolved with the environment already, see otel_migration._core.resource), plus a
    ``service.instance.id`` of its own unless one was given: the fleet's collector tells processes
    apart by it (docs/fleet.md).
    """
    given = resource_attributes(settings) if settings is not None else {}
    detected = Resource.create(given)
    if SERVICE_INSTANCE_ID in detected.attributes:
        return detected
    return detected.merge(Resource({SERVICE_INSTANCE_ID: str(uuid.uuid4())}))
