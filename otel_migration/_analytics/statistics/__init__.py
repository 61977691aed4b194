"""Statistics for judging a candidate (2.0) against a control (1.0), with numpy and the standard library only.

Each method is chosen for the data a migration produces and for a verdict teams can trust:

- :func:`mann_whitney_u`: latencies are skewed and heavy-tailed, so a rank test (Kayenta's judge)
  rather than a t-test. Small samples without ties get the exact null distribution, larger ones the
  normal approximation with tie and continuity corrections, as ``scipy.stats.mannwhitneyu`` does.
- :func:`hodges_lehmann`: the effect size that goes with that test, the median of all pairwise
  differences, with its distribution-free confidence interval, so a verdict says by how much.
- :func:`holm`: many operations and metrics are judged at once; Holm's step-down method controls the
  family-wise error rate under any dependence and is never less powerful than Bonferroni.
- :func:`two_proportion_test`: error rates. The pooled z-test is the score test (exactly 1.0 when the
  rates are equal); Newcombe's hybrid score interval stays inside [-1, 1] and keeps its coverage
  for the rates of 0 and 1 where the Wald interval collapses.
- :func:`sample_ratio_mismatch`: a traffic split that is not the configured one invalidates every
  other comparison (GrowthBook's check): Pearson's chi-square goodness-of-fit test.
- :func:`mann_kendall`: trends over time (error rates per minute, process memory): Kendall's rank
  test for a monotonic trend and the Theil-Sen slope with Sen's interval, robust to outliers and
  to the skew of counts and memory samples.
- :func:`normal_ppf`, :func:`normal_sf` and the chi-square survival function are implemented here
  so that scipy is not a runtime dependency.
"""

from __future__ import annotations

from ._distributions import normal_ppf, normal_sf
from ._hodges_lehmann import ShiftEstimate, hodges_lehmann
from ._holm import holm
from ._mann_kendall import TrendResult, mann_kendall
from ._mannwhitneyu import MannWhitneyResult, mann_whitney_u
from ._proportions import ProportionResult, two_proportion_test
from ._srm import SrmResult, sample_ratio_mismatch

__all__ = [
    # rank test and its effect size, for latencies and scores
    "MannWhitneyResult",
    "ShiftEstimate",
    "hodges_lehmann",
    "mann_whitney_u",
    # proportions, for error rates
    "ProportionResult",
    "two_proportion_test",
    # the traffic split
    "SrmResult",
    "sample_ratio_mismatch",
    # many comparisons at once
    "holm",
    # trends over time (error trends, memory growth)
    "TrendResult",
    "mann_kendall",
    # the standard normal distribution
    "normal_ppf",
    "normal_sf",
]
