"""The composition root: ``configure``, ``force_flush``, ``shutdown`` and the objects they wire together.

This is the only module that imports every feature. It builds a configuration whole and passes
each part the objects it needs; the core knows none of the features, which find their own parts
in the :class:`Telemetry` by type.

``configure`` is all or nothing. It *builds* first: settings, providers, the aggregators (once per
MeterProvider: counters are cumulative and instruments are registered once, so reconfiguring never
resets them nor registers a duplicate), the telemetry; then *installs* the targets, putting the
previous configuration's back if that fails; and only then *commits*: the new telemetry, the
rollouts and the budgets take effect together. A failure at any step before the commit leaves the
previous configuration exactly as it was.

Process lifecycle (see :mod:`otel_migration._core.process`): ``shutdown`` switches the package off
for good and is safe from a signal handler; ``force_flush(timeout)`` and ``shutdown(timeout)`` are
total deadlines. When we built the providers we also own their ending: a bounded shutdown at
exit (instead of the SDK's unbounded one) and, on the main thread, a SIGTERM handler that flushes
within :data:`SIGTERM_FLUSH_MILLIS` and defers to the handler it replaced. After ``os.fork`` every
aggregate starts empty in the child. Budgets are the exception: their spend is the *service's*
spend this day or month, which a child must keep counting against the limit (its utilization
is a gauge, never summed across instances).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry._logs import LoggerProvider
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TracerProvider

from ._analytics import gauges as analytics_gauges
from ._analytics.engine import Guard, MigrationAnalytics
from ._analytics.fleet import FleetState
from ._analytics.fleet import views as fleet_views
from ._analytics.health import HealthMonitor, psutil_sampler
from ._analytics.process import start_process_metrics
from ._analytics.snapshot import Snapshot, Verdict
from ._calls.resources import ResourceMetrics
from ._calls.targets import TargetInstaller, check_targets
from ._core import process, runtime
from ._core import semconv as sc
from ._core.config import Settings, load_settings
from ._core.errors import ConfigError
from ._core.histograms import HistogramSet
from ._core.providers import Providers, global_meter_provider, global_tracer_provider
from ._core.recorder import CallRecorder
from ._core.runtime import Telemetry
from ._events import Events
from ._export.pipeline import (
    MigrationMetricExporter,
    build_providers,
    exporting_through_us,
    provider_resource,
    reset_metric_state,
)
from ._llm.agent_metrics import AgentMetrics
from ._llm.budgets import BudgetEvent, Budgets
from ._llm.enrich import LLMSpanEnricher
from ._llm.metrics import LLMMetrics
from ._llm.operations import LLMOperations
from ._llm.pricing import PriceTable
from ._llm.quality import QualityTracker
from ._llm.runtime import LLMRuntime
from ._llm.stats import LLMStats
from ._llm.stats import llm_stats as _llm_stats
from ._rollouts import rollout as rollouts
from ._rollouts.experiment import ExperimentRegistry
from .version import __version__

__all__ = [
    "assemble",
    "attach",
    "configure",
    "force_flush",
    "guard",
    "llm_stats",
    "on_budget",
    "shutdown",
    "snapshot",
]

#: Budgets live as long as the process: spend must survive a reconfiguration (a new configuration
#: only replaces the limits), and so do the callbacks registered with :func:`on_budget`.
BUDGETS: Final = Budgets()

#: How long the SIGTERM handler flushes before the previous handler runs (a worker being stopped
#: has a grace period of its own, typically 30 s, which this must fit in).
SIGTERM_FLUSH_MILLIS: Final = 5_000
#: How long the shutdown at interpreter exit may delay the exit.
EXIT_SHUTDOWN_MILLIS: Final = 5_000


@dataclass(frozen=True, slots=True)
class _Aggregators:
    """What aggregates finished calls for one MeterProvider, built once for the provider's lifetime."""

    recorder: CallRecorder
    analytics: MigrationAnalytics
    llm: LLMMetrics
    quality: QualityTracker
    experiments: ExperimentRegistry
    fleet: FleetState
    #: Resources, LLM operations, health (issue 14): listeners and components of their own.
    extras: tuple[object, ...] = ()

    def components(self) -> tuple[object, ...]:
        return (self.llm, self.analytics, self.quality, self.experiments, self.fleet, *self.extras)

    def reset_after_fork(self) -> None:
        """The recorder resets itself; the listeners and counters start empty here."""
        for component in (self.analytics, self.llm, self.quality, self.experiments, self.fleet):
            component.reset_after_fork()


_lock: Final = threading.Lock()
_aggregators: weakref.WeakKeyDictionary[MeterProvider, _Aggregators] = weakref.WeakKeyDictionary()
_installed: dict[int, TargetInstaller] = {}  # id(telemetry) -> its targets


def _aggregators_for(meter_provider: MeterProvider, settings: Settings) -> _Aggregators:
    with _lock:
        found = _aggregators.get(meter_provider)
        if found is None:
            meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
            histograms = _histograms_for(meter_provider, meter)
            analytics = MigrationAnalytics(settings.analytics, rollouts.registry.get)
            llm = LLMMetrics(meter)
            quality = QualityTracker(meter)
            fleet = FleetState(meter, None, quality.totals, histograms)
            llm.add_sample_sink(analytics.add_sample)
            quality.add_sample_sink(analytics.add_sample)
            quality.add_sample_sink(fleet.add_sample)
            resources, operations = ResourceMetrics(meter, histograms), LLMOperations(meter)
            health = HealthMonitor(
                settings.analytics, sampler=psutil_sampler(), memory_limit_bytes=settings.memory_limit_bytes
            )
            recorder = CallRecorder(
                meter,
                max_queue_size=settings.max_queue_size,
                listeners=[analytics, llm, fleet, resources, operations, health],
                histograms=histograms,
            )
            health.watch(recorder)
            health.register(meter)
            if settings.process_metrics:
                start_process_metrics(meter_provider)
            experiments = ExperimentRegistry()
            analytics_gauges.register(meter, analytics)
            rollouts.registry.register_metrics(meter)
            experiments.register_metrics(meter)
            BUDGETS.register_metrics(meter)
            found = _Aggregators(
                recorder, analytics, llm, quality, experiments, fleet, (resources, operations, health)
            )
            _aggregators[meter_provider] = found
    return found


def metric_exporter(exporter: MetricExporter) -> MetricExporter:
    """Wrap the metric exporter of your own MeterProvider so our histograms take the batch path.

    Attached to an application's MeterProvider whose only reader is a periodic reader exporting
    through this wrapper, the histograms of versioned calls (durations, CPU, the fleet state) are
    aggregated a drained chunk at a time and added to each export, rather than recorded one value
    at a time through the SDK; a pre-fork master that served no call does not export. Exports
    pass to ``exporter`` otherwise unchanged. Wrap before building the MeterProvider, then
    ``configure(meter_provider=...)``.
    """
    return MigrationMetricExporter(exporter)


def metric_views() -> list[View]:
    """Views for your own MeterProvider when its exports do not go through :func:`metric_exporter`.

    They make the fleet state's histograms base-2 exponential, as the collector component needs.
    """
    return fleet_views()


def _histograms_for(meter_provider: MeterProvider, meter: Meter) -> HistogramSet:
    """Batch histograms: ours to export when the provider's one reader uses our exporter, else the SDK's."""
    owned, exporter = exporting_through_us(meter_provider)
    histograms = HistogramSet(meter, owned=owned)
    if exporter is not None:
        exporter.bind(
            histograms.metrics,
            InstrumentationScope(sc.INSTRUMENTATION_SCOPE, __version__),
            provider_resource(meter_provider),
        )
    return histograms


def assemble(settings: Settings, providers: Providers) -> Telemetry:
    """Build a whole configuration on ``providers``; nothing takes effect until it is committed."""
    aggregators = _aggregators_for(providers.meter_provider, settings)
    prices = PriceTable.load(settings.pricing_file)
    llm = LLMRuntime(
        prices=prices,
        model_tiers=settings.model_tiers,
        budgets=BUDGETS,
        metrics=aggregators.llm,
        quality=aggregators.quality,
        capture_content=settings.capture_content,
    )
    return Telemetry(
        settings,
        providers,
        aggregators.recorder,
        components=(llm, *aggregators.components(), *_feature_components(settings, providers)),
        before_flush=(aggregators.fleet.ship,),
    )


def _feature_components(settings: Settings, providers: Providers) -> tuple[object, ...]:
    """Events, tools and agents: each builds its own instruments once per MeterProvider."""
    return (
        Events.build(providers.meter_provider, providers.logger_provider, settings.migration),
        AgentMetrics.for_meter_provider(providers.meter_provider),
    )


def _commit(telemetry: Telemetry) -> Telemetry | None:
    """Put a built configuration in effect: the telemetry, its analytics thresholds, rollouts, budgets."""
    settings = telemetry.settings
    telemetry.get(MigrationAnalytics).settings = settings.analytics
    telemetry.get(HealthMonitor).settings = settings.analytics
    _connect_logs(telemetry)
    rollouts.registry.configure(settings.rollouts, flag_file=settings.flag_file)
    BUDGETS.configure(settings.budgets)
    return runtime.set_active(telemetry)


def attach(settings: Settings, providers: Providers) -> Telemetry:
    """The core's lazy path: the application installed providers but never called ``configure``."""
    telemetry = assemble(settings, providers)
    _connect_logs(telemetry)
    rollouts.registry.configure(settings.rollouts, flag_file=settings.flag_file)
    BUDGETS.configure(settings.budgets)
    return telemetry


def _connect_logs(telemetry: Telemetry) -> None:
    """Send the fleet sketches to this configuration's LoggerProvider (none: they stay in process)."""
    provider = telemetry.providers.logger_provider
    logger = provider.get_logger(sc.INSTRUMENTATION_SCOPE, __version__) if provider is not None else None
    telemetry.get(FleetState).set_logger(logger)


def _enrich(processor: SpanProcessor) -> SpanProcessor:
    return LLMSpanEnricher(processor)


def configure(
    *,
    config_file: str | os.PathLike[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    **settings: Any,
) -> Telemetry:
    """Set up tracing and metrics for versioned code paths and wrap the configured targets.

    Providers passed here win (a LoggerProvider receives the fleet's distinct-user sketches);
    otherwise the application's global providers are used as they are;
    only when there are none does this build SDK providers exporting where ``OTEL_*`` says (or to a
    local OTLP JSON lines file when no endpoint is set) and install them globally. ``settings`` are
    the fields of :class:`otel_migration.Settings`; they override the environment and the file.
    """
    env = os.environ
    resolved = load_settings(settings, config_file=config_file, environ=env)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        resolved = replace(resolved, enabled=False)
    check_targets(resolved.targets)

    try:
        providers = build_providers(
            resolved,
            env,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            wrap_exporting=_enrich,
            views=fleet_views(),
            logger_provider=logger_provider,
        )
    except ConfigError:
        raise
    except Exception as exc:  # an exporter refusing its OTEL_* settings, e.g. malformed headers
        raise ConfigError(
            "exporter", resolved.exporter, f"could not be built: {exc}", source="OTEL_*"
        ) from exc

    previous = runtime.configured()
    providers = _keep_ownership(providers, previous)
    try:
        telemetry = assemble(resolved, providers)
        _swap_targets(previous, telemetry)
    except BaseException:
        _discard(providers, previous)
        raise

    _commit(telemetry)
    if previous is not None:
        previous.shutdown(
            keep=(providers.tracer_provider, providers.meter_provider, providers.logger_provider)
        )
    if providers.owned_tracer_provider is not None or providers.owned_meter_provider is not None:
        _own_process_end()
    if providers.owned_tracer_provider is not None and global_tracer_provider() is None:
        trace.set_tracer_provider(providers.owned_tracer_provider)
    if providers.owned_meter_provider is not None and global_meter_provider() is None:
        metrics.set_meter_provider(providers.owned_meter_provider)
    return telemetry


def _keep_ownership(providers: Providers, previous: Telemetry | None) -> Providers:
    """Providers we built and installed globally stay ours when ``configure`` runs again.

    Otherwise a second ``configure`` (in a gunicorn worker's ``post_worker_init``, say) would find
    them as the application's globals, attach, and never flush nor shut them down.
    """
    if previous is None:
        return providers
    before = previous.providers
    changes: dict[str, Any] = {}
    if providers.owned_tracer_provider is None and providers.tracer_provider is before.owned_tracer_provider:
        changes.update(owned_tracer_provider=before.owned_tracer_provider, span_exporter=before.span_exporter)
    if providers.owned_meter_provider is None and providers.meter_provider is before.owned_meter_provider:
        changes["owned_meter_provider"] = before.owned_meter_provider
    if (
        providers.owned_logger_provider is None
        and before.owned_logger_provider is not None
        and (
            providers.logger_provider is before.owned_logger_provider
            # Our own pipeline found again as the globals: log records still go where the traces go.
            or (
                providers.logger_provider is None
                and providers.tracer_provider is before.owned_tracer_provider
            )
        )
    ):
        changes["logger_provider"] = changes["owned_logger_provider"] = before.owned_logger_provider
    if changes:
        changes["destination"] = before.destination
    return replace(providers, **changes) if changes else providers


def _swap_targets(previous: Telemetry | None, telemetry: Telemetry) -> None:
    """Move the wrapped targets from the previous configuration to the new one, or leave them be."""
    # Targets of a previous configuration come off first, or they would be wrapped twice.
    if previous is not None:
        _uninstall(previous)
    installer = TargetInstaller()
    try:
        if telemetry.enabled:
            installer.install(telemetry.settings.targets)
    except BaseException:
        installer.uninstall()
        if previous is not None:  # leave things as they were
            _install(previous)
        raise
    _installed[id(telemetry)] = installer


def _discard(providers: Providers, previous: Telemetry | None) -> None:
    """Shut down what a failed configuration built (never what the previous one still uses)."""
    keep = (previous.providers.tracer_provider, previous.providers.meter_provider) if previous else ()
    for provider in (providers.owned_tracer_provider, providers.owned_meter_provider):
        if provider is not None and all(provider is not other for other in keep):
            provider.shutdown()


def _install(telemetry: Telemetry) -> None:
    installer = TargetInstaller()
    if telemetry.enabled:
        installer.install(telemetry.settings.targets)
    _installed[id(telemetry)] = installer


def _uninstall(telemetry: Telemetry) -> None:
    installer = _installed.pop(id(telemetry), None)
    if installer is not None:
        installer.uninstall()


def force_flush(timeout_millis: float = 30_000) -> bool:
    """Aggregate every finished call and push what we own to the exporters now.

    Returns within ``timeout_millis`` whatever the collector does; True when all was flushed.
    """
    telemetry = runtime.active()
    return telemetry.force_flush(timeout_millis) if telemetry is not None else True


def shutdown(timeout_millis: float = 30_000) -> bool:
    """Unwrap configured targets, flush, and shut down the providers ``configure`` built.

    From then on calls pass straight through, untraced and uncounted, until ``configure`` is
    called again. Returns within ``timeout_millis`` (True when everything was flushed in time);
    safe to call from a signal handler, and again while a shutdown is under way.
    """
    telemetry = runtime.stop()
    rollouts.flags.use_path(None)  # the configuration's flag_file goes with it
    process.uninstall_sigterm_flush()
    if telemetry is None:
        return True
    _uninstall(telemetry)
    return telemetry.shutdown(timeout_millis=timeout_millis)


_exit_registered = False


def _own_process_end() -> None:
    """We built the providers, so their ending is ours: bounded at exit, flushed on SIGTERM."""
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(shutdown, EXIT_SHUTDOWN_MILLIS)
    process.install_sigterm_flush(lambda: force_flush(SIGTERM_FLUSH_MILLIS))


def _after_fork_in_child() -> None:
    """Every aggregate starts empty in a forked child: it is a new instance; the parent has its own."""
    active = runtime.configured()
    owned = active.providers.owned_meter_provider if active is not None else None
    try:
        for meter_provider, aggregators in list(_aggregators.items()):
            aggregators.reset_after_fork()
            # On a provider we built every stream is ours to reset; on the application's, only ours.
            reset_metric_state(meter_provider, None if meter_provider is owned else sc.INSTRUMENTATION_SCOPE)
        rollouts.reset_after_fork()
        BUDGETS.reset_after_fork()
    except Exception:  # never break the application's fork
        import logging

        logging.getLogger(__name__).exception("otel-migration: could not reset state after fork")


os.register_at_fork(after_in_child=_after_fork_in_child)


def snapshot() -> Snapshot:
    """Adoption, errors, performance and verdicts per migration, evaluated now from every call so far.

    For a health check or a deploy script to gate on. Without any configuration (nothing recorded)
    it is empty.
    """
    telemetry = runtime.active()
    analytics = telemetry.find(MigrationAnalytics) if telemetry is not None else None
    if telemetry is None or analytics is None:
        return Snapshot(taken_at=time.time(), migrations={})
    with process.busy():  # a signal handler calling shutdown() must not re-enter the evaluation
        telemetry.recorder.drain()
        return analytics.evaluate()


def llm_stats() -> list[LLMStats]:
    """LLM calls, their cost in USD and the quality of their answers, per migration, version and model
    tier, from every call so far (the figures the metrics export). Without a configuration it is empty.
    """
    telemetry = runtime.active()
    llm = telemetry.find(LLMRuntime) if telemetry is not None else None
    if telemetry is None or llm is None:
        return []
    with process.busy():  # as snapshot(): a signal handler calling shutdown() must not re-enter
        telemetry.recorder.drain()
        return _llm_stats(llm.metrics, llm.quality)


def on_budget(callback: Callable[[BudgetEvent], object]) -> None:
    """Call ``callback(event)`` when an LLM budget crosses a threshold (once per threshold and period)."""
    BUDGETS.on_threshold(callback)


def guard(
    callback: Callable[[Verdict], object],
    *,
    metric: str = "latency",
    consecutive: int = 3,
    migration: str | None = None,
    operation: str | None = None,
) -> None:
    """Call ``callback(verdict)`` when ``metric`` is judged worse ``consecutive`` evaluations in a row.

    For example, roll back on a sustained latency regression::

        otel_migration.guard(lambda v: otel_migration.kill_rollout(v.migration, v.reason))
    """
    if consecutive < 1:
        raise ValueError(f"guard(): consecutive must be at least 1, got {consecutive!r}")
    if metric not in ("latency", "error_rate", "cpu"):
        raise ValueError(f"guard(): metric must be 'latency', 'error_rate' or 'cpu', got {metric!r}")
    telemetry = runtime.active()
    analytics = telemetry.find(MigrationAnalytics) if telemetry is not None else None
    if analytics is None:
        raise RuntimeError("guard(): call otel_migration.configure() first")
    analytics.add_guard(Guard(callback, metric, consecutive, migration, operation))
