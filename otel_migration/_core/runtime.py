"""The telemetry in effect: tracer, recorder, classifier, pseudonymiser, settings and components.

Wrappers look it up at call time, not at decoration time, so functions decorated at import
(before :func:`otel_migration.configure` runs) are instrumented once it does. A configuration is
one :class:`Telemetry`, built whole by the top-level set-up and swapped in as one object, so a
call sees either the old configuration or the new one, never a mix.

The core knows no feature: features (LLM calls, analytics, experiments) put their own objects in
as *components* when the set-up builds the telemetry, and find them again by type
(``telemetry.get(LLMRuntime)``). When ``configure`` was never called but the application installed
real global providers itself, we attach to those; building a configuration is the set-up's job,
so it hands us its assembler (:func:`set_assembler`) when the package is imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

from ..version import __version__
from . import semconv as sc
from .categories import ErrorClassifier
from .config import Settings, load_settings
from .providers import Providers, global_meter_provider, global_tracer_provider
from .pseudonyms import Pseudonymizer
from .recorder import CallRecorder

__all__ = [
    "Telemetry",
    "TelemetryHealth",
    "active",
    "configured",
    "set_active",
    "set_assembler",
]

_logger = logging.getLogger(__name__)
T = TypeVar("T")

_lock: Final = threading.RLock()
_active: Telemetry | None = None
_lazy_failed = False
_assembler: Callable[[Settings, Providers], Telemetry] | None = None


@dataclass(frozen=True, slots=True)
class TelemetryHealth:
    """Counts of the pipeline itself; span counts are None when we attached to the app's pipeline."""

    calls_dropped: int
    spans_delivered: int | None
    spans_failed: int | None


class Telemetry:
    """Everything a wrapper needs at call time, resolved once at configuration."""

    def __init__(
        self,
        settings: Settings,
        providers: Providers,
        recorder: CallRecorder,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        components: Iterable[object] = (),
        before_flush: Iterable[Callable[[], object]] = (),
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.enabled = settings.enabled
        self.tracer = providers.tracer_provider.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
        self.classifier = ErrorClassifier(settings.error_categories)
        self.recorder = recorder
        self.pseudonymizer = pseudonymizer or Pseudonymizer.for_settings(settings)
        self._components: dict[type, object] = {type(c): c for c in components}
        #: What features push out before a flush (e.g. the fleet sketches), passed in by the set-up.
        self._before_flush = tuple(before_flush)

    def get(self, kind: type[T]) -> T:
        """The component of type ``kind`` the set-up put in; KeyError when there is none."""
        component = self._components[kind]
        assert isinstance(component, kind)
        return component

    def find(self, kind: type[T]) -> T | None:
        """The component of type ``kind``, or None."""
        component = self._components.get(kind)
        return component if isinstance(component, kind) else None

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
        self._run_before_flush()
        providers = self.providers
        for provider in (
            providers.owned_tracer_provider,
            providers.owned_meter_provider,
            providers.owned_logger_provider,
        ):
            if provider is not None:
                provider.force_flush(timeout_millis)

    def _run_before_flush(self) -> None:
        for hook in self._before_flush:
            try:
                hook()
            except Exception:
                _logger.exception("otel-migration: a pre-flush step failed")

    def shutdown(self, *, keep: tuple[object, ...] = ()) -> None:
        """Drain, then shut down the providers we built (except those in ``keep``, still in use).

        Providers we attached to stay the application's: it shuts them down.
        """
        self.recorder.drain()
        self._run_before_flush()
        logger_provider = self.providers.owned_logger_provider
        if logger_provider is not None and all(logger_provider is not other for other in keep):
            logger_provider.shutdown()
        tracer_provider = self.providers.owned_tracer_provider
        if tracer_provider is not None and all(tracer_provider is not other for other in keep):
            tracer_provider.shutdown()
        meter_provider = self.providers.owned_meter_provider
        if meter_provider is not None and all(meter_provider is not other for other in keep):
            self.recorder.shutdown()
            meter_provider.shutdown()


def set_assembler(assembler: Callable[[Settings, Providers], Telemetry]) -> None:
    """Hand the core the set-up's builder, used to attach lazily to the application's providers."""
    global _assembler
    _assembler = assembler


def active() -> Telemetry | None:
    """The telemetry in effect, attaching lazily to the application's own global providers."""
    telemetry = _active
    if telemetry is not None or _lazy_failed:
        return telemetry
    tracer_provider, meter_provider = global_tracer_provider(), global_meter_provider()
    if tracer_provider is None or meter_provider is None or _assembler is None:
        return None
    return _attach_lazily(Providers(tracer_provider, meter_provider))


def _attach_lazily(providers: Providers) -> Telemetry | None:
    global _active, _lazy_failed
    with _lock:
        if _active is None and not _lazy_failed and _assembler is not None:
            try:
                _active = _assembler(load_settings(), providers)
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
