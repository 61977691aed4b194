"""A whole migration, simulated over a day: the adoption curve, the verdicts and the error spike.

2,000 users, a rollout ramping from 0 % to 100 % over 24 hours (sticky: a user never goes back),
2.0 slower than 1.0 on `search` and faster on `checkout`, and a burst of network errors on 2.0 in
hour 20. Time is simulated (the analytics take a clock), every number is checked against what the
simulation knows to be true.
"""

from __future__ import annotations

import itertools

from .simulation import simulate

RAMP = [0, 0, 1, 2, 5, 5, 10, 10, 20, 20, 30, 40, 50, 50, 60, 70, 80, 80, 90, 90, 95, 100, 100, 100]


def test_a_day_of_migration() -> None:
    _, hours = simulate(RAMP, burst_hour=20)
    hourly = [(h.percent, h.true_share, h.snapshot) for h in hours]

    # Adoption follows the ramp: the 1 h ratio is the share of users the rollout put on 2.0.
    for percent, true_share, snap in hourly:
        assert abs(snap.adoption.ratio_1h - true_share) < 0.04, (percent, true_share, snap.adoption.ratio_1h)
    ratios = [snap.adoption.ratio_1h for _, _, snap in hourly]
    assert all(b >= a - 0.03 for a, b in itertools.pairwise(ratios))  # never goes back
    stages = [snap.adoption.stage for _, _, snap in hourly]
    assert stages[0] == "not_started" and stages[-1] == "replaced"
    assert stages.index("low") < stages.index("adopted") < stages.index("replaced")

    # Mid-way (both versions well populated) the verdicts are right for both operations.
    _, _, mid = hourly[12]
    verdicts = {(v.operation, v.metric): v for v in mid.verdicts}
    assert verdicts[("search", "latency")].state == "worse"
    assert verdicts[("checkout", "latency")].state == "better"
    assert verdicts[("search", "error_rate")].state in ("inconclusive", "no_data")
    improvements = {i.operation: i for i in mid.improvements}
    assert -40 < improvements["search"].p50_pct < -20  # 2.0 is ~30 % slower
    assert 20 < improvements["checkout"].p50_pct < 40  # and ~30 % faster
    # What the alert rules read: MigrationPerformanceRegression fires on p95 improvement < -10 %
    # (search), not on checkout; MigrationLatencyRegressionSignificant on a "worse" latency verdict.
    assert improvements["search"].p95_pct < -10 < improvements["checkout"].p95_pct

    # The spike: network errors on 2.0 in hour 20, and only then.
    for hour, (_, _, snap) in enumerate(hourly):
        spikes = {e.version: e.spikes for e in snap.errors}
        assert spikes.get("2.0", ()) == (("network",) if hour == 20 else ()), hour
        assert spikes.get("1.0", ()) == ()
    assert hourly[20][2].adoption.stalled is False
