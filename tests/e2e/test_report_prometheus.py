"""End to end: the report from a real Prometheus scraping the real collector equals the ground truth.

The known workload of ``tests/test_report.py`` exports over OTLP to the collector (the shipped
``otelcol.yaml``); Debian's ``prometheus`` scrapes the collector's Prometheus endpoint every second
(``honor_labels``, as the README says); ``otel-migration report --source http://...`` then reads the
figures back through Prometheus's HTTP API. Every name the report queries is checked against what
the collector really exports, and the HTML is opened in Chromium like the other reports.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

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

PHASE_PAUSE_S = 3.0  # several scrapes (1 s) per phase of the workload: the history shows each step
HISTORY_S = 300.0  # adoption history asked of Prometheus: 1 s steps


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
    stack = Stack(workdir, otelcol, jaeger)  # the collector only: the report does not read traces
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

    wait_until(scraped, 60, "the workload's last export in Prometheus")
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

    # The same numbers the process itself reported, percentiles included.
    process = Report(tmp_path / "process.json").values("latency", "duration_s", ("version", "label"))
    assert report.values("latency", "duration_s", ("version", "label")) == pytest.approx(process, rel=1e-9)

    check_report_page(output.as_uri(), "report-prometheus")
