"""End to end: the report from a real Prometheus scraping the real collector equals the ground truth.

The known workload of ``tests/test_report.py`` exports over OTLP to the collector (the shipped
``otelcol.yaml``); Debian's ``prometheus`` scrapes the collector's Prometheus endpoint every second
(``honor_labels``, as the README says); ``otel-migration report --source http://...`` then reads the
figures back through Prometheus's HTTP API. Every name the report queries is checked against what
the collector really exports, and the HTML is opened in Chromium like the other reports.

Percentiles, improvement, distinct users, adoption, stage and verdicts come from the fleet's series
(``migration_fleet_*``), which the collector's migration_analytics component computes from the
process's mergeable state (emitting every second here instead of every ten); they must give the
same ground truth, and the percentiles those of the process within the exponential histogram's
0.55 % (the mean exactly).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_migration._report import PROMETHEUS_NAMES, ReportSourceError, figures_from
from tests.test_report import (
    CALLS,
    FEEDBACK,
    Report,
    assert_csv_equals_json,
    assert_ground_truth,
    check_report_page,
    run_workload,
)

from .stack import (
    Process,
    ProcessDied,
    Stack,
    binaries,
    free_port,
    http_get,
    prometheus_samples,
    wait_until,
)

pytestmark = pytest.mark.e2e

# Each phase of the workload outlasts the SDK's sketch shipping (every 10 s, otel_migration's
# fleet state), so the fleet's adoption ratio, merged from those sketches, shows each step; several
# scrapes (1 s) and fleet evaluations (1 s) fall in each phase.
PHASE_PAUSE_S = 11.0
HISTORY_S = 300.0  # adoption history asked of Prometheus: 1 s steps
HISTOGRAM_ERROR = 0.0055  # a percentile from a scale-6 exponential histogram (docs/fleet.md)


class FleetStack(Stack):
    """The shipped configs, with the fleet component emitting every second instead of every ten."""

    def collector_env(self) -> dict[str, str]:
        return super().collector_env() | {"OTELCOL_FLEET_EMIT_INTERVAL": "1s"}


def start_prometheus(workdir: Path, target: str) -> tuple[Process, str]:
    """Debian's prometheus on a free loopback port, scraping ``target`` every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian prometheus is not installed: run `make promtool`")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: otelcol\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    for attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        process = Process("prometheus", args, {}, workdir / "prometheus.log")
        process.start()
        try:
            wait_until(lambda u=url: http_get(f"{u}/-/ready")[0] == 200, 60, "Prometheus ready", process)
            # Targets reach the scraper up to 5 s after start (discovery updates are throttled): wait
            # for the first scrape, or the workload's first phase would be missing from the history.
            wait_until(lambda u=url: '"health":"up"' in http_get(f"{u}/api/v1/targets")[1], 60, "a scrape")
            return process, url
        except ProcessDied:
            if attempt == 2:  # the port was taken between the probe and the bind: try another
                raise
        except BaseException:
            process.stop()
            raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    otelcol, jaeger = binaries()
    workdir = tmp_path_factory.mktemp("report-prometheus")
    stack = FleetStack(workdir, otelcol, jaeger)  # the collector only: the report does not read traces
    prometheus: Process | None = None
    try:
        for attempt in range(3):
            try:
                stack.start_collector()
                break
            except ProcessDied:
                stack.stop()
                if attempt == 2:
                    raise
                stack._assign_ports()
        prometheus, url = start_prometheus(workdir, f"127.0.0.1:{stack.ports['prometheus']}")
        yield stack, url
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.stop()


def test_prometheus_report_equals_ground_truth(servers: tuple[Stack, str], tmp_path: Path) -> None:
    from otel_migration._cli import main

    stack, prometheus = servers  # prometheus: its URL
    run_workload(tmp_path, stack.otlp_env(), pause_s=PHASE_PAUSE_S)

    def scraped() -> bool:  # the last export (at shutdown) has been scraped
        try:
            figures = figures_from(prometheus, range_s=HISTORY_S)
        except ReportSourceError:
            return False
        requests = {f.version: f.value for f in figures.select("version_split", "requests")}
        answers = {f.version: f.value for f in figures.select("quality", "nps_answers")}
        return requests == CALLS and answers == {v: len(a) for v, a in FEEDBACK.items()}

    def query(expr: str) -> list[dict[str, Any]]:
        found = http_get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")[1]
        result: list[dict[str, Any]] = json.loads(found)["data"]["result"]
        return result

    def fleet_scraped() -> bool:
        """The fleet's figures of the last export have been scraped too: every call, and the NPS
        answers the workload records last (after the calls and the quality scores), so the fleet's
        verdicts are those of the final state. Waiting for the calls alone once read the report
        before the fleet had merged the quality scores: no quality verdict yet."""
        requests = query('sum(migration_fleet_requests{migration_window="1h"})')
        answers = query('sum by (migration_version) (migration_fleet_quality_nps{migration_window="1h"})')
        return (
            bool(requests)
            and float(requests[0]["value"][1]) == sum(CALLS.values())
            and {a["metric"]["migration_version"]: float(a["value"][1]) for a in answers}
            == {v: len(a) for v, a in FEEDBACK.items()}
        )

    wait_until(scraped, 60, "the workload's last export in Prometheus")
    wait_until(fleet_scraped, 60, "the fleet's figures of the last export in Prometheus")
    # Every name the report queries is one the collector exports.
    exported = stack.prometheus_text()
    assert [name for name in PROMETHEUS_NAMES if not prometheus_samples(exported, name)] == []

    output = tmp_path / "prometheus.html"
    args = ["report", "--source", prometheus, "--output", str(output), "--range", str(HISTORY_S)]
    assert main(args) == 0
    report = Report(output.with_suffix(".json"))
    assert report.document["source"] == f"Prometheus {prometheus}"
    assert_ground_truth(report, histograms=True)
    assert_csv_equals_json(output.with_suffix(".json"))

    # The same percentiles the process itself reported (on the same successful calls), within the
    # merged histogram's error; the mean is the exact sum over the count.
    process = Report(tmp_path / "process.json").values("latency", "duration_s", ("version", "label"))
    fleet = report.values("latency", "duration_s", ("version", "label"))
    assert set(fleet) == set(process)
    for key, value in process.items():
        tolerance = 1e-9 if key[1] == "mean" else HISTOGRAM_ERROR
        assert fleet[key] == pytest.approx(value, rel=tolerance), (key, fleet[key], value)

    check_report_page(output.as_uri(), "report-prometheus")
