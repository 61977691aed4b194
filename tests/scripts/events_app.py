"""Run in a subprocess by tests/test_events_otlp.py: configure() from OTEL_* plus the service settings, then
emit known events inside and outside a versioned call, and flush."""

from __future__ import annotations

import otel_migration
from otel_migration import EventName


def main() -> None:
    otel_migration.configure(
        migration="checkout-v2",
        service_name="checkout",
        service_version="4.2.0",
        deployment_environment="staging",
    )
    with otel_migration.versioned("2.0", operation="charge"):
        otel_migration.event(EventName.RETRY_ATTEMPTED, attempt=1)
        otel_migration.event(EventName.RETRY_SUCCEEDED, attempt=2)
        otel_migration.event(EventName.CIRCUIT_BREAKER_OPENED, breaker="gateway")
    for name in (EventName.GENERATION_STARTED, EventName.GENERATION_COMPLETED):
        otel_migration.event(name, model="claude-haiku-4-5")
    otel_migration.force_flush()
    otel_migration.shutdown()


if __name__ == "__main__":
    main()
