"""Input checks shared by the tests: ValueError messages that name the argument and its value."""

from __future__ import annotations

import operator
import reprlib
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Alternative = Literal["two-sided", "less", "greater"]

_ALTERNATIVES: Final = ("two-sided", "less", "greater")
# scipy's "auto" rule: the exact distribution when the smaller sample has at most this many
# observations and there are no ties, the normal approximation otherwise.
_EXACT_MAX_N: Final = 8
_SHARES_TOLERANCE: Final = 1e-9


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _sample(values: npt.ArrayLike, name: str, *, finite: bool) -> npt.NDArray[np.float64]:
    """Check one sample of observations.

    Parameters
    ----------
    values : array_like
        The observations, one-dimensional.
    name : str
        The argument's name, for the error message.
    finite : bool
        Whether infinities are rejected too (NaN always is).

    Returns
    -------
    ndarray of float64
        The observations.

    Raises
    ------
    ValueError
        If `values` is not numeric, not one-dimensional, empty, or holds NaN (or an infinity).
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {reprlib.repr(values)}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one observation is needed")
    bad = ~np.isfinite(array) if finite else np.isnan(array)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        what = "finite numbers" if finite else "numbers, not NaN"
        raise ValueError(f"{name}[{index}] = {float(array[index])!r}: observations must be {what}")
    return array


def _confidence(confidence: float) -> float:
    """Check a confidence level.

    Parameters
    ----------
    confidence : float
        The level, strictly between 0 and 1.

    Returns
    -------
    float
        The level as a float.

    Raises
    ------
    ValueError
        If `confidence` is not strictly between 0 and 1.
    """
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return value


def _count(value: int, name: str, *, low: int, high: int | None = None, high_name: str = "") -> int:
    """Check an integer count.

    Parameters
    ----------
    value : int
        The count.
    name : str
        The argument's name, for the error message.
    low : int
        The smallest value allowed.
    high : int, optional
        The largest value allowed.
    high_name : str
        The name of the argument that sets `high`, for the error message.

    Returns
    -------
    int
        The count.

    Raises
    ------
    ValueError
        If `value` is not an integer or is out of range.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError as exc:
        raise ValueError(f"{name} must be an integer count, got {value!r}") from exc
    if count < low:
        raise ValueError(f"{name} must be at least {low}, got {count}")
    if high is not None and count > high:
        raise ValueError(f"{name} = {count} exceeds {high_name} = {high}")
    return count
