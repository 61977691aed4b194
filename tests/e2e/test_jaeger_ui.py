"""The real Jaeger UI (embedded in our Jaeger build by collector_config/build.sh) shows the demo's migration.

The demo (`make demo`, examples/migration_demo.py) sends its workload through the real collector to
Jaeger; headless Chromium then does what a person does: picks the service and operation in the
search form, opens a 2.0 report trace and a 1.0 one, expands a span's tags and reads
``migration.version`` and ``migration.phase``. What the UI shows is compared with Jaeger's API for
the same span. Screenshots go to test-output/screenshots/ (tests/browser.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..browser import Page, chromium_page
from .stack import ROOT, Stack, binaries, http_get, span_tags, wait_until

pytestmark = pytest.mark.e2e

DEMO = ROOT / "examples" / "migration_demo.py"
SERVICE = "ui-billing-demo"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    otelcol, jaeger = binaries()
    with Stack(tmp_path_factory.mktemp("stack"), otelcol, jaeger) as running:
        yield running


def run_demo(stack: Stack, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= stack.otlp_env() | {"OTEL_SERVICE_NAME": SERVICE}
    result = subprocess.run(
        [sys.executable, str(DEMO)], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    endpoint = stack.otlp_env()["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert f"telemetry sent to: OTLP grpc to {endpoint}" in result.stdout


def report_traces(stack: Stack) -> list[dict[str, Any]]:
    return stack.jaeger_traces(SERVICE, operation="monthly_report")


def api_span(stack: Stack, trace_id: str, name: str) -> dict[str, Any]:
    status, body = http_get(f"{stack.jaeger_url}/api/traces/{trace_id}")
    assert status == 200, body
    (trace,) = json.loads(body)["data"]
    (span,) = [s for s in trace["spans"] if s["operationName"] == name]
    return span_tags(span)


def search(p: Page, stack: Stack, operation: str, tags: str = "") -> None:
    """Fills the search form as a person does: service, operation, tags, Find Traces."""
    page = p.page
    page.goto(f"{stack.jaeger_url}/search")
    page.locator("div[name=service]").click()
    page.locator("div[name=service] input").fill(SERVICE)
    page.locator(f".ant-select-item-option[title='{SERVICE}']").click()
    page.locator("div[name=operation]").click()
    page.locator("div[name=operation] input").fill(operation)
    page.locator(f".ant-select-item-option[title='{operation}']").click()
    if tags:
        page.get_by_placeholder("http.status_code=200 error=true").fill(tags)
    page.get_by_role("button", name="Find Traces").click()
    page.locator(".ResultItem").first.wait_for()


def open_result(p: Page, spans: int) -> str:
    """Opens the first search result with ``spans`` spans; returns its trace id."""
    label = f"{spans} Span" if spans == 1 else f"{spans} Spans"
    item = p.page.locator(".ResultItem").filter(has=p.page.get_by_text(label, exact=True)).first
    item.locator(".ResultItemTitle a").click()
    p.page.locator("a.span-name").first.wait_for()
    return p.page.url.rsplit("/trace/", 1)[1].split("?")[0]


def shown_tags(p: Page, span_name: str) -> dict[str, str]:
    """Clicks a span in the timeline, expands its tags and reads the key/value table."""
    page = p.page
    page.locator("a.span-name").filter(has=page.locator(".endpoint-name", has_text=span_name)).first.click()
    page.locator(".AccordianKeyValues--header", has_text="Tags:").click()
    rows = page.locator(".KeyValueTable--row")
    rows.first.wait_for()
    keys = rows.locator(".KeyValueTable--keyColumn").all_inner_texts()
    values = rows.locator(".json-markup").all_inner_texts()
    assert len(keys) == len(values)
    return dict(zip(keys, values, strict=True))


def test_jaeger_ui_shows_version_and_phase_of_the_demo(stack: Stack, tmp_path: Path) -> None:
    run_demo(stack, tmp_path)

    def both_versions_stored() -> bool:
        sizes = {len(t["spans"]) for t in report_traces(stack)}
        return {1, 4} <= sizes  # 1.0: the report alone; 2.0: the report and its three phases

    wait_until(both_versions_stored, 60, "the demo's report traces in Jaeger")

    with chromium_page() as p:
        p.page.goto(f"{stack.jaeger_url}/")
        assert p.page.title() == "Jaeger UI"
        assert "not the Jaeger UI" not in p.page.content()  # the placeholder of a build without assets

        search(p, stack, "monthly_report")
        titles = p.page.locator(".ResultItem .TraceName").all_inner_texts()
        assert titles and all(" ".join(t.split()) == f"{SERVICE}: monthly_report" for t in titles), titles
        p.screenshot("jaeger-ui-search")

        # A 2.0 report: the report span and its phases, each with version and phase.
        trace_id = open_result(p, 4)
        names = p.page.locator("a.span-name .endpoint-name").all_inner_texts()
        assert names == ["monthly_report", "extraction", "analysis", "synthesis"]
        p.screenshot("jaeger-ui-trace")
        tags = shown_tags(p, "synthesis")
        p.screenshot("jaeger-ui-span-tags")
        assert tags["migration.version"] == "2.0"
        assert tags["migration.phase"] == "synthesis"
        assert tags["migration.operation"] == "monthly_report"
        assert tags["migration.name"] == "billing"
        api = api_span(stack, trace_id, "synthesis")
        assert {k: tags[k] for k in api if k.startswith("migration.")} == {
            k: str(v) for k, v in api.items() if k.startswith("migration.")
        }

        # The 1.0 reports, found by their tag (the rollout ends at 90 % on 2.0): one span each.
        search(p, stack, "monthly_report", tags="migration.version=1.0")
        counts = p.page.locator(".ResultItem .ant-tag", has_text="Span").all_inner_texts()
        assert counts and set(counts) == {"1 Span"}, counts
        p.screenshot("jaeger-ui-search-1.0")
        trace_id = open_result(p, 1)
        tags = shown_tags(p, "monthly_report")
        p.screenshot("jaeger-ui-span-tags-1.0")
        assert tags["migration.version"] == "1.0"
        assert tags["migration.operation"] == "monthly_report"
        api = api_span(stack, trace_id, "monthly_report")
        assert tags["migration.version"] == api["migration.version"]

        assert not p.errors, p.errors
