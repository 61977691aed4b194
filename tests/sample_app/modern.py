"""Version 2.0 of billing: methods of every kind, wrapped from configuration."""

from __future__ import annotations

import asyncio


class Billing:
    def charge(self, amount: int) -> str:
        return f"modern:{amount}"

    @staticmethod
    def fee(amount: int) -> int:
        return amount // 100

    @classmethod
    def currency(cls) -> str:
        return cls.__name__ + ":EUR"

    async def settle(self, amount: int) -> int:
        await asyncio.sleep(0)
        return amount


class PremiumBilling(Billing):
    """Inherits ``charge``: wrapping it here must not change Billing."""
