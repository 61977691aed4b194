"""Error trend per category: rising, falling or stable, with a test of significance.

Each category's error rate per minute (its errors over all calls of the version in that minute,
minutes without calls left out) over the last 30 minutes goes through the Mann-Kendall test: a
rank test for a monotonic trend that assumes no distribution (error rates are skewed, bounded and
often zero) and is unmoved by a single odd minute. "rising" or "falling" when the two-sided
p-value is below ``alpha`` (0.05), the direction given by the Theil-Sen slope; "stable" otherwise,
and when fewer than 10 minutes had calls. Minutes are not independent (a slow incident spans
several), so read a rising trend as "look here", not as a proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from .statistics import mann_kendall

__all__ = ["ErrorTrend", "TrendState", "error_trend"]

TrendState = Literal["rising", "falling", "stable"]
MIN_MINUTES: Final = 10
ALPHA: Final = 0.05


@dataclass(frozen=True, slots=True)
class ErrorTrend:
    state: TrendState
    slope_per_minute: float
    p_value: float
    minutes: int


def error_trend(minutes: npt.ArrayLike, rates: npt.ArrayLike, *, alpha: float = ALPHA) -> ErrorTrend:
    """The trend of per-minute error ``rates`` at ``minutes`` (minute numbers)."""
    m = np.asarray(minutes, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    if m.size < MIN_MINUTES:
        return ErrorTrend("stable", 0.0, 1.0, int(m.size))
    result = mann_kendall(m, r)
    state: TrendState = "stable"
    if result.p_value < alpha:
        if result.slope > 0 or (result.slope == 0 and result.s > 0):
            state = "rising"
        elif result.slope < 0 or result.s < 0:
            state = "falling"
    return ErrorTrend(state, result.slope, result.p_value, result.n)
