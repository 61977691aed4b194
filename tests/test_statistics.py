"""The statistics behind a verdict: known answers from published examples and reference software,
properties over seeded simulations, and the errors that bad input raises.

Reference values were computed once, outside this project, and hard-coded with their source:
scipy 1.17.1, statsmodels 0.15.0 and R 4.2 (Debian's r-base-core), each named where used.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from otel_migration._analytics.statistics import (
    hodges_lehmann,
    holm,
    mann_whitney_u,
    normal_ppf,
    normal_sf,
    sample_ratio_mismatch,
    two_proportion_test,
)
from otel_migration._analytics.statistics._distributions import _chi2_sf

# The scipy.stats.mannwhitneyu docs example: ages of 5 male and 4 female authors.
MALES = [19, 22, 16, 29, 24]
FEMALES = [20, 11, 17, 12]


# --------------------------------------------------------------------------------------------------
# Mann-Whitney U: known answers
# --------------------------------------------------------------------------------------------------


def test_mann_whitney_scipy_docs_example_is_exact() -> None:
    # scipy docs: mannwhitneyu(males, females, method="exact") -> U1 = 17.0, p = 0.1111 (= 14/126).
    result = mann_whitney_u(FEMALES, MALES)
    assert result.u == 17.0
    assert result.method == "exact"
    assert result.p_value == pytest.approx(14 / 126, rel=1e-12)
    assert round(result.p_value, 4) == 0.1111
    assert (result.n_control, result.n_candidate) == (4, 5)
    # The candidate's U counts pairs where the candidate is larger: the roles swapped give 20 - 17.
    swapped = mann_whitney_u(MALES, FEMALES)
    assert swapped.u == 3.0
    assert swapped.p_value == pytest.approx(result.p_value, rel=1e-12)


def test_mann_whitney_one_sided_scipy_docs_example() -> None:
    # scipy docs: mannwhitneyu(females, males, alternative="less", method="exact") -> p = 0.0556 (7/126).
    less = mann_whitney_u(MALES, FEMALES, alternative="less")
    assert less.p_value == pytest.approx(0.05555555555555555, rel=1e-12)
    greater = mann_whitney_u(FEMALES, MALES, alternative="greater")
    assert greater.p_value == pytest.approx(7 / 126, rel=1e-12)
    # The other direction has all the mass: P(U >= 3) = 1 - P(U <= 2) = 1 - 4/126.
    assert mann_whitney_u(MALES, FEMALES, alternative="greater").p_value == pytest.approx(122 / 126)


@pytest.mark.parametrize(
    ("alternative", "expected_p"),
    [
        # scipy 1.17.1 mannwhitneyu(candidate, control, method="asymptotic", alternative=...);
        # R 4.2 wilcox.test(candidate, control, exact=FALSE, correct=TRUE) gives W = 83 and the
        # same p-values to 1e-16 (0.050966715782253015, 0.97844965866504219, 0.025483357891126508).
        ("two-sided", 0.05096671578225301),
        ("less", 0.9784496586650422),
        ("greater", 0.025483357891126504),
    ],
)
def test_mann_whitney_with_ties_matches_scipy_asymptotic(alternative: str, expected_p: float) -> None:
    control = [1, 2, 2, 3, 3, 3, 4, 5, 5, 9]
    candidate = [2, 3, 4, 4, 5, 6, 6, 7, 8, 9, 10]
    result = mann_whitney_u(control, candidate, alternative=alternative)  # type: ignore[arg-type]
    assert result.method == "asymptotic"
    assert result.u == 83.0
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)


@pytest.mark.parametrize(
    ("alternative", "expected_p"),
    [
        # scipy 1.17.1 mannwhitneyu(candidate, control, alternative=...), method "auto" -> exact,
        # because the smaller sample has 3 <= 8 observations and there are no ties.
        ("two-sided", 0.8904959625804891),
        ("less", 0.5551239511393734),
        ("greater", 0.44524798129024457),
    ],
)
def test_mann_whitney_exact_when_one_sample_is_small(alternative: str, expected_p: float) -> None:
    control = [0.1001, 1.7003, 3.9007]
    candidate = np.arange(2000) / 500.0
    result = mann_whitney_u(control, candidate, alternative=alternative)  # type: ignore[arg-type]
    assert result.method == "exact"
    assert result.u == 3147.0
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)


def test_mann_whitney_exact_distribution_matches_full_enumeration() -> None:
    # Independent of any reference software: every way of labelling m + n distinct values.
    for m, n in [(1, 1), (2, 3), (3, 3), (3, 5), (4, 6), (5, 5)]:
        values = np.arange(m + n, dtype=float)
        all_u = []
        for chosen in itertools.combinations(range(m + n), n):
            candidate = values[list(chosen)]
            all_u.append(sum(int(y > x) for y in candidate for x in np.delete(values, list(chosen))))
        u_values = np.array(all_u)
        for chosen in [tuple(range(n)), tuple(range(m, m + n)), tuple(range(0, m + n, 2))[:n]]:
            if len(chosen) != n:
                continue
            control = np.delete(values, list(chosen))
            candidate = values[list(chosen)]
            result = mann_whitney_u(control, candidate, alternative="greater")
            assert result.method == "exact"
            assert result.p_value == pytest.approx(np.mean(u_values >= result.u), rel=1e-12), (m, n)
            less = mann_whitney_u(control, candidate, alternative="less")
            assert less.p_value == pytest.approx(np.mean(u_values <= result.u), rel=1e-12), (m, n)


def test_mann_whitney_switches_to_asymptotic_like_scipy_auto() -> None:
    rng = np.random.default_rng(7)
    assert mann_whitney_u(rng.normal(size=8), rng.normal(size=30)).method == "exact"
    assert mann_whitney_u(rng.normal(size=9), rng.normal(size=9)).method == "asymptotic"
    assert mann_whitney_u([1.0, 2.0, 2.0], [2.0, 3.0]).method == "asymptotic"  # ties


# --------------------------------------------------------------------------------------------------
# Mann-Whitney U: properties
# --------------------------------------------------------------------------------------------------


def test_identical_samples_never_give_a_small_p() -> None:
    rng = np.random.default_rng(11)
    for n in [1, 2, 5, 8, 9, 40, 300]:
        sample = rng.lognormal(size=n)
        for alternative in ("two-sided", "less", "greater"):
            result = mann_whitney_u(sample, sample.copy(), alternative=alternative)
            assert result.p_value == 1.0 if alternative == "two-sided" else result.p_value > 0.5
            assert result.u == n * n / 2


def test_all_values_equal_gives_p_one_without_dividing_by_zero() -> None:
    for alternative in ("two-sided", "less", "greater"):
        result = mann_whitney_u([3.0] * 20, [3.0] * 25, alternative=alternative)
        assert result.p_value == 1.0
        assert result.u == 20 * 25 / 2
    assert mann_whitney_u([1.0], [1.0]).p_value == 1.0


def test_a_half_standard_deviation_shift_is_detected() -> None:
    rng = np.random.default_rng(2024)
    detected = 0
    for _ in range(100):
        control = rng.normal(0.0, 1.0, 200)
        candidate = rng.normal(0.5, 1.0, 200)
        detected += mann_whitney_u(control, candidate).p_value < 0.01
        assert mann_whitney_u(control, candidate, alternative="greater").p_value < 0.05
    assert detected >= 95, detected


def test_false_positive_rate_under_the_null_is_nominal() -> None:
    rng = np.random.default_rng(99)
    runs = 2000
    samples = rng.lognormal(size=(runs, 100))  # continuous and skewed, like latencies
    positives = sum(mann_whitney_u(row[:50], row[50:]).p_value < 0.05 for row in samples)
    assert 0.035 <= positives / runs <= 0.065, positives


def test_infinite_values_rank_like_any_other() -> None:
    result = mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, math.inf], alternative="greater")
    assert result.u == 9.0
    assert result.p_value == pytest.approx(1 / 20)


# --------------------------------------------------------------------------------------------------
# Mann-Whitney U: bad input
# --------------------------------------------------------------------------------------------------


def test_mann_whitney_rejects_empty_and_nan_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="control is empty"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="candidate is empty"):
        mann_whitney_u([1.0], [])
    with pytest.raises(ValueError, match=r"candidate\[1\] = nan"):
        mann_whitney_u([1.0, 2.0], [1.0, math.nan])
    with pytest.raises(ValueError, match="control must be one-dimensional"):
        mann_whitney_u([[1.0, 2.0]], [1.0])
    with pytest.raises(ValueError, match="control must be a sequence of numbers"):
        mann_whitney_u(["fast", "slow"], [1.0])
    with pytest.raises(ValueError, match="'sideways'"):
        mann_whitney_u([1.0], [2.0], alternative="sideways")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# The normal and chi-square distributions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # scipy 1.17.1 norm.ppf(p); R qnorm agrees to the last digit or two.
        (0.975, 1.959963984540054),
        (0.025, -1.9599639845400545),
        (0.95, 1.6448536269514722),
        (1e-10, -6.361340902404056),
        (1e-300, -37.0470962993612),
        (0.5, 0.0),
    ],
)
def test_normal_ppf_matches_scipy(p: float, expected: float) -> None:
    assert normal_ppf(p) == pytest.approx(expected, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        # scipy 1.17.1 norm.sf(z); R pnorm(z, lower.tail=FALSE) agrees.
        (1.96, 0.024997895148220435),
        (5.0, 2.866515718791933e-07),
        (10.0, 7.61985302416047e-24),
        (-1.0, 0.8413447460685429),
    ],
)
def test_normal_sf_matches_scipy(z: float, expected: float) -> None:
    assert normal_sf(z) == pytest.approx(expected, rel=1e-13)


def test_normal_ppf_inverts_the_cdf_and_handles_the_ends() -> None:
    for p in np.linspace(1e-6, 1 - 1e-6, 1001):
        z = normal_ppf(float(p))
        assert 1.0 - normal_sf(z) == pytest.approx(p, rel=1e-12, abs=1e-15)
        assert normal_ppf(1.0 - float(p)) == pytest.approx(-z, rel=1e-9, abs=1e-12)
    assert normal_ppf(0.0) == -math.inf
    assert normal_ppf(1.0) == math.inf
    assert normal_sf(math.inf) == 0.0 and normal_sf(-math.inf) == 1.0
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=f"got {bad!r}"):
            normal_ppf(bad)
    with pytest.raises(ValueError, match="nan"):
        normal_sf(math.nan)


@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [
        # scipy 1.17.1 chi2.sf(x, df); R 4.2 pchisq(x, df, lower.tail=FALSE) agrees to 1e-13.
        (3.841458820694124, 1, 0.04999999999999989),
        (0.5, 2, 0.7788007830714049),
        (9.9009900990099, 3, 0.019426779324105085),
        (30.0, 4, 4.894437128029217e-06),
        (0.5, 5, 0.9921232932326296),
        (3.841458820694124, 7, 0.7978465341945319),
        (30.0, 10, 0.000856641210775301),
        (12.5, 30, 0.9979413696217942),
        (80.0, 30, 1.9756232434910563e-06),
        (120.0, 100, 0.08440668109369177),
        (260.0, 250, 0.3187818046287956),
        (0.001, 3, 0.9999915920809419),
    ],
)
def test_chi_square_survival_matches_scipy(x: float, df: int, expected: float) -> None:
    assert _chi2_sf(x, df) == pytest.approx(expected, rel=1e-11)


def test_chi_square_survival_edges() -> None:
    assert _chi2_sf(0.0, 3) == 1.0
    assert _chi2_sf(math.inf, 3) == 0.0
    # Series and continued fraction meet without a jump at x / 2 = df / 2 + 1.
    below, above = _chi2_sf(2 * 4.0 - 1e-9, 6), _chi2_sf(2 * 4.0 + 1e-9, 6)
    assert below == pytest.approx(above, rel=1e-8)
    with pytest.raises(ValueError, match="got 0"):
        _chi2_sf(1.0, 0)


# --------------------------------------------------------------------------------------------------
# Hodges-Lehmann
# --------------------------------------------------------------------------------------------------


def test_hodges_lehmann_by_hand_and_against_r() -> None:
    # candidate = males, control = females. The 20 differences y - x:
    #   16 - [20 11 17 12] = -4  5 -1  4      19 - ... = -1  8  2  7      22 - ... =  2 11  5 10
    #   24 - ...           =  4 13  7 12      29 - ... =  9 18 12 17
    # sorted: -4 -1 -1 2 2 4 4 5 5 7 | 7 8 9 10 11 12 12 13 17 18; the median is (7 + 7) / 2 = 7.
    # sigma = sqrt(4*5*10/12) = 4.0825, k = floor(10 - 0.5 - 1.95996*4.0825) = floor(1.498) = 1,
    # so the interval is [D(1), D(18)] counted from 0 = [-1, 17].
    # R 4.2 wilcox.test(males, females, conf.int=TRUE) (exact): estimate 7, interval [-1, 17].
    result = hodges_lehmann(FEMALES, MALES)
    assert (result.estimate, result.low, result.high) == (7.0, -1.0, 17.0)
    assert (result.n_control, result.n_candidate, result.confidence) == (4, 5, 0.95)


def test_hodges_lehmann_ten_by_ten_against_r() -> None:
    control = [0.8, 1.9, 2.3, 3.1, 3.3, 4.4, 4.9, 5.6, 6.2, 7.7]
    candidate = [2.6, 3.5, 4.2, 4.8, 5.1, 6.0, 6.9, 7.3, 8.8, 9.4]
    # R 4.2 wilcox.test(candidate, control, conf.int=TRUE, exact=TRUE): estimate 1.75,
    # 95% interval [-0.5, 4.0]; with conf.level=0.9: [-0.1, 3.8].
    result = hodges_lehmann(control, candidate)
    assert result.estimate == pytest.approx(1.75)
    assert (result.low, result.high) == pytest.approx((-0.5, 4.0))
    narrower = hodges_lehmann(control, candidate, confidence=0.9)
    assert (narrower.low, narrower.high) == pytest.approx((-0.1, 3.8))


@pytest.mark.parametrize(
    ("n", "critical"),
    # The exact two-sided 5% critical values of U for equal sample sizes, as printed in the usual
    # Mann-Whitney tables and given by R's qwilcox(0.025, n, n) - 1. The normal approximation with
    # continuity correction hits them except at n = 8, where it is one lower (wider, conservative).
    [(5, 2), (6, 5), (7, 8), (8, 13), (9, 17), (10, 23), (20, 127)],
)
def test_hodges_lehmann_rank_matches_the_exact_tables(n: int, critical: int) -> None:
    # With x_i = -i * n and y_j = j the n * n differences y_j - x_i = j + i * n are the integers
    # 0 .. n*n - 1, each once, so a bound is the index of the order statistic chosen.
    result = hodges_lehmann([-i * n for i in range(n)], list(range(n)))
    k = int(result.low)
    assert k == critical or (n == 8 and k == critical - 1)
    assert int(result.high) == n * n - 1 - k  # symmetric


def test_hodges_lehmann_interval_covers_the_true_shift() -> None:
    rng = np.random.default_rng(5)
    runs, shift, covered = 400, 0.7, 0
    for _ in range(runs):
        control = rng.exponential(1.0, 25)  # skewed, and the shift model holds exactly
        candidate = rng.exponential(1.0, 35) + shift
        result = hodges_lehmann(control, candidate)
        covered += result.low <= shift <= result.high
    assert 0.90 <= covered / runs <= 0.99, covered


def test_hodges_lehmann_recovers_a_shift_and_is_antisymmetric() -> None:
    rng = np.random.default_rng(8)
    control = rng.normal(10.0, 2.0, 300)
    candidate = rng.normal(11.0, 2.0, 400)
    forward = hodges_lehmann(control, candidate)
    backward = hodges_lehmann(candidate, control)
    assert forward.estimate == pytest.approx(-backward.estimate)
    assert (forward.low, forward.high) == pytest.approx((-backward.high, -backward.low))
    assert forward.low < 1.0 < forward.high
    assert forward.low > 0.0


def test_hodges_lehmann_thins_large_samples_deterministically() -> None:
    rng = np.random.default_rng(3)
    control = rng.normal(0.0, 1.0, 3000)
    candidate = rng.normal(0.3, 1.0, 2000)
    full = hodges_lehmann(control, candidate)
    thinned = hodges_lehmann(control, candidate, max_pairs=10_000)
    assert thinned == hodges_lehmann(control, candidate, max_pairs=10_000)
    assert (thinned.n_control, thinned.n_candidate) == (3000, 2000)
    assert thinned.estimate == pytest.approx(full.estimate, abs=0.05)
    assert thinned.high - thinned.low > full.high - full.low  # fewer pairs: a wider interval
    assert thinned.low < full.estimate < thinned.high
    # A lopsided pair of samples stays within the budget too.
    one = hodges_lehmann([0.0], np.arange(100_000, dtype=float), max_pairs=1000)
    assert one.estimate == pytest.approx(50_000, rel=0.01)


def test_hodges_lehmann_too_small_for_the_level_gives_infinite_bounds() -> None:
    # Two against two: only 6 orderings, so no interval can be 95% sure.
    result = hodges_lehmann([1.0, 2.0], [3.0, 5.0])
    assert result.estimate == 2.5
    assert (result.low, result.high) == (-math.inf, math.inf)


def test_hodges_lehmann_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="control is empty"):
        hodges_lehmann([], [1.0])
    with pytest.raises(ValueError, match=r"candidate\[0\] = nan"):
        hodges_lehmann([1.0], [math.nan])
    with pytest.raises(ValueError, match=r"control\[0\] = inf: observations must be finite"):
        hodges_lehmann([math.inf], [1.0])
    for bad in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match=f"confidence .* got {bad!r}"):
            hodges_lehmann([1.0], [2.0], confidence=bad)
    with pytest.raises(ValueError, match="max_pairs must be at least 1, got 0"):
        hodges_lehmann([1.0], [2.0], max_pairs=0)


# --------------------------------------------------------------------------------------------------
# Holm
# --------------------------------------------------------------------------------------------------


def test_holm_textbook_example() -> None:
    # Sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    # 0.02, 0.03, 0.06, 0.06; back in the given order. R p.adjust(p, "holm") and statsmodels
    # multipletests(p, method="holm") give the same.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_holm_with_ties_and_capping_against_statsmodels() -> None:
    # statsmodels 0.15.0 multipletests(p, method="holm")[1].
    p = [0.0123, 0.0004, 0.2, 0.049, 0.011, 0.5, 0.011]
    expected = [0.066, 0.0028, 0.4, 0.147, 0.066, 0.5, 0.066]
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12)
    np.testing.assert_allclose(holm([0.3, 0.6, 0.9]), [0.9, 1.0, 1.0], rtol=1e-12)  # capped at 1
    assert holm([]).shape == (0,)
    assert holm([0.04]).tolist() == [0.04]


def test_holm_never_lowers_a_p_and_is_monotone() -> None:
    rng = np.random.default_rng(17)
    for _ in range(500):
        m = int(rng.integers(1, 30))
        p = rng.uniform(size=m) ** 3  # some small ones
        adjusted = holm(p)
        assert np.all(adjusted >= p)
        assert np.all(adjusted <= 1.0)
        in_sorted_order = adjusted[np.argsort(p, kind="stable")]
        assert np.all(np.diff(in_sorted_order) >= 0.0)
        assert np.all(adjusted <= np.minimum(m * p, 1.0) + 1e-15)  # never worse than Bonferroni


def test_holm_rejects_p_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"p_values\[1\] = 1.2"):
        holm([0.5, 1.2])
    with pytest.raises(ValueError, match=r"p_values\[0\] = -0.01"):
        holm([-0.01])
    with pytest.raises(ValueError, match=r"p_values\[2\] = nan"):
        holm([0.1, 0.2, math.nan])


# --------------------------------------------------------------------------------------------------
# Two proportions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "control", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10, examples (a)-(h),
        # written there as p1 - p2 = candidate - control here. statsmodels 0.15.0
        # confint_proportions_2indep(..., method="newcomb") gives the same to 4 places, and so do
        # the tests of the R package propint for (a) and (b).
        ((56, 70), (48, 80), 0.0524, 0.3339),
        ((9, 10), (3, 10), 0.1705, 0.8090),
        ((6, 7), (2, 7), 0.0582, 0.8062),
        ((5, 56), (0, 29), -0.0381, 0.1926),
        ((0, 10), (0, 20), -0.1611, 0.2775),
        ((0, 10), (0, 10), -0.2775, 0.2775),
        ((10, 10), (0, 20), 0.6791, 1.0),
        ((10, 10), (0, 10), 0.6075, 1.0),
    ],
)
def test_newcombe_interval_matches_the_paper(
    candidate: tuple[int, int], control: tuple[int, int], low: float, high: float
) -> None:
    result = two_proportion_test(control[0], control[1], candidate[0], candidate[1])
    assert result.difference == pytest.approx(candidate[0] / candidate[1] - control[0] / control[1])
    assert round(result.low, 4) == low
    assert round(result.high, 4) == high
    assert result.low <= result.difference <= result.high


@pytest.mark.parametrize(
    ("candidate", "control", "expected_p"),
    [
        # statsmodels 0.15.0 proportions_ztest([a, b], [m, n]) (pooled variance, two-sided).
        ((56, 70), (48, 80), 0.00804508136819656),
        ((9, 10), (3, 10), 0.006169899320544151),
        ((5, 56), (0, 29), 0.09718656817057973),
        ((10, 10), (0, 20), 4.320463057827506e-08),
    ],
)
def test_pooled_z_test_matches_statsmodels(
    candidate: tuple[int, int], control: tuple[int, int], expected_p: float
) -> None:
    result = two_proportion_test(control[0], control[1], candidate[0], candidate[1])
    assert result.p_value == pytest.approx(expected_p, rel=1e-10)
    # Hand check for (a): pooled 104/150, se = sqrt(p(1-p)(1/70+1/80)) = 0.07547, z = 0.2/0.07547 = 2.650.
    if candidate == (56, 70):
        assert result.p_value == pytest.approx(2 * normal_sf(2.6501719512585336), rel=1e-12)


def test_equal_rates_give_p_one_including_zero_and_one() -> None:
    for args in [(0, 100, 0, 5000), (100, 100, 7, 7), (5, 100, 50, 1000)]:
        result = two_proportion_test(*args)
        assert result.p_value == 1.0
        assert result.difference == 0.0
        assert result.low < 0.0 < result.high
    all_failed = two_proportion_test(0, 10, 10, 10)
    assert all_failed.high == 1.0 and all_failed.rate_candidate == 1.0


def test_two_proportion_detects_a_doubled_error_rate() -> None:
    result = two_proportion_test(100, 10_000, 200, 10_000)
    assert result.p_value < 1e-6
    assert result.low > 0.0
    assert (result.rate_control, result.rate_candidate) == (0.01, 0.02)


def test_two_proportion_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="failures_candidate = 11 exceeds n_candidate = 10"):
        two_proportion_test(0, 10, 11, 10)
    with pytest.raises(ValueError, match="failures_control must be at least 0, got -1"):
        two_proportion_test(-1, 10, 0, 10)
    with pytest.raises(ValueError, match="n_control must be at least 1, got 0"):
        two_proportion_test(0, 0, 0, 10)
    with pytest.raises(ValueError, match=r"n_candidate must be an integer count, got 2\.5"):
        two_proportion_test(0, 10, 0, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"confidence .* got 1\.5"):
        two_proportion_test(0, 10, 0, 10, confidence=1.5)


# --------------------------------------------------------------------------------------------------
# Sample ratio mismatch
# --------------------------------------------------------------------------------------------------


def test_srm_on_a_fifty_fifty_split_by_hand() -> None:
    # 101,000 units at 50/50: expected 50,500 each. chi2 = 2 * 500**2 / 50,500 = 9.90099;
    # with 1 df p = erfc(sqrt(9.90099 / 2)) = 0.0016519. scipy 1.17.1 chisquare([50000, 51000])
    # gives 9.900990099009901 and p = 0.001651898732357361; R chisq.test agrees.
    result = sample_ratio_mismatch([50_000, 51_000], [0.5, 0.5])
    assert result.expected == (50_500.0, 50_500.0)
    assert result.chi_square == pytest.approx(500_000 / 50_500, rel=1e-12)
    assert result.p_value == pytest.approx(0.001651898732357361, rel=1e-10)


def test_srm_three_groups_against_scipy() -> None:
    # scipy 1.17.1 chisquare([1010, 480, 530], [1010, 505, 505]) -> 2.4752475247524752,
    # p = 0.29007268125770974; R chisq.test(c(1010, 480, 530), p = c(.5, .25, .25)) agrees.
    result = sample_ratio_mismatch([1010, 480, 530], [0.5, 0.25, 0.25])
    assert result.chi_square == pytest.approx(2.4752475247524752, rel=1e-12)
    assert result.p_value == pytest.approx(0.29007268125770974, rel=1e-10)


def test_srm_healthy_split_and_empty_traffic() -> None:
    assert sample_ratio_mismatch([5000, 5000], [0.5, 0.5]).p_value == 1.0
    empty = sample_ratio_mismatch([0, 0, 0], [0.2, 0.3, 0.5])
    assert (empty.p_value, empty.chi_square, empty.expected) == (1.0, 0.0, (0.0, 0.0, 0.0))
    assert sample_ratio_mismatch(np.array([900, 100]), np.array([0.9, 0.1])).p_value == 1.0


def test_srm_false_alarms_are_nominal() -> None:
    rng = np.random.default_rng(21)
    counts = rng.multinomial(10_000, [0.2, 0.3, 0.5], size=1000)
    alarms = sum(sample_ratio_mismatch(row.tolist(), [0.2, 0.3, 0.5]).p_value < 0.05 for row in counts)
    assert 0.03 <= alarms / 1000 <= 0.07, alarms


def test_srm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"sum to 0\.9"):
        sample_ratio_mismatch([10, 10], [0.5, 0.4])
    with pytest.raises(ValueError, match=r"sum to 1\.0000000999"):
        sample_ratio_mismatch([10, 10], [0.5, 0.5000001])
    with pytest.raises(ValueError, match=r"expected_shares\[1\] = 0.0 must be positive"):
        sample_ratio_mismatch([10, 10], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"observed\[0\] must be at least 0, got -3"):
        sample_ratio_mismatch([-3, 10], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"observed\[1\] must be an integer count, got 2.5"):
        sample_ratio_mismatch([1, 2.5], [0.5, 0.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="observed has 2 groups but expected_shares has shape"):
        sample_ratio_mismatch([10, 10], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="at least two groups are needed, got 1"):
        sample_ratio_mismatch([10], [1.0])
