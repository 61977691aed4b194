"""What LLM calls need at call time, built by the set-up and put into the telemetry as a component."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

from .._core.config import normalize_model
from .budgets import Budgets
from .metrics import LLMMetrics
from .pricing import PriceTable
from .quality import QualityTracker

__all__ = ["UNKNOWN_TIER", "LLMRuntime"]

UNKNOWN_TIER: Final = "unknown"
_TIER_CACHE_LIMIT: Final = 4096


class LLMRuntime:
    """Prices, tiers, budgets and the aggregators of LLM calls for one configuration."""

    def __init__(
        self,
        *,
        prices: PriceTable,
        model_tiers: Mapping[str, str],
        budgets: Budgets,
        metrics: LLMMetrics,
        quality: QualityTracker,
        capture_content: bool = False,
    ) -> None:
        self.prices = prices
        self.model_tiers = model_tiers
        self.budgets = budgets
        self.metrics = metrics
        self.quality = quality
        self.capture_content = capture_content
        self._tiers: dict[str, str] = {}  # model name -> tier, filled by the calls
        self._tiers_lock = threading.Lock()

    def tier_of(self, model: str) -> str:
        """The model's tier: the configured map first, then the price table; cached per configuration."""
        tier = self._tiers.get(model)
        if tier is None:
            override = self.model_tiers.get(normalize_model(model))
            price = self.prices.lookup(model)
            tier = override or (price.tier if price is not None else UNKNOWN_TIER)
            with self._tiers_lock:
                if len(self._tiers) < _TIER_CACHE_LIMIT:
                    self._tiers[model] = tier
        return tier
