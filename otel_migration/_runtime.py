"""The telemetry in effect: tracer, call recorder, error classifier and settings, swapped as one.

Wrappers look it up at call time, not at decoration time, so functions decorated at import
(before :func:`otel_migration.configure` runs) are instrumented once it does. When ``configure``
was never called but the application installed real global providers itself, we attach to those
with settings from the environment and config file; when nothing is set up, calls pass through.

What processes the calls (the recorder and the analytics it feeds) is assembled by
:mod:`otel_migration._processing`, which installs itself as :data:`assemble` on import: this
module sits below the features (rollouts, experiments, analytics) that build on versioned calls,
so it must not import them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from opentelemetry.metrics import MeterProvider

from . import _semconv as sc
from ._categories import ErrorClassifier
from ._config import Settings
from ._pipeline import Providers, global_meter_provider, global_tracer_provider
from ._pricing import PriceTable
from ._recorder import CallRecorder
from .version import __version__

if TYPE_CHECKING:
    from ._analytics import MigrationAnalytics
    from ._llm import LLMMetrics
    from ._quality import QualityTracker

__all__ = ["Telemetry", "TelemetryHealth", "active", "set_active"]

_logger = logging.getLogger(__name__)

_lock: Final = threading.RLock()
_active: Telemetry | None = None
_lazy_failed = False


@dataclass(frozen=True, slots=True)
class Processors:
    """What processes finished calls for one MeterProvider: the recorder and the listeners it feeds."""

    recorder: CallRecorder
    analytics: MigrationAnalytics
    llm: LLMMetrics
    quality: QualityTracker


#: Builds (once per MeterProvider) the processors; set by _processing.
assemble: Callable[[MeterProvider, Settings], Processors] | None = None


@dataclass(frozen=True, slots=True)
class TelemetryHealth:
    """Counts of the pipeline itself; span counts are None when we attached to the app's pipeline."""

    calls_dropped: int
    spans_delivered: int | None
    spans_failed: int | None


class Telemetry:
    """Everything a wrapper needs at call time, resolved once at configuration."""

    def __init__(self, settings: Settings, providers: Providers) -> None:
        self.settings = settings
        self.providers = providers
        self.enabled = settings.enabled
        self.tracer = providers.tracer_provider.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
        self.classifier = ErrorClassifier(settings.error_categories)
        self.prices = PriceTable.load(settings.pricing_file)
        self.tiers: dict[str, str] = {}  # model name -> tier, filled by the LLM calls
        if assemble is None:
            raise RuntimeError("otel_migration._processing was not imported")
        processors = assemble(providers.meter_provider, settings)
        self.recorder, self.analytics = processors.recorder, processors.analytics
        self.llm, self.quality = processors.llm, processors.quality

    def health(self) -> TelemetryHealth:
        """What the telemetry pipeline lost or delivered so far: nothing is lost silently."""
        exporter = self.providers.span_exporter
        return TelemetryHealth(
            calls_dropped=self.recorder.dropped,
            spans_delivered=exporter.delivered if exporter is not None else None,
            spans_failed=exporter.failed if exporter is not None else None,
        )

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Aggregate queued calls, then flush the providers we own."""
        self.recorder.drain()
        for provider in (self.providers.owned_tracer_provider, self.providers.owned_meter_provider):
            if provider is not None:
                provider.force_flush(timeout_millis)

    def shutdown(self, *, keep: tuple[object, ...] = ()) -> None:
        """Drain, then shut down the providers we built (except those in ``keep``, still in use).

        Providers we attached to stay the application's: it shuts them down.
        """
        self.recorder.drain()
        tracer_provider = self.providers.owned_tracer_provider
        if tracer_provider is not None and all(tracer_provider is not other for other in keep):
            tracer_provider.shutdown()
        meter_provider = self.providers.owned_meter_provider
        if meter_provider is not None and all(meter_provider is not other for other in keep):
            self.recorder.shutdown()
            meter_provider.shutdown()


def active() -> Telemetry | None:
    """The telemetry in effect, attaching lazily to the application's own global providers."""
    telemetry = _active
    if telemetry is not None or _lazy_failed:
        return telemetry
    tracer_provider, meter_provider = global_tracer_provider(), global_meter_provider()
    if tracer_provider is None or meter_provider is None:
        return None
    return _attach_lazily(Providers(tracer_provider, meter_provider))


def _attach_lazily(providers: Providers) -> Telemetry | None:
    global _active, _lazy_failed
    from ._config import load_settings

    with _lock:
        if _active is None and not _lazy_failed:
            try:
                _active = Telemetry(load_settings(), providers)
            except Exception:
                _lazy_failed = True
                _logger.exception(
                    "otel-migration: not configured and the settings are invalid; calls run untraced"
                )
        return _active


def configured() -> Telemetry | None:
    """The telemetry in effect, without attaching lazily."""
    return _active


def set_active(telemetry: Telemetry | None) -> Telemetry | None:
    """Swap the telemetry in effect; returns the previous one."""
    global _active, _lazy_failed
    with _lock:
        previous, _active = _active, telemetry
        _lazy_failed = False
        return previous
