"""The migration report: its figures equal the ground truth of a known workload, from every source,
and the HTML renders each chart with data in a real (headless) Chromium.

The workload runs in a subprocess through ``configure()`` with the default file exporter, exactly as
an application would: the in-process report is written there (it needs the live state), and the
OTLP JSON lines file it leaves behind is read back by ``otel-migration report``. The Prometheus
source is checked end to end in ``tests/e2e/test_report_prometheus.py`` with the same workload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIGRATION = "billing"

# -- the workload's ground truth -------------------------------------------------------------------
CALLS = {"1.0": 90, "2.0": 60}
ERRORS = {("1.0", "timeout"): 6, ("1.0", "network"): 3, ("2.0", "timeout"): 2}
USERS = {"1.0": range(0, 30), "2.0": range(30, 50)}  # 3 calls per user
# Adoption after each phase: 1.0's 30 users; then 2.0's first 10 users; then its other 10.
ADOPTION_STEPS = (0.0, 10 / 40, 20 / 50)
MODELS = {"1.0": ("claude-haiku-4-5", "haiku"), "2.0": ("claude-sonnet-4-20250514", "sonnet")}
# One LLM call per user: 1000 input and 200 output tokens. Prices (USD per 1M tokens) from
# otel_migration/prices.toml: claude-haiku-4-5 1.00 in / 5.00 out; claude-sonnet-4 3.00 / 15.00.
COST = {"1.0": 30 * (1000 * 1.00 + 200 * 5.00) / 1e6, "2.0": 20 * (1000 * 3.00 + 200 * 15.00) / 1e6}
BUDGET_USD = 1.0
QUALITY_MEAN = {"1.0": 70.0, "2.0": 85.0}  # scores alternate 60/80 and 80/90
ACTIONS = {("1.0", "approved"): 20, ("1.0", "edited"): 10, ("2.0", "approved"): 18, ("2.0", "regenerated"): 2}
# NPS answers: 1.0 3 promoters, 4 passives, 3 detractors (NPS 0); 2.0 6, 3, 1 (NPS 50).
FEEDBACK = {"1.0": [9, 9, 9, 7, 7, 7, 7, 5, 5, 5], "2.0": [10] * 6 + [8] * 3 + [2]}
NPS = {"1.0": 0.0, "2.0": 50.0}


def workload(out: str, pause_s: float = 0.6) -> None:
    """Run the known migration through configure(); write the in-process report into ``out``.

    Called in a fresh process (``python -c``): telemetry goes where the environment says (the
    default file exporter, or a collector), metrics exported every 200 ms.
    """
    import otel_migration as om

    om.configure(
        migration=MIGRATION,
        budgets={"service": {"daily_usd": BUDGET_USD}},
        analytics={"evaluate_every_s": 0.1},
    )

    # The failures each version has to raise, spread over its phases.
    failures = {
        version: [c for (v, c), n in ERRORS.items() if v == version for _ in range(n)] for version in CALLS
    }

    def serve(version: str, users: range) -> None:
        model = MODELS[version][0]
        for user in users:
            with om.subject(f"user-{user}"):
                for _ in range(3):
                    try:
                        with om.versioned(version, operation="charge"):
                            time.sleep(0.004 if version == "1.0" else 0.001)
                            if failures[version]:
                                raise {"timeout": TimeoutError, "network": ConnectionError}[
                                    failures[version].pop()
                                ]()
                    except (TimeoutError, ConnectionError):
                        pass
                om.record_llm_call(
                    model=model, provider="anthropic", input_tokens=1000, output_tokens=200,
                    duration_s=0.5, version=version, phase="synthesis",
                )  # fmt: skip

    def judge(version: str, users: range) -> None:
        tier = MODELS[version][1]
        for i, _user in enumerate(users):
            low, high = (60, 80) if version == "1.0" else (80, 90)
            om.record_quality(low if i % 2 else high, version=version, tier=tier)
        for (v, action), n in ACTIONS.items():
            for _ in range(n if v == version else 0):
                om.record_action(action, version=version, tier=tier)  # type: ignore[arg-type]
        for rating in FEEDBACK[version]:
            om.record_feedback(rating, version=version, tier=tier)

    snapshots = []
    for version, users in (("1.0", USERS["1.0"]), ("2.0", USERS["2.0"][:10]), ("2.0", USERS["2.0"][10:])):
        serve(version, users)
        snapshots.append(om.snapshot())
        time.sleep(pause_s)  # a few metric exports (and scrapes) per phase: adoption over time
    judge("1.0", USERS["1.0"])
    judge("2.0", USERS["2.0"])
    snapshots.append(om.snapshot())
    om.report(Path(out) / "process.html", source=snapshots)
    om.force_flush()
    om.shutdown()


def run_workload(out: Path, env: dict[str, str], pause_s: float = 0.6) -> None:
    """The workload in a subprocess (its own providers and file), exporting metrics every 200 ms."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_SERVICE_NAME": "report-test",
        **env,
    }
    code = f"from tests.test_report import workload; workload({str(out)!r}, {pause_s!r})"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]


# -- reading a report's JSON -----------------------------------------------------------------------
class Report:
    def __init__(self, path: Path) -> None:
        self.document = json.loads(path.read_text())
        self.rows: list[dict[str, Any]] = [r for rows in self.document["sections"].values() for r in rows]

    def values(self, section: str, metric: str, key: tuple[str, ...] = ("version",)) -> dict[Any, float]:
        """``{key fields: value}`` of a metric's rows (one field: the bare value as the key)."""
        rows = [r for r in self.rows if r["section"] == section and r["metric"] == metric]
        result = {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r["value"] for r in rows}
        assert len(result) == len(rows), f"{section}/{metric}: rows repeat their key {key}"
        return result


def assert_ground_truth(report: Report, *, histograms: bool) -> None:
    """Every figure the workload fixes, as the report's JSON shows it."""
    assert {r["migration"] for r in report.rows if r["migration"]} == {MIGRATION}
    assert report.values("version_split", "requests") == CALLS
    assert report.values("version_split", "share") == pytest.approx({"1.0": 0.6, "2.0": 0.4})
    users = report.values("version_split", "users_24h")
    assert users == pytest.approx({v: len(u) for v, u in USERS.items()}, abs=1)  # HyperLogLog

    assert report.values("errors", "errors", ("version", "label")) == ERRORS
    assert report.values("errors", "error_rate") == pytest.approx({"1.0": 9 / 90, "2.0": 2 / 60})

    ratios = report.values("adoption", "ratio", ("label", "at"))
    latest = {w: v for (w, _), v in sorted(ratios.items(), key=lambda kv: kv[0][1])}
    assert latest["1h"] == pytest.approx(ADOPTION_STEPS[-1], abs=0.02)
    series = [v for (w, _), v in sorted(ratios.items(), key=lambda kv: kv[0][1]) if w == "24h"]
    assert series == sorted(series), "adoption went down although no user left 2.0"
    for step in ADOPTION_STEPS:  # each phase's share appears in the history
        assert any(v == pytest.approx(step, abs=0.02) for v in series), (step, series)
    assert report.values("adoption", "stage", ("migration", "text")) == {(MIGRATION, "low"): None}

    percentiles = report.values("latency", "duration_s", ("operation", "version", "label"))
    assert set(percentiles) == {("charge", v, s) for v in CALLS for s in ("p50", "p95", "p99", "mean")}
    # Recent successful calls: 1.0 sleeps 4 ms, 2.0 1 ms.
    assert percentiles[("charge", "1.0", "p50")] >= 0.004
    assert 0.001 <= percentiles[("charge", "2.0", "p50")] < percentiles[("charge", "1.0", "p50")]
    if histograms:  # every call (failed ones too) lands in one bucket of its version
        assert report.values("latency", "calls") == CALLS
        buckets = report.values("latency", "bucket", ("version", "label"))
        for version, calls in CALLS.items():
            assert sum(n for (v, _), n in buckets.items() if v == version) == calls
        assert sum(n for (v, le), n in buckets.items() if v == "1.0" and float(le) <= 0.0025) == 0

    verdicts = report.values("verdicts", "verdict", ("operation", "label"))
    # measure_cpu is on by default (issue 14): the process and the fleet judge CPU too.
    assert set(verdicts) == {
        ("charge", "latency"),
        ("charge", "error_rate"),
        ("charge", "cpu"),
        ("*", "cost"),
        ("*", "quality"),
    }
    assert verdicts[("charge", "latency")] == 1.0  # 2.0 is 4x faster over 51 vs 81 calls
    assert verdicts[("*", "quality")] == 0.0  # 85 against 70 points, but 2.0 has 20 scores of the 30 needed
    texts = {r["text"] for r in report.rows if r["metric"] == "verdict"}
    assert all(text.startswith("2.0 ") for text in texts), texts
    assert any(" than 1.0 " in text or "against 1.0" in text or "of 1.0's" in text for text in texts), texts

    cost = report.values("cost", "cost_usd", ("version", "label", "text"))
    assert cost == pytest.approx({(v, *MODELS[v]): usd for v, usd in COST.items()})
    assert report.values("cost", "llm_calls") == {v: len(u) for v, u in USERS.items()}
    assert report.values("cost", "cost_per_call_usd") == pytest.approx({"1.0": 0.002, "2.0": 0.006})
    spent = sum(COST.values())
    assert report.values("cost", "budget_utilization", ("label",)) == pytest.approx(
        {"service (daily)": spent / BUDGET_USD}
    )

    assert report.values("quality", "quality_mean") == pytest.approx(QUALITY_MEAN)
    assert report.values("quality", "quality_scores") == {v: len(u) for v, u in USERS.items()}
    assert report.values("quality", "actions", ("version", "label")) == ACTIONS
    assert report.values("quality", "nps") == pytest.approx(NPS)
    assert report.values("quality", "nps_answers") == {v: len(a) for v, a in FEEDBACK.items()}


def assert_csv_equals_json(report_json: Path) -> None:
    import csv

    with report_json.with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    document = json.loads(report_json.read_text())
    flat = [r for rows_ in document["sections"].values() for r in rows_]
    assert len(rows) == len(flat) > 0
    by_key = {
        (r["section"], r["metric"], r["version"], r["operation"], r["label"], str(r["at"] or "")): r
        for r in flat
    }
    for row in rows:
        expected = by_key[
            (row["section"], row["metric"], row["version"], row["operation"], row["label"], row["at"])
        ]
        assert (float(row["value"]) if row["value"] else None) == expected["value"]
        assert row["text"] == expected["text"]


# -- the tests -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The workload's in-process report and, read back from its telemetry file, the file report."""
    from otel_migration._cli import main

    out = tmp_path_factory.mktemp("report")
    telemetry = out / "telemetry.jsonl"
    run_workload(out, {"OTEL_MIGRATION_EXPORTER": "file", "OTEL_MIGRATION_FILE_PATH": str(telemetry)})
    assert main(["report", "--source", str(telemetry), "--output", str(out / "file.html")]) == 0
    yield out


def test_in_process_report_equals_ground_truth(reports: Path) -> None:
    report = Report(reports / "process.json")
    assert report.document["source"].startswith("this process")
    assert_ground_truth(report, histograms=False)
    reasons = [r["text"] for r in report.rows if r["metric"] == "verdict"]
    assert all("p=" in text or "p-value" in text or "samples" in text for text in reasons), reasons
    assert_csv_equals_json(reports / "process.json")


def test_file_report_equals_ground_truth(reports: Path) -> None:
    report = Report(reports / "file.json")
    assert report.document["source"] == f"OTLP JSON lines file {reports / 'telemetry.jsonl'}"
    assert_ground_truth(report, histograms=True)
    assert_csv_equals_json(reports / "file.json")


def test_file_and_process_reports_agree_on_latency(reports: Path) -> None:
    """The exported percentile gauges are the snapshot's own numbers."""
    process = Report(reports / "process.json").values("latency", "duration_s", ("version", "label"))
    file = Report(reports / "file.json").values("latency", "duration_s", ("version", "label"))
    assert file == pytest.approx(process, rel=1e-9)


def test_report_skips_lines_that_are_not_json(tmp_path: Path, reports: Path) -> None:
    from otel_migration._report import figures_from

    torn = tmp_path / "torn.jsonl"
    torn.write_text((reports / "telemetry.jsonl").read_text() + '{"resourceMetrics": [{"scope\n')
    figures = figures_from(str(torn))
    assert figures.notes == ("1 lines of the file were not JSON and were skipped.",)
    requests = {f.version: f.value for f in figures.select("version_split", "requests")}
    assert requests == CALLS


def _otlp_line(instance: str, start_s: float, at_s: float, requests: int, p50: float) -> str:
    """One metrics export of a process, as the file exporter writes it (cumulative counter, a gauge)."""

    def attrs(**extra: str) -> list[dict[str, Any]]:
        names = {"migration.name": MIGRATION, "migration.operation": "charge", "migration.version": "2.0"}
        return [{"key": k, "value": {"stringValue": v}} for k, v in {**names, **extra}.items()]

    t = str(int(at_s * 1e9))
    counter = {
        "attributes": attrs(**{"migration.outcome": "ok"}),
        "startTimeUnixNano": str(int(start_s * 1e9)),
        "timeUnixNano": t,
        "asInt": str(requests),
    }
    gauge = {"attributes": attrs(**{"migration.statistic": "p50"}), "timeUnixNano": t, "asDouble": p50}
    metrics = [
        {"name": "migration.requests", "sum": {"aggregationTemporality": 2, "dataPoints": [counter]}},
        {"name": "migration.performance.duration", "gauge": {"dataPoints": [gauge]}},
    ]
    resource = {"attributes": [{"key": "service.instance.id", "value": {"stringValue": instance}}]}
    return json.dumps({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": metrics}]}]})


def test_file_counts_add_up_across_processes_and_stale_gauges_drop_out(tmp_path: Path) -> None:
    """Two runs appended to one file: their calls add up; only the recent run's gauges are shown."""
    from otel_migration._report import figures_from

    t0 = 1_800_000_000.0
    lines = [
        _otlp_line("run-1", t0, t0 + 5, 5, 0.010),
        _otlp_line("run-1", t0, t0 + 10, 7, 0.020),  # cumulative: 7 in all, not 12
        _otlp_line("run-2", t0 + 890, t0 + 900, 3, 0.001),  # fifteen minutes later: run 1 has ended
        _otlp_line("run-3", t0 + 950, t0 + 960, 4, 0.003),  # running beside run 2
    ]
    telemetry = tmp_path / "runs.jsonl"
    telemetry.write_text("\n".join(lines) + "\n")
    figures = figures_from(str(telemetry))
    assert [f.value for f in figures.select("version_split", "requests")] == [7 + 3 + 4]
    assert [f.value for f in figures.select("latency", "duration_s")] == [pytest.approx(0.002)]  # runs 2, 3


def test_cli_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from otel_migration._cli import main
    from tests.e2e.stack import free_port

    assert main(["report", "--source", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "r")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["report", "--source", url, "--output", str(tmp_path / "r")]) == 2
    assert f"could not query Prometheus at {url}" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_cli_names_the_extra_when_plotly_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from otel_migration._cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a)
    )
    assert main(["report", "--source", str(tmp_path / "t.jsonl"), "--output", str(tmp_path / "r")]) == 2
    assert "pip install 'otel-migration[report]'" in capsys.readouterr().err


# -- what a person sees ----------------------------------------------------------------------------
_CHARTS_JS = """() => Array.from(document.querySelectorAll('section')).map(section => ({
  section: section.id,
  verdicts: section.querySelectorAll('ul.verdicts li').length,
  charts: Array.from(section.querySelectorAll('.js-plotly-plot')).map(gd => ({
    svg: gd.querySelectorAll('.main-svg').length,
    traces: (gd._fullData || []).length,
    overflow: gd.querySelector('.main-svg').getBoundingClientRect().width - gd.clientWidth,
    values: (gd.data || []).reduce((n, t) => n
      + (t.y || t.values || []).filter(v => v !== null && v !== 0).length
      + (t.value !== undefined ? 1 : 0), 0),
    drawn: gd.querySelectorAll(['.barlayer .point path', '.pielayer .slice path',
      '.scatterlayer .trace .points path', '.indicatorlayer .trace'].join(', ')).length,
  })),
}))"""


def check_report_page(url: str, screenshot: str) -> list[dict[str, Any]]:
    """Open the report, check every section has charts that drew their data, and no JS error."""
    from tests.browser import SCREENSHOTS, chromium_page

    with chromium_page() as p:
        requests: list[str] = []
        p.page.on("request", lambda request: requests.append(request.url))
        p.page.goto(url)
        p.page.wait_for_function(
            "document.readyState === 'complete'"
            " && document.querySelectorAll('.js-plotly-plot .main-svg').length > 0"
        )
        p.page.wait_for_timeout(500)  # plotly's transitions
        sections = p.page.evaluate(_CHARTS_JS)
        p.screenshot(screenshot)
        for index, section in enumerate(sections):  # one image per section, readable at full size
            path = SCREENSHOTS / f"{screenshot}-{section['section']}.png"
            p.page.locator("section").nth(index).screenshot(path=str(path))
        assert p.errors == []
    assert requests == [url], "the report fetched something: it would not open offline"
    assert [s["section"] for s in sections] == [
        "version_split", "adoption", "errors", "latency", "verdicts", "cost", "quality",
    ]  # fmt: skip
    for section in sections:
        assert section["charts"], f"section {section['section']} has no chart"
        for chart in section["charts"]:
            assert chart["svg"] >= 1 and chart["traces"] >= 1, (section["section"], chart)
            assert chart["values"] >= 1 and chart["drawn"] >= 1, (section["section"], chart)
            assert chart["overflow"] <= 1, f"a chart of {section['section']} is wider than its cell: {chart}"
    verdicts = next(s for s in sections if s["section"] == "verdicts")
    assert verdicts["verdicts"] == 5  # latency, error_rate, cpu, cost, quality
    return sections


def test_html_reports_render_every_chart_with_data(reports: Path) -> None:
    process = check_report_page((reports / "process.html").as_uri(), "report-process")
    file = check_report_page((reports / "file.html").as_uri(), "report-file")
    counts = {
        name: sum(len(s["charts"]) for s in pages) for name, pages in (("process", process), ("file", file))
    }
    # The file has histograms: one more chart (the latency distribution) than the in-process state.
    assert counts["file"] == counts["process"] + 1, counts
    assert "<script src=" not in (reports / "file.html").read_text()
