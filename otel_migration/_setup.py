"""``configure``, ``force_flush`` and ``shutdown``: the lifecycle of the telemetry in effect.

``configure`` checks everything before it builds anything, builds before it installs, and installs
before it publishes: a :class:`ConfigError` at any step leaves no provider, wrapper or global
behind. Called again, it replaces the previous configuration (its targets are unwrapped first).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from . import _processing, _runtime  # noqa: F401  (_processing installs the call pipeline)
from ._analytics import Guard
from ._budgets import BudgetEvent
from ._config import load_settings
from ._errors import ConfigError
from ._llm import budgets as llm_budgets
from ._pipeline import build_providers, global_meter_provider, global_tracer_provider
from ._runtime import Telemetry
from ._snapshot import Snapshot, Verdict
from ._targets import TargetInstaller, check_targets

__all__ = ["configure", "force_flush", "guard", "on_budget", "shutdown", "snapshot"]

_installers: dict[int, TargetInstaller] = {}


def configure(
    *,
    config_file: str | os.PathLike[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    **settings: Any,
) -> Telemetry:
    """Set up tracing and metrics for versioned code paths and wrap the configured targets.

    Providers passed here win; otherwise the application's global providers are used as they are;
    only when there are none does this build SDK providers exporting where ``OTEL_*`` says (or to a
    local OTLP JSON lines file when no endpoint is set) and install them globally. ``settings`` are
    the fields of :class:`otel_migration.Settings`; they override the environment and the file.
    """
    env = os.environ
    resolved = load_settings(settings, config_file=config_file, environ=env)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        resolved = type(resolved)(**{**_fields(resolved), "enabled": False})
    check_targets(resolved.targets)

    try:
        providers = build_providers(
            resolved, env, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    except ConfigError:
        raise
    except Exception as exc:  # an exporter refusing its OTEL_* settings, e.g. malformed headers
        raise ConfigError(
            "exporter", resolved.exporter, f"could not be built: {exc}", source="OTEL_*"
        ) from exc

    telemetry = Telemetry(resolved, providers)
    # Targets of a previous configuration come off first, or they would be wrapped twice.
    previous = _runtime.configured()
    if previous is not None:
        _uninstall(previous)
    installer = TargetInstaller()
    try:
        if resolved.enabled:
            installer.install(resolved.targets)
    except BaseException:
        installer.uninstall()
        telemetry.shutdown(keep=_providers_of(previous))
        if previous is not None:  # leave things as they were
            _install(previous)
        raise
    _installers[id(telemetry)] = installer

    _runtime.set_active(telemetry)
    if previous is not None:
        previous.shutdown(keep=(providers.tracer_provider, providers.meter_provider))
    if providers.owned_tracer_provider is not None and global_tracer_provider() is None:
        trace.set_tracer_provider(providers.owned_tracer_provider)
    if providers.owned_meter_provider is not None and global_meter_provider() is None:
        metrics.set_meter_provider(providers.owned_meter_provider)
    return telemetry


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def _providers_of(telemetry: Telemetry | None) -> tuple[object, ...]:
    if telemetry is None:
        return ()
    return (telemetry.providers.tracer_provider, telemetry.providers.meter_provider)


def _install(telemetry: Telemetry) -> None:
    installer = TargetInstaller()
    if telemetry.enabled:
        installer.install(telemetry.settings.targets)
    _installers[id(telemetry)] = installer


def _uninstall(telemetry: Telemetry) -> None:
    installer = _installers.pop(id(telemetry), None)
    if installer is not None:
        installer.uninstall()


def force_flush(timeout_millis: int = 30_000) -> None:
    """Aggregate every finished call and push what we own to the exporters now."""
    telemetry = _runtime.active()
    if telemetry is not None:
        telemetry.force_flush(timeout_millis)


def shutdown() -> None:
    """Unwrap configured targets, flush, and shut down the providers ``configure`` built."""
    telemetry = _runtime.set_active(None)
    if telemetry is not None:
        _uninstall(telemetry)
        telemetry.shutdown()


def snapshot() -> Snapshot:
    """Adoption, errors, performance and verdicts per migration, evaluated now from every call so far.

    For a health check or a deploy script to gate on. Without any configuration (nothing recorded)
    it is empty.
    """
    telemetry = _runtime.active()
    if telemetry is None:
        return Snapshot(taken_at=time.time(), migrations={})
    telemetry.recorder.drain()
    return telemetry.analytics.evaluate()


def on_budget(callback: Callable[[BudgetEvent], object]) -> None:
    """Call ``callback(event)`` when an LLM budget crosses a threshold (once per threshold and period)."""
    llm_budgets.on_threshold(callback)


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
    if metric not in ("latency", "error_rate"):
        raise ValueError(f"guard(): metric must be 'latency' or 'error_rate', got {metric!r}")
    telemetry = _runtime.active()
    if telemetry is None:
        raise RuntimeError("guard(): call otel_migration.configure() first")
    telemetry.analytics.add_guard(Guard(callback, metric, consecutive, migration, operation))
