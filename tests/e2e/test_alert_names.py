"""Every metric (and label value) an alert rule reads is one the real collector exports.

A rule that names a series nobody exports never fires, and promtool cannot tell: its fixtures use
whatever names the rule uses. So the real SDK runs a workload that produces every metric the rules
read (``tests/scripts/alert_workload.py``: both versions with errors and slowness, a rollout and its
kill switch, quality scores and NPS answers, priced LLM calls through the real ``anthropic`` SDK to
the loopback LLM server, one streamed, against a budget), exports it over OTLP to the real collector,
and the collector's Prometheus endpoint is scraped. Each selector of each rule expression must match
a scraped sample: its metric name, its label names, and the values of its equality matchers.

The expressions are read with a small PromQL tokenizer rather than a regex over likely names: every
identifier that is not a PromQL keyword, function or aggregation and not inside braces, a label list
or a range is taken as a metric name, so a name cannot be skipped silently; an unknown function fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ..llm_server import LLMServer, Usage
from .stack import ROOT, Stack, binaries, wait_until

pytestmark = pytest.mark.e2e

RULES = ROOT / "collector_config" / "alerts" / "migration.rules.yml"
WORKLOAD = ROOT / "tests" / "scripts" / "alert_workload.py"
SERVICE = "alert-names"
MIGRATION = "alert-names-migration"
# Written by Prometheus itself, never by the collector.
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS |= {"offset", "bool", "inf", "nan"}
_AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk"}
_AGGREGATIONS |= {"quantile", "count_values", "group"}
_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
    "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time",
}  # fmt: skip
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''  # string literal
    r"|\{[^}]*\}"  # label matchers
    r"|\[[^\]]*\]"  # range or subquery
    r"|\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*"  # duration (after offset)
    r"|[A-Za-z_:][\w:]*"  # identifier
    r"|\d+(?:\.\d+)?(?:e[+-]?\d+)?"  # number
    r"|\S",
    re.IGNORECASE,
)
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...] = field(default=())


def rule_expressions(text: str) -> dict[str, str]:
    """Alert name -> expression, read from the rules file's layout (one- or multi-line ``expr``)."""
    exprs: dict[str, str] = {}
    for block in re.split(r"^\s*- (?=alert:|record:)", text, flags=re.MULTILINE)[1:]:
        name = re.match(r"(?:alert|record):\s*(\S+)", block)
        expr = re.search(r"^(\s*)expr:\s*(\|)?(.*)$", block, re.MULTILINE)
        assert name and expr, f"unreadable rule: {block[:200]}"
        if expr.group(2):  # a literal block: every line indented deeper than `expr:`
            indent = len(expr.group(1))
            lines = []
            for line in block[expr.end() + 1 :].splitlines():
                if line.strip() and len(line) - len(line.lstrip()) <= indent:
                    break
                lines.append(line)
            exprs[name.group(1)] = "\n".join(lines)
        else:
            exprs[name.group(1)] = expr.group(3)
    return exprs


def selectors(expr: str) -> list[Selector]:
    """Every series selector of a PromQL expression: metric names with their label matchers."""
    tokens = _TOKEN.findall(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        lower = token.lower()
        if token[0] == "{":  # a selector without a metric name would need __name__: not used here
            raise AssertionError(f"selector without a metric name in {expr!r}")
        elif not re.fullmatch(r"[A-Za-z_:][\w:]*", token):
            pass  # a string, number, duration, range or operator
        elif lower in {"by", "without", "on", "ignoring", "group_left", "group_right"}:
            if following == "(":  # a label list: skip to its closing parenthesis
                i = tokens.index(")", i + 1)
        elif lower in _KEYWORDS:
            pass
        elif following == "(" or (lower in _AGGREGATIONS and following.lower() in {"by", "without"}):
            assert lower in _FUNCTIONS | _AGGREGATIONS, f"unknown PromQL function {token!r} in {expr!r}"
        else:
            braces = following if following.startswith("{") else ""
            unread = _MATCHER.sub("", braces[1:-1]).strip()
            assert not unread, f"unreadable label matchers {unread!r} of {token} in {expr!r}"
            found.append(Selector(token, tuple(_MATCHER.findall(braces[1:-1]))))
            i += bool(braces)  # its matchers are read: skip them
        i += 1
    return found


def scrape_index(text: str, job: str) -> dict[str, list[dict[str, str]]]:
    """Metric name -> the label sets of its samples from ``job``, from Prometheus text format."""
    index: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+\S+", line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if labels.get("job") == job:
            index.setdefault(match.group(1), []).append(labels)
    return index


def missing(rules_text: str, scraped: dict[str, list[dict[str, str]]]) -> list[str]:
    """What the rules read that the scrape lacks, one line each (empty when every selector matches)."""
    problems = []
    for alert, expr in rule_expressions(rules_text).items():
        for selector in selectors(expr):
            if selector.metric in PROMETHEUS_OWN:
                continue
            samples = scraped.get(selector.metric)
            if not samples:
                problems.append(f"{alert}: metric {selector.metric} is not exported")
                continue
            for label, op, value in selector.matchers:
                if not any(label in s for s in samples):
                    problems.append(f"{alert}: {selector.metric} has no label {label}")
                elif op == "=" and value and not any(s.get(label) == value for s in samples):
                    problems.append(f"{alert}: no {selector.metric} sample with {label}={value!r}")
    return problems


# -- the parser itself --------------------------------------------------------------------------
def test_selectors_finds_names_in_every_position() -> None:
    expr = """
      histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{x="1", y!~"2"}[10m])))
      / ignoring (v) group_left () b_total offset 1h
      and on (job) max without (alertname) (label_replace(ALERTS{s="c"}, "d", "$1", "e", "(.+)"))
      or c_ratio > 0 < 0.95 unless abs(delta(d[1h])) < 0.001
    """
    assert [s.metric for s in selectors(expr)] == ["a_bucket", "b_total", "ALERTS", "c_ratio", "d"]
    assert selectors(expr)[0].matchers == (("x", "=", "1"), ("y", "!~", "2"))
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        selectors("rate_of(a[5m])")


def test_every_rule_has_selectors() -> None:
    exprs = rule_expressions(RULES.read_text())
    assert len(exprs) == len(re.findall(r"^\s*- alert:", RULES.read_text(), re.MULTILINE)) >= 15
    for alert, expr in exprs.items():
        assert selectors(expr), f"{alert}: no series read from {expr!r}"


# -- against the real collector -----------------------------------------------------------------
@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[dict[str, str]]]]:
    otelcol, jaeger = binaries()
    with Stack(tmp_path_factory.mktemp("stack"), otelcol, jaeger) as stack:
        with LLMServer(usage=Usage(input_tokens=2000, output_tokens=300)) as llm:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
            env |= stack.otlp_env("grpc") | {"OTEL_SERVICE_NAME": SERVICE, "NO_PROXY": "127.0.0.1,localhost"}
            for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
                env.pop(proxy, None)
            result = subprocess.run(
                [sys.executable, str(WORKLOAD), MIGRATION, llm.anthropic_base_url],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert result.returncode == 0, result.stderr
            assert llm.request_count == 3  # two calls and one stream reached the LLM server

        def exported() -> dict[str, list[dict[str, str]]]:
            return scrape_index(stack.prometheus_text(), SERVICE)

        # The last export comes at the workload's shutdown; wait until the rules' metrics are all
        # there, or report what is still missing.
        rules = RULES.read_text()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not missing(rules, exported()), 30, "every metric the rules read")
        yield exported()


def test_the_workload_exported_what_the_rules_read(scraped: dict[str, list[dict[str, str]]]) -> None:
    problems = missing(RULES.read_text(), scraped)
    assert not problems, "\n".join(problems)


def test_a_misnamed_rule_is_caught(scraped: dict[str, list[dict[str, str]]]) -> None:
    """The check can fail: the name without the exporter's unit suffix, as the rules had it before."""
    rules = RULES.read_text()
    assert "migration_verdict_ratio{" in rules
    problems = missing(rules.replace("migration_verdict_ratio{", "migration_verdict{"), scraped)
    assert problems == ["MigrationLatencyRegressionSignificant: metric migration_verdict is not exported"]
    wrong_value = rules.replace('migration_statistic="p95"', 'migration_statistic="p96"')
    assert missing(wrong_value, scraped) == [
        "MigrationPerformanceRegression: no migration_performance_improvement_percent sample with "
        "migration_statistic='p96'"
    ]
