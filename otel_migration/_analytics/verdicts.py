"""Verdicts: better / worse / inconclusive / no data, for one metric of one operation.

The judge follows Kayenta (a Mann-Whitney test with an effect size) and GrowthBook (minimum
samples, a correction for the many comparisons judged at once) and adds what both leave out:
the size of the effect with its confidence interval in every reason, so a "worse" says by how much.

A verdict needs all three: enough samples on both sides, a Holm-adjusted p-value below alpha, and
an effect at least as large as the configured minimum. Anything else is "inconclusive", never a
silent "better".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .._core.config import AnalyticsSettings
from .snapshot import Verdict, VerdictState
from .statistics import hodges_lehmann, holm, mann_whitney_u, two_proportion_test

__all__ = ["adjust", "error_rate_verdict", "shift_verdict"]

_MAX_PAIRS = 250_000


def _usd(amount: float) -> str:
    return f"{amount:+.4g} USD"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:+.3g} ms"


def shift_verdict(
    metric: str,
    migration: str,
    operation: str,
    control: str,
    candidate: str,
    control_samples: npt.NDArray[np.float64],
    candidate_samples: npt.NDArray[np.float64],
) -> Verdict:
    """A rank-test verdict for ``metric`` (latency, cost or quality), not yet adjusted.

    :func:`adjust` turns the p-value into the final state across the family.
    """
    base = Verdict(
        migration,
        operation,
        metric,
        control,
        candidate,
        "no_data",
        "",
        n_control=int(control_samples.size),
        n_candidate=int(candidate_samples.size),
    )
    if control_samples.size == 0 or candidate_samples.size == 0:
        return replace(
            base,
            reason=f"no data: {control} has {control_samples.size} calls, "
            f"{candidate} has {candidate_samples.size}",
        )
    test = mann_whitney_u(control_samples, candidate_samples)
    # 250k pairwise differences (500 x 500) bound the memory and time of an evaluation; the estimate
    # and interval lose little: both are order statistics of evenly thinned samples.
    shift = hodges_lehmann(control_samples, candidate_samples, max_pairs=_MAX_PAIRS)
    return replace(
        base,
        state="inconclusive",
        p_value=test.p_value,
        estimate=shift.estimate,
        low=shift.low,
        high=shift.high,
    )


def error_rate_verdict(
    migration: str,
    operation: str,
    control: str,
    candidate: str,
    control_counts: tuple[int, int],
    candidate_counts: tuple[int, int],
    settings: AnalyticsSettings,
) -> Verdict:
    """``*_counts`` are (errors, requests)."""
    (errors_c, n_c), (errors_t, n_t) = control_counts, candidate_counts
    base = Verdict(
        migration, operation, "error_rate", control, candidate, "no_data", "", n_control=n_c, n_candidate=n_t
    )
    if n_c == 0 or n_t == 0:
        return replace(base, reason=f"no data: {control} has {n_c} calls, {candidate} has {n_t}")
    result = two_proportion_test(errors_c, n_c, errors_t, n_t)
    return replace(
        base,
        state="inconclusive",
        p_value=result.p_value,
        estimate=result.difference,
        low=result.low,
        high=result.high,
    )


def _judge(
    verdict: Verdict, adjusted: float, settings: AnalyticsSettings, control_median: float | None
) -> Verdict:
    assert verdict.p_value is not None and verdict.estimate is not None
    n = f"n={verdict.n_control} vs {verdict.n_candidate}"
    p = f"p={verdict.p_value:.2g} (Holm-adjusted {adjusted:.2g})"
    low, high = verdict.low, verdict.high
    higher_is_better = verdict.metric == "quality"
    if verdict.metric in ("latency", "cost", "cpu"):
        median = control_median or 0.0
        relative = verdict.estimate / median if median > 0 else 0.0
        unit = _usd if verdict.metric == "cost" else _ms
        words = {
            "latency": ("slower", "faster"),
            "cost": ("costlier", "cheaper"),
            "cpu": ("hungrier for CPU", "leaner on CPU"),
        }[verdict.metric]
        effect = (
            f"{verdict.candidate} is {words[0] if verdict.estimate > 0 else words[1]}: shift "
            f"{unit(verdict.estimate)} (95% CI {unit(low or 0)} to {unit(high or 0)}), "
            f"{relative:+.1%} of {verdict.control}'s median"
        )
        minimum = {
            "latency": settings.latency_min_effect,
            "cost": settings.cost_min_effect,
            "cpu": settings.cpu_min_effect,
        }[verdict.metric]
        big_enough = abs(relative) >= minimum
        threshold = f"{minimum:.0%} of the median"
    elif verdict.metric == "quality":
        effect = (
            f"{verdict.candidate}'s quality score shifts {verdict.estimate:+.3g} points "
            f"(95% CI {low or 0:+.3g} to {high or 0:+.3g})"
        )
        big_enough = abs(verdict.estimate) >= settings.quality_min_effect
        threshold = f"{settings.quality_min_effect:g} points"
    else:
        effect = (
            f"{verdict.candidate}'s error rate is {verdict.estimate:+.2%} against {verdict.control} "
            f"(95% CI {low or 0:+.2%} to {high or 0:+.2%})"
        )
        big_enough = abs(verdict.estimate) >= settings.error_rate_min_effect
        threshold = f"{settings.error_rate_min_effect:.2%}"
    state: VerdictState
    if min(verdict.n_control, verdict.n_candidate) < settings.min_samples:
        state, why = "inconclusive", f"fewer than {settings.min_samples} samples on a side"
    elif adjusted >= settings.alpha:
        state, why = "inconclusive", f"not significant at alpha={settings.alpha:g}"
    elif not big_enough:
        state, why = "inconclusive", f"significant but smaller than the minimum effect ({threshold})"
    else:
        worse = verdict.estimate < 0 if higher_is_better else verdict.estimate > 0
        state = "worse" if worse else "better"
        why = "significant and larger than the minimum effect"
    return replace(
        verdict, state=state, adjusted_p_value=adjusted, reason=f"{state}: {effect}; {p}; {n}; {why}"
    )


def adjust(
    verdicts: Sequence[Verdict],
    settings: AnalyticsSettings,
    control_medians: dict[tuple[str, str, str, str], float],
) -> list[Verdict]:
    """Holm-adjust every tested verdict of the family together and decide each state."""
    tested = [i for i, v in enumerate(verdicts) if v.p_value is not None]
    adjusted = holm([verdicts[i].p_value for i in tested]) if tested else np.array([])  # type: ignore[misc]
    result = list(verdicts)
    for position, index in enumerate(tested):
        v = verdicts[index]
        result[index] = _judge(
            v,
            float(adjusted[position]),
            settings,
            control_medians.get((v.migration, v.operation, v.metric, v.control)),
        )
    return result
