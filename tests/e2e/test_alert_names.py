"""Every metric (and label value) an alert rule reads is one the real collector exports.

A rule that names a series nobody exports never fires, and promtool cannot tell: its fixtures use
whatever names the rule uses. So the real SDK runs a workload that produces every metric the rules
read (``tests/scripts/alert_workload.py``: both versions with errors and slowness for 200 users, a
rollout and its kill switch, quality scores and NPS answers, priced LLM calls through the real
``anthropic`` SDK to the loopback LLM server, one streamed, against a budget), exports it over OTLP
to the real collector, whose migration_analytics component merges its state into the fleet's
``migration_fleet_*`` figures (emitted every second here), and the collector's Prometheus endpoint
is scraped. Each selector of each rule expression must match a scraped sample: its metric name, its
label names, and the values of its equality matchers.

One fleet figure a rule reads cannot be in a test's scrape: the component exports
``migration.fleet.sample_ratio_mismatch`` only once the rollout percent has held for an hour of its
own wall-clock time. For it the name the rule uses must be the one the component declares
(``evaluate.go``), named the way the real exporter names every other figure the component declares
with the same unit, which the scrape shows.

After the workload has exited, its per-process gauges must leave the endpoint (metric_expiration,
shortened here) and ``migration_fleet_instances`` must drop to 0 (stream_ttl, shortened) while the
fleet's verdict is still exported: what the rules' liveness rests on (docs/alerts.md).

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
from .stack import ROOT, Stack, binaries, prometheus_samples, wait_until

pytestmark = pytest.mark.e2e

RULES = ROOT / "collector_config" / "alerts" / "migration.rules.yml"
WORKLOAD = ROOT / "tests" / "scripts" / "alert_workload.py"
SERVICE = "alert-names"
MIGRATION = "alert-names-migration"
# Written by Prometheus itself, never by the collector.
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE"}
COMPONENT_NAMES = ROOT / "collector" / "migrationanalyticsconnector" / "evaluate.go"
# Fleet figures the component exports only after an hour of its own time (docs/fleet.md, section 6).
AFTER_AN_HOUR = {"migration.fleet.sample_ratio_mismatch"}
# A fleet figure no rule reads that needs 10 minutes of the component's own history (the robust z of
# an anomaly test): the workload runs for seconds. tests/e2e/test_fleet_component.py scrapes it.
NEEDS_HISTORY = {"migration.fleet.anomaly.score"}
# The prometheus exporter's suffix per unit (a unit in braces is an annotation: no suffix).
_UNIT_SUFFIX = {"": "", "s": "_seconds", "%": "_percent"}
# Short enough for the test to watch an exited process's series go, long enough for the scrape
# right after the workload's last export to see them.
EXPIRATION_S = 20
# Per-process gauges the rules aggregate over `instance` (no fleet figure): they must expire.
PER_PROCESS_GAUGES = (
    "migration_error_spike_ratio",
    "migration_rollout_rolled_back_ratio",
    "migration_llm_budget_utilization_ratio",
)

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


def component_declared() -> dict[str, str]:
    """Prometheus name -> OTel name of every gauge the fleet component declares with a known unit."""
    declared = re.findall(
        r'^\s*"(migration\.fleet\.[\w.]+)":\s*\{"([^"]*)"', COMPONENT_NAMES.read_text(), re.M
    )
    assert len(declared) >= 15, f"the component's metric table moved: {COMPONENT_NAMES}"
    names = {}
    for name, unit in declared:
        suffix = "" if unit.startswith("{") else _UNIT_SUFFIX.get(unit)
        if suffix is not None:
            names[name.replace(".", "_") + suffix] = name
    return names


def after_an_hour() -> set[str]:
    """The Prometheus names of the fleet figures a test's scrape cannot hold."""
    names = {prom for prom, otel in component_declared().items() if otel in AFTER_AN_HOUR}
    assert len(names) == len(AFTER_AN_HOUR), (names, AFTER_AN_HOUR)
    return names


def missing(
    rules_text: str, scraped: dict[str, list[dict[str, str]]], excused: frozenset[str] = frozenset()
) -> list[str]:
    """What the rules read that the scrape lacks, one line each (empty when every selector matches).

    ``excused`` names are not looked up in the scrape (the component's figures that need an hour).
    """
    problems = []
    for alert, expr in rule_expressions(rules_text).items():
        for selector in selectors(expr):
            if selector.metric in PROMETHEUS_OWN or selector.metric in excused:
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
class FleetStack(Stack):
    """The shipped configs; the component emits every second, silence counts after EXPIRATION_S."""

    def collector_env(self) -> dict[str, str]:
        return super().collector_env() | {
            "OTELCOL_FLEET_EMIT_INTERVAL": "1s",
            "OTELCOL_FLEET_STREAM_TTL": f"{EXPIRATION_S}s",
            "OTELCOL_PROMETHEUS_METRIC_EXPIRATION": f"{EXPIRATION_S}s",
        }


@dataclass
class Run:
    stack: Stack
    scraped: dict[str, list[dict[str, str]]]  # right after the workload's last export
    text: str  # the same scrape, whole


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    otelcol, jaeger = binaries()
    with FleetStack(tmp_path_factory.mktemp("stack"), otelcol, jaeger) as stack:
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
        # there, or report what is still missing (well within EXPIRATION_S).
        rules, excused = RULES.read_text(), frozenset(after_an_hour())
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not missing(rules, exported(), excused), 10, "every metric the rules read")
        text = stack.prometheus_text()
        yield Run(stack, scrape_index(text, SERVICE), text)


@pytest.fixture(scope="module")
def scraped(run: Run) -> dict[str, list[dict[str, str]]]:
    return run.scraped


def test_the_workload_exported_what_the_rules_read(scraped: dict[str, list[dict[str, str]]]) -> None:
    problems = missing(RULES.read_text(), scraped, frozenset(after_an_hour()))
    assert not problems, "\n".join(problems)


def test_the_rules_read_the_fleet_figures(scraped: dict[str, list[dict[str, str]]]) -> None:
    """The fleet's figures are in the scrape with no per-process label, and the rules use them."""
    rules = RULES.read_text()
    for name in ("migration_fleet_verdict", "migration_fleet_performance_improvement_percent"):
        assert name in rules
        assert scraped[name] and all("instance" not in labels for labels in scraped[name]), name
    assert "migration_verdict_ratio" not in rules and "migration_adoption_ratio" not in rules


def test_the_figures_needing_an_hour_are_named_as_the_exporter_names_the_others(run: Run) -> None:
    """The rule's name for them is the component's, with the suffix rule every other figure shows."""
    declared = component_declared()
    hour = after_an_hour()
    all_names = {line.split("{")[0].split(" ")[0] for line in run.text.splitlines() if line[:1].isalpha()}
    # Every declared figure the workload can produce is exported under the derived name.
    for prom, otel in declared.items():
        if prom not in hour and otel not in NEEDS_HISTORY:
            assert prom in all_names, f"{otel} is not exported as {prom}"
    read = {s.metric for expr in rule_expressions(RULES.read_text()).values() for s in selectors(expr)}
    assert hour <= read, "a rule reads no figure that needs an hour: drop AFTER_AN_HOUR's entry"
    # Same unit (none) and labels as the stalled flag: job and migration_name only.
    stalled = run.scraped["migration_fleet_adoption_stalled"]
    assert {
        frozenset(labels) - {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
        for labels in stalled
    } == {frozenset({"job", "migration_name"})}, stalled


def test_an_exited_process_leaves_nothing_that_keeps_an_alert_firing(run: Run) -> None:
    """Per-process gauges expire; the fleet's verdict stays but its service counts 0 instances."""

    def values(text: str, name: str, **match: str) -> list[float]:
        return [
            v
            for labels, v in prometheus_samples(text, name)
            if labels.get("job") == SERVICE and all(labels.get(k) == x for k, x in match.items())
        ]

    latency = {"migration_name": MIGRATION, "migration_operation": "search", "migration_metric": "latency"}
    # While the process was alive: it counted, and 2.0 (twice as slow) is significantly worse.
    assert values(run.text, "migration_fleet_instances") == [1.0]
    assert values(run.text, "migration_fleet_verdict", **latency) == [-1.0]
    for name in PER_PROCESS_GAUGES:
        assert values(run.text, name), name

    def gone() -> bool:
        text = run.stack.prometheus_text()
        return values(text, "migration_fleet_instances") == [0.0] and not any(
            values(text, name) for name in PER_PROCESS_GAUGES
        )

    wait_until(gone, 4 * EXPIRATION_S, "the exited process's gauges to expire and its instance to go")
    # The hour's verdict is still exported: only the instances guard keeps the rule quiet.
    assert values(run.stack.prometheus_text(), "migration_fleet_verdict", **latency) == [-1.0]


def test_a_misnamed_rule_is_caught(scraped: dict[str, list[dict[str, str]]]) -> None:
    """The check can fail: a unit-1 suffix on a fleet figure (which has none), a wrong label value."""
    rules, excused = RULES.read_text(), frozenset(after_an_hour())
    assert "migration_fleet_verdict{" in rules
    problems = missing(
        rules.replace("migration_fleet_verdict{", "migration_fleet_verdict_ratio{"), scraped, excused
    )
    assert problems == [
        "MigrationLatencyRegressionSignificant: metric migration_fleet_verdict_ratio is not exported",
        "MigrationCpuRegressionSignificant: metric migration_fleet_verdict_ratio is not exported",
    ]
    wrong_value = rules.replace('migration_statistic="p95"', 'migration_statistic="p96"')
    assert missing(wrong_value, scraped, excused) == [
        "MigrationPerformanceRegression: no migration_fleet_performance_improvement_percent sample with "
        "migration_statistic='p96'"
    ]
    # The figure that needs an hour is excused only under the component's own name.
    renamed = rules.replace("migration_fleet_sample_ratio_mismatch", "migration_fleet_sample_mismatch_ratio")
    assert missing(renamed, scraped, excused) == [
        "MigrationSampleRatioMismatch: metric migration_fleet_sample_mismatch_ratio is not exported"
    ]
