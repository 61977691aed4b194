"""Sample-ratio mismatch: is the traffic split the configured one (Pearson's chi-square)."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._checks import _SHARES_TOLERANCE, _count
from ._distributions import _chi2_sf


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Pearson's chi-square test of observed group sizes against the configured shares."""

    p_value: float
    chi_square: float
    expected: tuple[float, ...]


# --------------------------------------------------------------------------------------------------
# Sample ratio mismatch
# --------------------------------------------------------------------------------------------------


def sample_ratio_mismatch(
    observed: Sequence[int] | npt.NDArray[np.integer[Any]],
    expected_shares: Sequence[float] | npt.NDArray[np.floating[Any]],
) -> SrmResult:
    """Test whether the observed group sizes fit the configured traffic split.

    Parameters
    ----------
    observed : sequence of int
        How many units each group received, non-negative integers, at least two groups.
    expected_shares : sequence of float
        The configured share of each group, positive and summing to 1 (within 1e-9).

    Returns
    -------
    SrmResult
        Pearson's chi-square statistic ``sum((o - e)**2 / e)`` with ``e = total * share``, its
        p-value from the chi-square distribution with ``k - 1`` degrees of freedom, and the expected
        counts. A small p-value means the split is broken and other comparisons are not to be
        trusted. With no units at all the p-value is 1.0.

    Raises
    ------
    ValueError
        If a count is negative or not an integer, a share is not positive, the shares do not sum
        to 1, or the two sequences differ in length or have fewer than two groups.
    """
    counts = [_count(value, f"observed[{i}]", low=0) for i, value in enumerate(observed)]
    try:
        shares = np.asarray(expected_shares, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"expected_shares must be a sequence of numbers, got {reprlib.repr(expected_shares)}"
        ) from exc
    if shares.ndim != 1 or shares.size != len(counts):
        raise ValueError(f"observed has {len(counts)} groups but expected_shares has shape {shares.shape}")
    if len(counts) < 2:
        raise ValueError(f"at least two groups are needed, got {len(counts)}")
    not_positive = ~(np.isfinite(shares) & (shares > 0.0))
    if not_positive.any():
        index = int(np.flatnonzero(not_positive)[0])
        raise ValueError(f"expected_shares[{index}] = {float(shares[index])!r} must be positive")
    share_sum = math.fsum(shares.tolist())
    if abs(share_sum - 1.0) > _SHARES_TOLERANCE:
        raise ValueError(f"expected_shares must sum to 1, they sum to {share_sum!r}")
    total = sum(counts)
    expected = total * shares
    if total == 0:
        return SrmResult(p_value=1.0, chi_square=0.0, expected=tuple(float(e) for e in expected))
    chi_square = float(np.sum((np.asarray(counts, dtype=np.float64) - expected) ** 2 / expected))
    return SrmResult(
        p_value=_chi2_sf(chi_square, len(counts) - 1),
        chi_square=chi_square,
        expected=tuple(float(e) for e in expected),
    )
