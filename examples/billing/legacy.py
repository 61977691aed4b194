"""Billing 1.0: slower, and times out now and then."""

from __future__ import annotations

import random
import time


class GatewayTimeout(TimeoutError):
    """The old payment gateway did not answer in time."""


def charge(user_id: str, amount_cents: int) -> str:
    time.sleep(random.uniform(0.004, 0.012))
    if random.random() < 0.04:
        raise GatewayTimeout(f"gateway timed out charging {amount_cents}")
    return f"ch_legacy_{user_id}_{amount_cents}"


def monthly_report(user_id: str) -> dict[str, int]:
    time.sleep(random.uniform(0.002, 0.006))
    return {"invoices": random.randint(1, 12)}
