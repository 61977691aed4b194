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

After ``shutdown()`` the package stays off for good (until ``configure`` is called again): calls
pass straight through, and we never attach lazily to the providers that were just shut down.

Flushing and shutting down are bounded by one total deadline across the recorder's drain and
every provider; the providers' part runs on a helper thread (an exporter may block well past its
own timeout against a collector that accepts and never answers) that the caller stops waiting
for at the deadline (see :mod:`otel_migration._core.process`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

from ..version import __version__
from . import process
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
    "stop",
]

_logger = logging.getLogger(__name__)
T = TypeVar("T")

_lock: Final = threading.RLock()
#: Share of a flush's or shutdown's deadline the recorder's drain may use: the rest is for the
#: providers' final export, which must happen even when the drain could not finish (it carries
#: the count of what the drain had to leave).
_DRAIN_SHARE: Final = 0.6
_active: Telemetry | None = None
_lazy_failed = False
_stopped = False  # shut down: no lazy attach until configure() sets a telemetry again
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
        self._flush_lock = threading.RLock()  # a signal handler may re-enter
        self._flushing: threading.Event | None = None  # set when the providers' flush in flight ends

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

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Aggregate queued calls, then flush the providers we own; all within ``timeout_millis``.

        True when everything was flushed in time. The work runs on a helper thread (so a signal
        handler that interrupted our own code on this thread never waits for itself). One flush
        at a time: while one is still blocked in an exporter, a new call waits for that one
        (until its own deadline) rather than piling another thread onto the same exporter.
        """
        deadline = process.Deadline(timeout_millis)
        providers = self.providers
        owned = [
            p
            for p in (
                providers.owned_tracer_provider,
                providers.owned_meter_provider,
                providers.owned_logger_provider,
            )
            if p is not None
        ]
        with self._flush_lock:
            in_flight = self._flushing
            if in_flight is None:
                done = self._flushing = threading.Event()
        if in_flight is not None:
            if not process.is_busy():
                in_flight.wait(deadline.remaining_s())
            return False  # that flush started before this call: not necessarily everything

        drain_deadline = process.Deadline(timeout_millis * _DRAIN_SHARE)

        def flush() -> None:
            try:
                self.recorder.drain(drain_deadline)
                self._run_before_flush()
                for provider in owned:
                    _guarded(provider.force_flush, deadline.remaining_millis())
            finally:
                with self._flush_lock:
                    self._flushing = None
                done.set()

        return process.run_bounded(flush, deadline, "otel-migration-flush")

    def _run_before_flush(self) -> None:
        for hook in self._before_flush:
            try:
                hook()
            except Exception:
                _logger.exception("otel-migration: a pre-flush step failed")

    def shutdown(self, *, keep: tuple[object, ...] = (), timeout_millis: float = 30_000) -> bool:
        """Drain, then shut down the providers we built (except those in ``keep``, still in use).

        Providers we attached to stay the application's: it shuts them down. Everything happens
        within ``timeout_millis``, on a helper thread like :meth:`force_flush`; True when it all
        finished in time.
        """
        deadline = process.Deadline(timeout_millis)
        tracer_provider = self.providers.owned_tracer_provider
        meter_provider = self.providers.owned_meter_provider
        logger_provider = self.providers.owned_logger_provider
        if logger_provider is not None and any(logger_provider is other for other in keep):
            logger_provider = None
        if tracer_provider is not None and any(tracer_provider is other for other in keep):
            tracer_provider = None
        if meter_provider is not None and any(meter_provider is other for other in keep):
            meter_provider = None
        recorder = self.recorder
        if meter_provider is not None:
            recorder.stop()  # at once: calls finishing from now on are not recorded, nor counted
        drain_deadline = process.Deadline(timeout_millis * _DRAIN_SHARE)

        def stop() -> None:
            if meter_provider is None:
                recorder.drain(drain_deadline)  # the recorder lives on with its provider
            else:
                recorder.shutdown(deadline=drain_deadline)
            self._run_before_flush()
            # Logs, traces and metrics side by side: an exporter that hangs (a gRPC channel a parent
            # thread held at a fork, a collector that never answers) must not starve the other.
            others = [
                threading.Thread(target=_guarded, args=(p.shutdown,), name="otel-migration-stop", daemon=True)
                for p in (logger_provider, tracer_provider)
                if p is not None
            ]
            for thread in others:
                thread.start()
            if meter_provider is not None:
                _guarded(meter_provider.shutdown, deadline.remaining_millis())
            for thread in others:
                thread.join(deadline.remaining_s())

        return process.run_bounded(stop, deadline, "otel-migration-shutdown")


def _guarded(step: Callable[..., object], *args: object) -> None:
    """Run one SDK flush/shutdown step on a helper thread: nobody is there to catch what it raises."""
    try:
        step(*args)
    except Exception:
        _logger.warning("otel-migration: %s failed", getattr(step, "__qualname__", step), exc_info=True)


def set_assembler(assembler: Callable[[Settings, Providers], Telemetry]) -> None:
    """Hand the core the set-up's builder, used to attach lazily to the application's providers."""
    global _assembler
    _assembler = assembler


def active() -> Telemetry | None:
    """The telemetry in effect, attaching lazily to the application's own global providers."""
    telemetry = _active
    if telemetry is not None or _lazy_failed or _stopped:
        return telemetry
    tracer_provider, meter_provider = global_tracer_provider(), global_meter_provider()
    if tracer_provider is None or meter_provider is None or _assembler is None:
        return None
    return _attach_lazily(Providers(tracer_provider, meter_provider))


def _attach_lazily(providers: Providers) -> Telemetry | None:
    global _active, _lazy_failed
    with _lock:
        if _active is None and not _lazy_failed and not _stopped and _assembler is not None:
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
    global _active, _lazy_failed, _stopped
    with _lock:
        previous, _active = _active, telemetry
        _lazy_failed = False
        _stopped = False
        return previous


def stop() -> Telemetry | None:
    """Switch instrumentation off for good (until the next ``configure``); returns what was active.

    Safe from a signal handler: the lock is re-entrant and held only for two assignments.
    """
    global _active, _stopped
    with _lock:
        previous, _active = _active, None
        _stopped = True
        return previous
