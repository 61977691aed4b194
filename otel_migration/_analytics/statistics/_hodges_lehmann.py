"""Hodges-Lehmann: the shift estimate that goes with the rank test, with its confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._checks import _confidence, _count, _sample
from ._distributions import normal_ppf


@dataclass(frozen=True, slots=True)
class ShiftEstimate:
    """The Hodges-Lehmann estimate of the shift ``candidate - control`` and its confidence interval.

    ``low`` and ``high`` are infinite when the samples are too small to reach ``confidence`` at all.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_control: int
    n_candidate: int


# --------------------------------------------------------------------------------------------------
# Hodges-Lehmann
# --------------------------------------------------------------------------------------------------


def _thin(ordered: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.float64]:
    """Evenly spaced order statistics of a sorted sample.

    Parameters
    ----------
    ordered : ndarray of float64
        The sample, sorted.
    size : int
        How many to keep, at most ``ordered.size``.

    Returns
    -------
    ndarray of float64
        The order statistics at the mid-quantiles ``(i + 1/2) / size``, ``i = 0..size-1``.
    """
    if size >= ordered.size:
        return ordered
    positions = ((np.arange(size) + 0.5) * (ordered.size / size)).astype(np.int64)
    return ordered[positions]


def hodges_lehmann(
    control: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    max_pairs: int = 4_000_000,
) -> ShiftEstimate:
    """The Hodges-Lehmann estimate of the shift ``candidate - control`` and its confidence interval.

    Parameters
    ----------
    control, candidate : array_like
        The two samples, one-dimensional, non-empty, finite.
    confidence : float
        The interval's confidence level, strictly between 0 and 1.
    max_pairs : int
        The most pairwise differences held in memory (8 bytes each). Beyond it both samples are
        thinned, deterministically, to evenly spaced order statistics (the mid-quantiles) in the
        proportion of their sizes, and the estimate and the interval are those of the thinned
        samples: the interval then has the width the smaller samples warrant, wider than the full
        samples would give. The default holds 32 MB of differences.

    Returns
    -------
    ShiftEstimate
        ``estimate`` is the median of the ``N = n1 * n2`` differences ``y_j - x_i``. The interval is
        the distribution-free one of Lehmann (1975) and Bauer (1972): ``[D(k), D(N-1-k)]`` over the
        sorted differences, counted from 0, where ``k = floor(N/2 - 1/2 - z * sqrt(n1*n2*(n1+n2+1)/12))``
        is the normal approximation, with continuity correction, to the largest ``k`` such that
        ``P(U <= k) <= (1 - confidence) / 2``. Against the exact distribution at the 95% level, for
        all sizes up to 25 x 25, it gives that ``k`` in 4 cases out of 5 and one less (a slightly
        wider interval) otherwise; without the correction it would be one more, too narrow, in a
        quarter of them. When ``k < 0`` no pair of order statistics reaches the level and the bounds
        are infinite. ``n_control`` and ``n_candidate`` are the sizes given, even when thinned.

    Raises
    ------
    ValueError
        If a sample is empty or not finite, or `confidence` or `max_pairs` is out of range.
    """
    x = np.sort(_sample(control, "control", finite=True))
    y = np.sort(_sample(candidate, "candidate", finite=True))
    level = _confidence(confidence)
    limit = _count(max_pairs, "max_pairs", low=1)
    n1, n2 = x.size, y.size
    if n1 * n2 > limit:
        scale = math.sqrt(limit / (n1 * n2))
        m1 = min(n1, max(1, math.floor(n1 * scale)))
        m2 = min(n2, limit // m1)
        x, y = _thin(x, m1), _thin(y, m2)
    m1, m2 = x.size, y.size
    differences = np.subtract.outer(y, x).ravel()
    total = differences.size
    sigma = math.sqrt(m1 * m2 * (m1 + m2 + 1) / 12.0)
    k = math.floor(total / 2.0 - 0.5 - normal_ppf(0.5 + level / 2.0) * sigma)
    middle = [(total - 1) // 2, total // 2]
    wanted = sorted({*middle, k, total - 1 - k}) if k >= 0 else middle
    ordered = np.partition(differences, wanted)
    estimate = 0.5 * (float(ordered[middle[0]]) + float(ordered[middle[1]]))
    if k >= 0:
        low, high = float(ordered[k]), float(ordered[total - 1 - k])
    else:
        low, high = -math.inf, math.inf
    return ShiftEstimate(
        estimate=estimate, low=low, high=high, confidence=level, n_control=n1, n_candidate=n2
    )
