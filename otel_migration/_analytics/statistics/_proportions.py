"""Two proportions (error rates): the pooled score test with Newcombe's hybrid score interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._checks import _confidence, _count
from ._distributions import normal_ppf, normal_sf


@dataclass(frozen=True, slots=True)
class ProportionResult:
    """Two rates compared: a two-sided p-value and an interval for ``rate_candidate - rate_control``."""

    p_value: float
    rate_control: float
    rate_candidate: float
    difference: float
    low: float
    high: float


# --------------------------------------------------------------------------------------------------
# Two proportions
# --------------------------------------------------------------------------------------------------


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion.

    Parameters
    ----------
    successes : int
        Events counted, ``0 <= successes <= n``.
    n : int
        Trials, at least 1.
    z : float
        The normal quantile for the confidence level.

    Returns
    -------
    tuple of float
        The lower and upper bounds; exactly 0 and 1 at the ends.
    """
    rate = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (rate + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(rate * (1.0 - rate) / n + z2 / (4.0 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def two_proportion_test(
    failures_control: int,
    n_control: int,
    failures_candidate: int,
    n_candidate: int,
    *,
    confidence: float = 0.95,
) -> ProportionResult:
    """Compare two rates, such as error rates: a p-value and an interval for their difference.

    Parameters
    ----------
    failures_control, n_control : int
        Events and trials for the control; ``0 <= failures <= n`` and ``n >= 1``.
    failures_candidate, n_candidate : int
        The same for the candidate.
    confidence : float
        The interval's confidence level, strictly between 0 and 1.

    Returns
    -------
    ProportionResult
        ``p_value`` is the two-sided pooled two-proportion z-test (the score test; 1.0 when the two
        rates are equal, zero rates included). ``difference`` is ``rate_candidate - rate_control``,
        and ``[low, high]`` is Newcombe's (1998) hybrid score interval, his method 10, built from
        the Wilson intervals of the two rates: well defined and inside [-1, 1] at rates 0 and 1.

    Raises
    ------
    ValueError
        If a count is not an integer or is out of range, or `confidence` is.
    """
    n1 = _count(n_control, "n_control", low=1)
    n2 = _count(n_candidate, "n_candidate", low=1)
    f1 = _count(failures_control, "failures_control", low=0, high=n1, high_name="n_control")
    f2 = _count(failures_candidate, "failures_candidate", low=0, high=n2, high_name="n_candidate")
    level = _confidence(confidence)
    r1, r2 = f1 / n1, f2 / n2
    pooled = (f1 + f2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if r1 == r2 or variance <= 0.0:
        p_value = 1.0
    else:
        p_value = min(1.0, 2.0 * normal_sf(abs(r2 - r1) / math.sqrt(variance)))
    z = normal_ppf(0.5 + level / 2.0)
    low1, high1 = _wilson(f1, n1, z)
    low2, high2 = _wilson(f2, n2, z)
    difference = r2 - r1
    low = difference - math.hypot(r2 - low2, high1 - r1)
    high = difference + math.hypot(high2 - r2, r1 - low1)
    return ProportionResult(
        p_value=p_value,
        rate_control=r1,
        rate_candidate=r2,
        difference=difference,
        low=max(-1.0, low),
        high=min(1.0, high),
    )
