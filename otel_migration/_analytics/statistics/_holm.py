"""Holm's step-down adjustment: many comparisons at once, the family-wise error rate kept."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# --------------------------------------------------------------------------------------------------
# Holm
# --------------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float] | npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Holm-Bonferroni step-down adjusted p-values, in the order given.

    Parameters
    ----------
    p_values : sequence of float
        The unadjusted p-values, each in [0, 1].

    Returns
    -------
    ndarray of float64
        With the ``m`` p-values sorted ascending, the ``i``-th (from 0) becomes
        ``min(1, max over j <= i of (m - j) * p(j))``: never smaller than the unadjusted value and
        non-decreasing in the sorted order. Rejecting where it is at most alpha controls the
        family-wise error rate at alpha (Holm 1979). Empty in, empty out.

    Raises
    ------
    ValueError
        If a p-value is outside [0, 1] or NaN, or the input is not one-dimensional.
    """
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"p_values must be a sequence of numbers, got {reprlib.repr(p_values)}") from exc
    if p.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional, got shape {p.shape}")
    outside = ~((p >= 0.0) & (p <= 1.0))
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise ValueError(f"p_values[{index}] = {float(p[index])!r} is not a probability in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    result = np.empty(m, dtype=np.float64)
    result[order] = adjusted
    return result
