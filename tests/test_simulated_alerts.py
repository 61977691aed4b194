"""The alert rules fire on what the analytics report for a simulated migration (promtool, simulated time).

The figures the simulated migration produces each hour (p95 improvement per operation, the 24 h
adoption ratio, the error-spike flag) become per-minute Prometheus series; ``promtool test rules``
evaluates the shipped rules over them: the p95 regression alert fires for ``search`` (2.0 is
slower) and not for ``checkout`` (faster), the adoption-stalled alert stays quiet while the rollout
ramps and fires once it has held at 50 % for over an hour, and the error-spike alert fires in the
hour whose last 5 minutes had a burst of network errors on 2.0, and only then.

The simulated service is one process, so its figures are the fleet's: the improvement and the
ratio are fed under the names the collector's migration_analytics component exports them with
(``migration_fleet_*``, window labels included, with ``migration_fleet_instances`` at 1 while it
runs), the spike flag, which has no fleet figure, as that process's gauge (label ``instance``).
After the last simulated hour the service stops: its figures stay frozen at their last values
(the component keeps exporting its windows) while the instances drop to 0, and no alert may fire.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .simulation import simulate

RULES = Path(__file__).resolve().parents[1] / "collector_config" / "alerts" / "migration.rules.yml"
RAMP = [0, 5, 10, 20, 30, 40, 50, 50, 50, 50]  # ramps for 6 hours, then holds at 50 %
BURST_HOUR = 7
JOB = "sim"
INSTANCE = "sim-worker-1"
STOPPED_HOURS = 1  # after the simulation: the service's processes are gone


def per_minute(values: list[float | None]) -> str:
    """One value an hour as 60 samples a minute, in promtool's expanding notation (``_`` = no sample)."""
    return " ".join("_x59 _" if v is None else f"{v!r}+0x59" for v in values)


def stopped(values: list[float | None]) -> list[float | None]:
    """The series after the service stopped: the last value, frozen, for STOPPED_HOURS more hours."""
    return values + values[-1:] * STOPPED_HOURS


def go_percentage(value: float) -> str:
    """Prometheus's humanizePercentage: Go's ``%.4g`` of the value times 100, and ``%``."""
    text = f"{value * 100:.4g}"
    return f"{text}%"


def yaml_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_alert_rules_fire_on_the_simulated_migration(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian package 'prometheus' (make test does)"
    name, hours = simulate(RAMP, users=2000, burst_hour=BURST_HOUR)

    def p95(operation: str, hour: int) -> float | None:
        found = [i.p95_pct for i in hours[hour].snapshot.improvements if i.operation == operation]
        return found[0] if found else None

    improvement = {op: [p95(op, h) for h in range(len(RAMP))] for op in ("search", "checkout")}
    ratio = [h.snapshot.adoption.ratio_24h for h in hours]
    assert improvement["search"][5] is not None and improvement["search"][5] < -10  # what the rule reads
    assert ratio[6] == ratio[7] == ratio[8] == ratio[9] and ratio[5] != ratio[6]  # it moves, then holds

    def spike(hour: int) -> float | None:
        """The 2.0 network-error spike gauge: exported once the category has errors in the hour."""
        (errors,) = [e for e in hours[hour].snapshot.errors if e.version == "2.0"] or [None]
        if errors is None or "network" not in errors.categories:
            return None
        return float("network" in errors.spikes)

    spikes = [spike(h) for h in range(len(RAMP))]
    assert spikes[BURST_HOUR] == 1 and spikes.count(1) == 1, spikes

    # The figures hold at their last values once the service stopped (the component still exports
    # its windows); a silent process's gauge leaves the collector (metric_expiration): no sample.
    instances: list[float | None] = [1.0] * len(RAMP) + [0.0] * STOPPED_HOURS
    series = [
        (
            f'migration_fleet_performance_improvement_percent{{job="{JOB}", migration_name="{name}", '
            f'migration_operation="{op}", migration_version="2.0", migration_statistic="p95", '
            'migration_window="1h"}',
            per_minute(stopped(values)),
        )
        for op, values in improvement.items()
    ] + [
        (
            f'migration_fleet_adoption_ratio{{job="{JOB}", migration_name="{name}", migration_window="24h"}}',
            per_minute(stopped(ratio)),
        ),
        (f'migration_fleet_instances{{job="{JOB}"}}', per_minute(instances)),
        (
            f'migration_error_spike_ratio{{job="{JOB}", instance="{INSTANCE}", migration_name="{name}", '
            'migration_version="2.0", migration_error_category="network"}',
            per_minute(spikes + [None] * STOPPED_HOURS),
        ),
    ]
    regression = improvement["search"][5]
    assert regression is not None
    stalled_value = go_percentage(ratio[7])
    lines = [
        f"rule_files: [{yaml_quote(str(RULES))}]",
        "evaluation_interval: 1m",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
    ]
    for selector, values in series:
        lines += [f"      - series: {yaml_quote(selector)}", f"        values: {yaml_quote(values)}"]
    lines += [
        "    alert_rule_test:",
        "      - eval_time: 5h30m",
        "        alertname: MigrationPerformanceRegression",
        "        exp_alerts:",
        "          - exp_labels:",
        "              severity: warning",
        f"              job: {JOB}",
        f"              migration_name: {name}",
        "              migration_operation: search",
        '              migration_version: "2.0"',
        "              migration_statistic: p95",
        "              migration_window: 1h",
        "            exp_annotations:",
        f"              summary: {yaml_quote(f'{name} 2.0 is slower than the control at p95')}",
        "              description: "
        + yaml_quote(
            f"The p95 latency improvement of version 2.0 of {name} (search, {JOB}) over the control version "
            f"is {regression:.1f} %: the candidate is more than 10 % slower."
        ),
        "      - eval_time: 5h30m",
        "        alertname: MigrationAdoptionStalled",
        "        exp_alerts: []",
        "      - eval_time: 9h30m",
        "        alertname: MigrationAdoptionStalled",
        "        exp_alerts:",
        "          - exp_labels:",
        "              severity: warning",
        f"              job: {JOB}",
        f"              migration_name: {name}",
        "              migration_window: 24h",
        "            exp_annotations:",
        f"              summary: {yaml_quote(f'Adoption of {name} is stalled at {stalled_value}')}",
        "              description: "
        + yaml_quote(
            f"Over the last 24 hours {stalled_value} of the users of {name} ({JOB}) used the new version, "
            "and that share has stopped growing (less than 0.1 percentage point in an hour, or the "
            "collector flags the adoption as stalled). Check the rollout percentage and the feature flag."
        ),
    ]
    lines += [
        f"      - eval_time: {BURST_HOUR - 1}h30m",
        "        alertname: MigrationErrorSpike",
        "        exp_alerts: []",
        f"      - eval_time: {BURST_HOUR}h30m",
        "        alertname: MigrationErrorSpike",
        "        exp_alerts:",
        "          - exp_labels:",
        "              severity: warning",
        f"              job: {JOB}",
        f"              migration_name: {name}",
        '              migration_version: "2.0"',
        "              migration_error_category: network",
        "            exp_annotations:",
        f"              summary: {yaml_quote(f'{name} 2.0: network errors spike')}",
        "              description: "
        + yaml_quote(
            f"Version 2.0 of {name} ({JOB}) fails with network errors at least 3 times as often over the "
            "last 5 minutes as over the hour before. Check the errors by error_type and what changed in "
            "the last minutes."
        ),
        f"      - eval_time: {BURST_HOUR + 1}h30m",
        "        alertname: MigrationErrorSpike",
        "        exp_alerts: []",
    ]
    # The service has stopped: the p95 regression and the held ratio are frozen, no alert fires.
    assert stopped(improvement["search"])[-1] == improvement["search"][-1] is not None
    assert improvement["search"][-1] < -10 and 0 < ratio[-1] < 0.95  # they would fire, unguarded
    for alert in ("MigrationPerformanceRegression", "MigrationAdoptionStalled"):
        lines += [
            f"      - eval_time: {len(RAMP)}h30m",
            f"        alertname: {alert}",
            "        exp_alerts: []",
        ]
    test_file = tmp_path / "simulated.test.yml"
    test_file.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if "SUCCESS" not in result.stdout + result.stderr:
        pytest.fail(result.stdout + result.stderr)
