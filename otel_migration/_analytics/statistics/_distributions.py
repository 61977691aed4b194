"""The standard normal and chi-square distributions, so that scipy is not a runtime dependency."""

from __future__ import annotations

import math
from typing import Final

_SQRT2: Final = math.sqrt(2.0)
_SQRT2PI: Final = math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------------
# The standard normal distribution
# --------------------------------------------------------------------------------------------------

# Acklam's rational approximations (relative error below 1.15e-9 before refinement).
_ACKLAM_A: Final = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_ACKLAM_B: Final = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_ACKLAM_C: Final = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_ACKLAM_D: Final = (
    7.784695709041462e-03,
    3.224671290700398e-01,
    2.445134137142996e00,
    3.754408661907416e00,
)
_ACKLAM_P_LOW: Final = 0.02425


def _polyval(coefficients: tuple[float, ...], x: float) -> float:
    """Evaluate a polynomial by Horner's rule.

    Parameters
    ----------
    coefficients : tuple of float
        Coefficients, highest degree first.
    x : float
        The point.

    Returns
    -------
    float
        The polynomial's value at `x`.
    """
    total = 0.0
    for c in coefficients:
        total = total * x + c
    return total


def _lower_normal_ppf(p: float) -> float:
    """Inverse of the standard normal CDF for ``0 < p <= 0.5``, where it is accurate to the last bits.

    Parameters
    ----------
    p : float
        A probability in (0, 0.5].

    Returns
    -------
    float
        The quantile: Acklam's approximation, refined by one Halley step on ``math.erfc``.
    """
    if p < _ACKLAM_P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = _polyval(_ACKLAM_C, q) / (_polyval(_ACKLAM_D, q) * q + 1.0)
    else:
        q = p - 0.5
        r = q * q
        x = _polyval(_ACKLAM_A, r) * q / (_polyval(_ACKLAM_B, r) * r + 1.0)
    if abs(x) < 37.5:  # beyond, exp(x*x/2) overflows; p is then subnormal, below 1e-307
        e = 0.5 * math.erfc(-x / _SQRT2) - p
        u = e * _SQRT2PI * math.exp(x * x / 2.0)
        x -= u / (1.0 + x * u / 2.0)
    return x


def normal_ppf(p: float) -> float:
    """The inverse of the standard normal CDF: ``z`` such that ``P(Z <= z) == p``.

    Parameters
    ----------
    p : float
        A probability in [0, 1]; 0 and 1 give minus and plus infinity.

    Returns
    -------
    float
        The quantile, to about 1e-15 relative error (Acklam's algorithm with one Halley refinement).

    Raises
    ------
    ValueError
        If `p` is outside [0, 1] or NaN.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p <= 0.5:
        return _lower_normal_ppf(p)
    return -_lower_normal_ppf(1.0 - p)  # 1 - p is exact for p >= 0.5


def normal_sf(z: float) -> float:
    """The standard normal survival function ``P(Z > z)``, accurate far into the upper tail.

    Parameters
    ----------
    z : float
        The point; infinities are allowed.

    Returns
    -------
    float
        ``0.5 * erfc(z / sqrt(2))``.

    Raises
    ------
    ValueError
        If `z` is NaN.
    """
    z = float(z)
    if math.isnan(z):
        raise ValueError(f"z must be a number, got {z!r}")
    return 0.5 * math.erfc(z / _SQRT2)


# --------------------------------------------------------------------------------------------------
# The chi-square distribution
# --------------------------------------------------------------------------------------------------

_GAMMA_EPS: Final = 1e-15
_GAMMA_TINY: Final = 1e-300
_GAMMA_MAX_ITERATIONS: Final = 100_000


def _gamma_prefactor(a: float, x: float) -> float:
    """``x**a * exp(-x) / Gamma(a)``, computed in logarithms.

    Parameters
    ----------
    a : float
        Shape, positive.
    x : float
        Point, positive.

    Returns
    -------
    float
        The common factor of the series and the continued fraction.
    """
    return math.exp(a * math.log(x) - x - math.lgamma(a))


def _lower_gamma_series(a: float, x: float) -> float:
    """The regularized lower incomplete gamma function ``P(a, x)`` by its power series.

    Parameters
    ----------
    a : float
        Shape, positive.
    x : float
        Point, with ``0 < x < a + 1`` where the series converges fast.

    Returns
    -------
    float
        ``P(a, x)``.
    """
    term = 1.0 / a
    total = term
    denominator = a
    for _ in range(_GAMMA_MAX_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            return total * _gamma_prefactor(a, x)
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a!r}, x={x!r}")


def _upper_gamma_fraction(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function ``Q(a, x)`` by its continued fraction.

    Parameters
    ----------
    a : float
        Shape, positive.
    x : float
        Point, with ``x >= a + 1`` where the fraction converges fast.

    Returns
    -------
    float
        ``Q(a, x)``, evaluated by the modified Lentz method (Numerical Recipes, ``gcf``).
    """
    b = x + 1.0 - a
    c = 1.0 / _GAMMA_TINY
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _GAMMA_TINY:
            d = _GAMMA_TINY
        c = b + an / c
        if abs(c) < _GAMMA_TINY:
            c = _GAMMA_TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _GAMMA_EPS:
            return h * _gamma_prefactor(a, x)
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a!r}, x={x!r}")


def _chi2_sf(x: float, df: int) -> float:
    """The chi-square survival function ``P(X > x)`` for `df` degrees of freedom.

    Parameters
    ----------
    x : float
        The statistic, non-negative.
    df : int
        Degrees of freedom, at least 1.

    Returns
    -------
    float
        ``Q(df / 2, x / 2)``, the regularized upper incomplete gamma function: the series for
        ``x < a + 1`` (as ``1 - P``), the continued fraction beyond; closed forms for df 1 and 2.
    """
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df!r}")
    if math.isnan(x):
        raise ValueError(f"x must be a number, got {x!r}")
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if df == 1:
        return math.erfc(math.sqrt(x / 2.0))
    if df == 2:
        return math.exp(-x / 2.0)
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, 1.0 - _lower_gamma_series(a, half))
    return _upper_gamma_fraction(a, half)
