"""Events: ``otel_migration.event(name, **attributes)`` as OpenTelemetry events, counted."""

from .emitter import Events, event
from .names import EventName

__all__ = ["EventName", "Events", "event"]
