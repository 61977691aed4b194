"""Billing 2.0: faster charging, a report pipeline in phases, and a new validation error."""

from __future__ import annotations

import random
import time

import otel_migration


class InvalidAmount(ValueError):
    """2.0 validates amounts that 1.0 accepted."""


class Billing:
    def charge(self, user_id: str, amount_cents: int) -> str:
        time.sleep(random.uniform(0.002, 0.006))
        if amount_cents % 97 == 0:
            raise InvalidAmount(f"invalid amount {amount_cents}")
        return f"ch_next_{user_id}_{amount_cents}"

    def monthly_report(self, user_id: str) -> dict[str, int]:
        with otel_migration.phase("extraction"):
            time.sleep(random.uniform(0.001, 0.003))
        with otel_migration.phase("analysis"):
            time.sleep(random.uniform(0.001, 0.004))
        with otel_migration.phase("synthesis"):
            time.sleep(random.uniform(0.001, 0.002))
        return {"invoices": random.randint(1, 12)}
