"""Ready event names: what resilient and generative code reports most, spelled once for every service.

Each is a plain string (a ``StrEnum``), so ``event(EventName.RETRY_ATTEMPTED, attempt=2)`` and
``event("migration.retry.attempted", attempt=2)`` are the same event. Any other name is allowed too;
OpenTelemetry's rule for event names applies: a namespace, dots, lower case (``payments.refund.issued``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from .._core import semconv as sc

__all__ = ["WARNINGS", "EventName"]


class EventName(StrEnum):
    """The event names otel-migration documents (docs/telemetry.md, "Events")."""

    RETRY_ATTEMPTED = sc.EVENT_RETRY_ATTEMPTED
    RETRY_SUCCEEDED = sc.EVENT_RETRY_SUCCEEDED
    RETRY_FAILED = sc.EVENT_RETRY_FAILED
    FALLBACK = sc.EVENT_FALLBACK
    CIRCUIT_BREAKER_OPENED = sc.EVENT_CIRCUIT_BREAKER_OPENED
    CIRCUIT_BREAKER_CLOSED = sc.EVENT_CIRCUIT_BREAKER_CLOSED
    CACHE_HIT = sc.EVENT_CACHE_HIT
    CACHE_MISS = sc.EVENT_CACHE_MISS
    GENERATION_STARTED = sc.EVENT_GENERATION_STARTED
    GENERATION_COMPLETED = sc.EVENT_GENERATION_COMPLETED
    GENERATION_FAILED = sc.EVENT_GENERATION_FAILED
    GENERATION_CANCELLED = sc.EVENT_GENERATION_CANCELLED
    USER_ACTION = sc.EVENT_USER_ACTION


#: Events emitted at WARN severity (something went wrong); every other event is INFO.
WARNINGS: Final = frozenset(
    {sc.EVENT_RETRY_FAILED, sc.EVENT_CIRCUIT_BREAKER_OPENED, sc.EVENT_GENERATION_FAILED, sc.EVENT_FALLBACK}
)
