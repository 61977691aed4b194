"""Mann-Kendall trend test with the Theil-Sen slope and Sen's distribution-free confidence interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._distributions import normal_ppf, normal_sf

__all__ = ["TrendResult", "mann_kendall"]


@dataclass(frozen=True, slots=True)
class TrendResult:
    """Kendall's S, its z and two-sided p-value; the Theil-Sen slope with its confidence interval."""

    s: int
    z: float
    p_value: float
    slope: float
    intercept: float
    low: float
    high: float
    n: int


def _check(
    times: npt.ArrayLike, values: npt.ArrayLike, confidence: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or x.shape != t.shape:
        raise ValueError(
            f"times and values must be one-dimensional and of one length, got {t.shape} and {x.shape}"
        )
    if t.size < 3:
        raise ValueError(f"a trend needs at least 3 points, got {t.size}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
        raise ValueError("times and values must be finite")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return t, x


def mann_kendall(times: npt.ArrayLike, values: npt.ArrayLike, *, confidence: float = 0.95) -> TrendResult:
    """Is there a monotonic trend in ``values`` over ``times``, and how steep is it?

    Parameters
    ----------
    times, values : array_like
        The points (at least 3); times need not be evenly spaced, and equal times are allowed.
    confidence : float
        Coverage of the slope's interval.

    Returns
    -------
    TrendResult
        ``s`` = sum over pairs i < j (by time) of sign(x_j - x_i); its variance
        n(n-1)(2n+5)/18 less the ties' term; ``z`` with the continuity correction and the two-sided
        normal p-value (Mann 1945, Kendall 1975). The slope is the median of pairwise slopes
        (Theil 1950, Sen 1968) and its interval the order statistics at (N - C)/2 and (N + C)/2 + 1,
        C = z(1 - (1 - confidence)/2) * sd(S), N pairs (Gilbert 1987, as ``scipy.stats.theilslopes``).
        Rank-based: outliers and skew move none of it much, unlike a least-squares fit.
    """
    t, x = _check(times, values, confidence)
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    n = t.size
    i, j = np.triu_indices(n, 1)
    s = int(np.sign(x[j] - x[i]).sum())
    _, tie_counts = np.unique(x, return_counts=True)
    ties = float(np.sum(tie_counts * (tie_counts - 1) * (2 * tie_counts + 5)))
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var_s <= 0:
        z, p_value = 0.0, 1.0
    else:
        z = (s - np.sign(s)) / np.sqrt(var_s)
        p_value = min(1.0, 2 * normal_sf(abs(float(z))))
    dt = t[j] - t[i]
    distinct = dt > 0
    slopes = np.sort((x[j] - x[i])[distinct] / dt[distinct])
    if slopes.size == 0:
        return TrendResult(s, float(z), p_value, 0.0, float(np.median(x)), 0.0, 0.0, n)
    slope = float(np.median(slopes))
    intercept = float(np.median(x) - slope * np.median(t))
    c = normal_ppf(1 - (1 - confidence) / 2) * np.sqrt(max(var_s, 0.0))
    m = slopes.size
    lower_rank = int(np.round((m - c) / 2))  # 1-based rank of the lower bound
    upper_rank = int(np.round((m + c) / 2)) + 1
    low = float(slopes[min(max(lower_rank - 1, 0), m - 1)])
    high = float(slopes[min(max(upper_rank - 1, 0), m - 1)])
    return TrendResult(s, float(z), p_value, slope, intercept, low, high, n)
