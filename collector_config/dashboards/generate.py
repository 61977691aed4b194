"""Generate the Grafana dashboards of otel-migration (migration, LLM, operations, pipeline health) as JSON.

    .venv/bin/python collector_config/dashboards/generate.py            # rewrite the *.json files
    .venv/bin/python collector_config/dashboards/generate.py --check    # exit 1 if they differ
    .venv/bin/python collector_config/dashboards/generate.py --typescript FILE  # for make dashboards-check

Built with grafana-foundation-sdk (the Grafana 11.6 build), so panels, options and variables have
the shape Grafana's own schema gives them. Every query reads Prometheus series as the collector's
``prometheus`` exporter writes them (scraped with ``honor_labels: true``, so ``job`` is the
service name) and is filtered by the ``$service`` and ``$migration`` variables; series that carry
no migration label are kept for the services that serve the selected migration. The collector's own
metrics carry neither label: the pipeline dashboard filters them by a ``$collector`` variable (the
job Prometheus scrapes them in).

Counters and bucket histograms add up across a service's processes, so they are read per process
and summed. The figures a process can only compute on its own calls and users (percentiles,
improvement, distinct users, adoption ratio and stage, error-free users, verdicts, sample-ratio
mismatch, and on the operations dashboard the CPU verdict, health score, anomalies and error trends)
are read from the fleet's series, ``migration_fleet_*``, that the collector's ``migration_analytics``
component computes from every process's merged state (docs/fleet.md): one series per service and
migration, with no per-process label (Prometheus's ``instance`` on them is the aggregating
collector). The operations dashboard reads its per-version figures through :data:`PER_VERSION`, one
entry each, so that where a figure comes from is one edit. Memory leak and time to limit stay each
process's own: a process leaks, not a fleet.

Panels are made by three builders, :func:`figures` (one figure per series: bar gauge, stat, gauge),
:func:`over_time` (time series) and :func:`place` (anything else), from ``(PromQL, legend)`` pairs;
:func:`per` makes the common pair "summed per these labels, named by them".
Every metric name lives in :data:`METRICS`, nowhere else.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    gauge,
    heatmap,
    piechart,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import piechart as piechart_models
from grafana_foundation_sdk.models import prometheus as prom_models

HERE = Path(__file__).resolve().parent

# Prometheus names of every series the dashboards read, as the collector exports them: dots become
# underscores and the exporter adds unit and type suffixes (`_total` for counters, `_seconds` for
# unit s, `_bytes` for By, `_ratio` for unit 1, `_percent` for %). The collector's own metrics
# (`otelcol_*`) come from its internal telemetry endpoint, which writes counters without `_total`.
METRICS: dict[str, str] = {
    # migration
    "requests": "migration_requests_total",
    "errors": "migration_errors_total",
    "duration_bucket": "migration_duration_seconds_bucket",
    "duration_sum": "migration_duration_seconds_sum",
    # the fleet's figures (collector component migration_analytics; dimensionless: no suffix)
    "adoption_ratio": "migration_fleet_adoption_ratio",
    "adoption_users": "migration_fleet_adoption_users",
    "adoption_stage": "migration_fleet_adoption_stage",
    "error_free_users": "migration_fleet_error_free_users",
    "fleet_duration": "migration_fleet_performance_duration_seconds",
    "improvement": "migration_fleet_performance_improvement_percent",
    "verdict": "migration_fleet_verdict",  # latency, error_rate, cpu, cost, quality
    "srm": "migration_fleet_sample_ratio_mismatch",
    "instances": "migration_fleet_instances",
    # the fleet's health (docs/health.md, "The fleet's health")
    "fleet_health_score": "migration_fleet_health_score",
    "fleet_health_factor": "migration_fleet_health_factor",
    "fleet_anomaly": "migration_fleet_anomaly",
    "fleet_anomaly_score": "migration_fleet_anomaly_score",
    "fleet_error_trend": "migration_fleet_error_trend",
    # per process
    "rollout_percent": "migration_rollout_percent",
    "rolled_back": "migration_rollout_rolled_back_ratio",
    "rollbacks": "migration_rollbacks_total",
    # resources of versioned calls, per process (otel_migration/_calls/resources.py)
    "cpu_sum": "migration_cpu_time_seconds_sum",
    "cpu_count": "migration_cpu_time_seconds_count",
    "memory_retained": "migration_memory_retained_bytes",
    "in_flight": "migration_calls_in_flight",
    "llm_in_flight": "migration_llm_in_flight",
    "first_item_bucket": "migration_stream_time_to_first_item_seconds_bucket",
    "stream_duration_bucket": "migration_stream_duration_seconds_bucket",
    # tools and agents
    "tool_runs": "migration_tool_invocations_total",
    "tools_requested": "migration_llm_tool_calls_total",
    "agent_loops": "migration_agent_invocations_total",
    "agent_turns_sum": "migration_agent_iterations_sum",
    "agent_turns_count": "migration_agent_iterations_count",
    "agent_tool_calls_sum": "migration_agent_tool_calls_sum",
    "agent_tool_calls_count": "migration_agent_tool_calls_count",
    "agent_tokens_sum": "migration_agent_tokens_sum",
    "agent_tokens_count": "migration_agent_tokens_count",
    # events
    "events": "migration_events_total",
    # memory-leak prediction, per process (otel_migration/_analytics/leak.py)
    "memory_leak": "migration_memory_leak_ratio",
    "memory_growth": "migration_memory_growth_bytes_per_second",
    "memory_time_to_limit": "migration_memory_time_to_limit_seconds",
    # LLM
    "llm_cost": "migration_llm_cost_total",
    "llm_calls": "migration_llm_calls_total",
    "budget_utilization": "migration_llm_budget_utilization_ratio",
    "tokens_sum": "gen_ai_client_token_usage_sum",
    "llm_tokens": "migration_llm_tokens_total",
    "first_chunk_bucket": "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
    "quality_bucket": "migration_quality_score_bucket",
    "quality_count": "migration_quality_score_count",
    "quality_sum": "migration_quality_score_sum",
    "actions": "migration_quality_actions_total",
    "feedback": "migration_quality_feedback_total",
    "csat": "migration_quality_csat_total",
    "confidence_sum": "migration_quality_confidence_sum",
    "confidence_count": "migration_quality_confidence_count",
    "upgrades": "migration_quality_upgrades_total",
    # the service's processes (process.*, by opentelemetry-instrumentation-system-metrics)
    "process_cpu": "process_cpu_time_seconds_total",
    "process_memory": "process_memory_usage_bytes",
    # pipeline health: the SDK's side
    "dropped": "migration_telemetry_dropped_total",
    "queue_depth": "migration_telemetry_queue_depth",
    "spans_failed": "migration_telemetry_spans_failed_total",
    "sdk_spans_exported": "otel_sdk_exporter_span_exported_total",
    "sdk_queue_size": "otel_sdk_processor_span_queue_size",
    "sdk_queue_capacity": "otel_sdk_processor_span_queue_capacity",
    # pipeline health: the collector's own metrics
    "col_uptime": "otelcol_process_uptime",
    "col_accepted_spans": "otelcol_receiver_accepted_spans",
    "col_refused_spans": "otelcol_receiver_refused_spans",
    "col_accepted_points": "otelcol_receiver_accepted_metric_points",
    "col_refused_points": "otelcol_receiver_refused_metric_points",
    "col_failed_points": "otelcol_receiver_failed_metric_points",
    "col_sent_spans": "otelcol_exporter_sent_spans",
    "col_send_failed_spans": "otelcol_exporter_send_failed_spans",
    "col_sent_points": "otelcol_exporter_sent_metric_points",
    "col_queue_size": "otelcol_exporter_queue_size",
    "col_queue_capacity": "otelcol_exporter_queue_capacity",
    "col_memory_rss": "otelcol_process_memory_rss",
}

# Every app-side query is filtered by these two; the collector's own series by $collector.
SERVICE = 'job=~"$service"'
MIGRATION = 'migration_name=~"$migration"'
COLLECTOR = 'job=~"$collector"'
DAY = 'migration_window="24h"'
HOUR = 'migration_window="1h"'  # the fleet's percentiles, improvement and verdicts: the last hour
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
VERSION = "migration_version"
OPERATION = "migration_operation"


def sel(metric: str, *matchers: str, migration: bool = True) -> str:
    """``name{job=~"$service", migration_name=~"$migration", ...}`` for the metric of that key."""
    labels = [SERVICE, *([MIGRATION] if migration else []), *matchers]
    return f"{METRICS[metric]}{{{', '.join(labels)}}}"


def fleet(metric: str, *matchers: str) -> str:
    """A fleet series, from the aggregators that still hear from the service's processes.

    With several aggregating collectors (docs/fleet.md section 9) a service that moved to another
    one keeps its old series there, told apart by ``instance`` (the scrape target), until they
    expire: as the alert rules do, keep only those of aggregators with live instances.
    """
    return f"({sel(metric, *matchers)} and on (job, instance) {METRICS['instances']}{{{SERVICE}}} > 0)"


def of_migration(expr: str, via: str = "job", source: str = "requests") -> str:
    """Keep only series of services (and ``via`` labels) that serve the selected migration.

    For series the SDK writes without a migration label (pipeline health, GenAI token and
    time-to-first-token histograms, budgets, the process's memory): `and on (...)` the series of
    ``source`` (requests, or LLM calls to match by model) of the selected migration.
    """
    return f"({expr} and on ({via}) group by ({via}) ({sel(source)}))"


class Source:
    """Where a figure per migration and version comes from: each process's own series, combined across
    the processes by ``combine`` (``min`` keeps the worst score, ``max`` the worst flag), or the fleet's
    one series per service (``fleet=True``, read through :func:`fleet`).

    The panels only call :meth:`read`: moving a figure to the fleet is one edit of its entry below.
    """

    def __init__(self, key: str, combine: str, *, fleet: bool = False) -> None:
        self.key, self.combine, self.fleet = key, combine, fleet

    def read(self, *matchers: str, by: str) -> str:
        series = fleet(self.key, *matchers) if self.fleet else f"({sel(self.key, *matchers)})"
        return f"{self.combine} by ({by}) {series}"


# Health and the CPU verdict per version, from the collector component's merge of every process's
# calls (docs/fleet.md sections 6 and 10): one series per service, so ``combine`` only matters when
# $service selects several (then the worst: the lowest score, a raised flag, "worse", "rising").
PER_VERSION: dict[str, Source] = {
    "health_score": Source("fleet_health_score", "min", fleet=True),
    "health_factor": Source("fleet_health_factor", "min", fleet=True),
    "anomaly": Source("fleet_anomaly", "max", fleet=True),
    "anomaly_score": Source("fleet_anomaly_score", "max", fleet=True),
    # rising (1) wins over stable (0) and falling (-1)
    "error_trend": Source("fleet_error_trend", "max", fleet=True),
    "cpu_verdict": Source("verdict", "min", fleet=True),  # worse (-1) wins
}


def legend(*labels: str) -> str:
    """A legend naming the series by these labels: ``{{migration_operation}} {{migration_version}}``."""
    return " ".join(f"{{{{{label}}}}}" for label in labels)


def q(expr: str, legend: str = "__auto", *, ref: str = "A", instant: bool = False, fmt: str = "") -> Any:
    """A Prometheus target; instant for panels that show one figure per series over the range."""
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    query = query.instant() if instant else query.range()
    if fmt:
        query = query.format(prom_models.PromQueryFormat(fmt))
    return query


Query = tuple[str, str]  # (PromQL, legend)


def place(
    panel: Any,
    title: str,
    description: str,
    w: int,
    h: int,
    queries: Sequence[Query],
    *,
    instant: bool = False,
    fmt: str = "",
) -> Any:
    """A panel with its size (in grid units: 24 columns) and its queries (refIds A, B, ...), on the
    dashboard's data source."""
    panel = panel.title(title).description(description).span(w).height(h).datasource(DATASOURCE)
    for number, (expr, text) in enumerate(queries):
        panel = panel.with_target(q(expr, text, ref=chr(ord("A") + number), instant=instant, fmt=fmt))
    return panel


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=v, color=c) for v, c in steps])
    )


def last() -> common.ReduceDataOptions:
    """Single-figure panels show each series' last value (instant queries have only that one)."""
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def states(*names: tuple[int, str, str]) -> list[models.ValueMapping]:
    """Value mappings of a state gauge: (value, text, colour) for each state."""
    options = {
        str(value): models.ValueMappingResult(text=text, color=colour, index=index)
        for index, (value, text, colour) in enumerate(names)
    }
    return [models.ValueMap(options=options)]


VERDICTS = states((1, "better", "green"), (0, "inconclusive", "text"), (-1, "worse", "red"))


def bounded(panel: Any, unit: str | None, low: float | None, high: float | None, steps: Sequence[Any]) -> Any:
    """Unit, range and threshold steps, set only where given (the field config leaves the rest to Grafana)."""
    if unit is not None:
        panel = panel.unit(unit)
    if low is not None:
        panel = panel.min(low)
    if high is not None:
        panel = panel.max(high)
    return panel.thresholds(thresholds(*steps)) if steps else panel


def figures(
    kind: Any,
    title: str,
    description: str,
    w: int,
    h: int,
    queries: Sequence[Query],
    *,
    unit: str | None = "short",
    low: float | None = None,
    high: float | None = None,
    steps: Sequence[tuple[float | None, str]] = (),
    mappings: Sequence[models.ValueMapping] = (),
) -> Any:
    """One figure per series (a ``bargauge``, ``stat`` or ``gauge`` module): each series' value at the end
    of the time range, from instant queries."""
    panel = bounded(kind.Panel().reduce_options(last()), unit, low, high, steps)
    if mappings:
        panel = panel.mappings(list(mappings))
    return place(panel, title, description, w, h, queries, instant=True)


def over_time(
    title: str,
    description: str,
    w: int,
    h: int,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    low: float | None = None,
    high: float | None = None,
    steps: Sequence[tuple[float | None, str]] = (),
) -> Any:
    """A time series panel of range queries."""
    return place(bounded(timeseries.Panel(), unit, low, high, steps), title, description, w, h, queries)


def row(title: str) -> Any:
    """A row heading the panels that follow it (expanded, so Grafana keeps them at the top level)."""
    return dashboard.Row(title)


def rate(key: str, *matchers: str, by: str) -> str:
    """Per-second rate, summed over processes (``instance``) and every label not in ``by``."""
    return f"sum by ({by}) (rate({sel(key, *matchers)}[$__rate_interval]))"


def increase(key: str, *matchers: str, by: str) -> str:
    """How much a counter grew over the dashboard's time range."""
    return f"sum by ({by}) (increase({sel(key, *matchers)}[$__range]))"


def mean(key: str, *matchers: str, by: str, window: str = "range") -> str:
    """Mean of a histogram's observations: the growth of ``<key>_sum`` over that of ``<key>_count``,
    over the time range (``range``) or per rate interval (``rate``)."""
    grow = increase if window == "range" else rate
    return f"{grow(f'{key}_sum', *matchers, by=by)} / {grow(f'{key}_count', *matchers, by=by)}"


def quantiles(key: str, by: str, *matchers: str, inner: Callable[[str], str] | None = None) -> list[Query]:
    """p50 and p95 of a bucket histogram, per ``by``; ``inner`` wraps the per-process rates (a filter)."""
    rates = f"rate({sel(key, *matchers, migration=inner is None)}[$__rate_interval])"
    rates = inner(rates) if inner is not None else f"({rates})"
    names = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return [
        (f"histogram_quantile({quantile}, sum by (le, {by}) {rates})", f"{names} p{name}")
        for quantile, name in ((0.5, "50"), (0.95, "95"))
    ]


def per_version(key: str, *matchers: str, by: str) -> str:
    """A figure of :data:`PER_VERSION`, from wherever it is read now (each process, or the fleet)."""
    return PER_VERSION[key].read(*matchers, by=by)


def per(read: Callable[..., str], key: str, *labels: str, matchers: Sequence[str] = ()) -> Query:
    """``read(key, by=labels)`` (:func:`increase`, :func:`rate`, :func:`mean`, :func:`per_version`) with
    a legend naming each series by those labels."""
    return read(key, *matchers, by=", ".join(labels)), legend(*labels)


def share(part: str, whole: str) -> str:
    """``part / whole``, and 0 rather than no value where ``part`` has no series yet (no error so far)."""
    return f"({part} or 0 * {whole}) / {whole}"


def query_variable(name: str, label: str, query: str, description: str = "", *, sort: bool = True) -> Any:
    """A multi-value variable whose "All" is the regex ``.*``, refreshed with the time range."""
    variable = dashboard.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
    if description:
        variable = variable.description(description)
    variable = variable.refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True)
    variable = variable.all_value(".*")
    return variable.sort(models.VariableSort.ALPHABETICAL_ASC) if sort else variable


def variables(with_collector: bool = False) -> list[Any]:
    found = [
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        query_variable(
            "service",
            "Service",
            f"label_values({METRICS['requests']}, job)",
            "Prometheus job: the service name, scraped from the collector with honor_labels",
        ),
        query_variable(
            "migration", "Migration", f"label_values({METRICS['requests']}{{{SERVICE}}}, migration_name)"
        ),
    ]
    if with_collector:
        found.append(
            query_variable(
                "collector",
                "Collector",
                f"label_values({METRICS['col_uptime']}, job)",
                "Prometheus job of the collector's own metrics endpoint (service.telemetry)",
                sort=False,
            )
        )
    return found


def board(uid: str, title: str, description: str, panels: Sequence[Any], *, collector: bool = False) -> Any:
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["otel-migration"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .variables(variables(collector))
    )
    for number, panel in enumerate(panels, start=1):
        built = (
            built.with_row(panel.id(number))
            if isinstance(panel, dashboard.Row)
            else built.with_panel(panel.id(number))
        )
    model = built.build()
    # The SDK gives every variable the interval variable's auto/auto_count/auto_min, which Grafana
    # 11.6's published VariableModel does not have; they mean nothing on other variables.
    for variable in model.templating.list_val or []:
        variable.auto = variable.auto_min = variable.auto_count = None
    return model


# -- migration --------------------------------------------------------------------------------------
def migration_dashboard() -> Any:
    by_version = legend(VERSION)
    panels = [
        place(
            piechart.Panel()
            .pie_type(piechart_models.PieChartType.PIE)
            .display_labels([piechart_models.PieChartLabels.PERCENT])
            .reduce_options(last()),
            "Usage split by version",
            "Versioned calls per version over the dashboard's time range (migration.requests).",
            8,
            8,
            [(increase("requests", by=VERSION), by_version)],
            instant=True,
        ),
        over_time(
            "Requests per version",
            "Calls per second per version, every outcome.",
            8,
            8,
            [(rate("requests", by=VERSION), by_version)],
            unit="reqps",
        ),
        over_time(
            "Error rate per version",
            "Failed calls / calls per version; cancelled calls are left out of the denominator.",
            8,
            8,
            [
                (
                    share(
                        rate("errors", by=VERSION),
                        rate("requests", 'migration_outcome!="cancelled"', by=VERSION),
                    ),
                    by_version,
                )
            ],
            unit="percentunit",
            low=0,
        ),
        place(
            heatmap.Panel()
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit("s"))
            .cell_values(heatmap.CellValues().unit("short")),
            "Latency heatmap",
            "Calls per latency bucket (migration.duration), every version and outcome.",
            12,
            9,
            [(f"sum by (le) (increase({sel('duration_bucket')}[$__rate_interval]))", "{{le}}")],
            fmt="heatmap",
        ),
        over_time(
            "Latency p50 / p95 / p99 per version and operation",
            "Successful calls of the last hour across the fleet, from the merged exponential histograms "
            "(within 0.55 %; migration.fleet.performance.duration).",
            12,
            9,
            [
                (
                    f"max by ({OPERATION}, {VERSION}) "
                    f"{fleet('fleet_duration', HOUR, 'migration_statistic=' + json.dumps(name))}",
                    f"{legend(OPERATION, VERSION)} {name}",
                )
                for name in ("p50", "p95", "p99")
            ],
            unit="s",
        ),
        figures(
            bargauge,
            "Improvement of the candidate",
            "Candidate against control per operation, at p50, p95 and on the mean, over the last hour's "
            "successful calls across the fleet; negative means slower.",
            24,
            6,
            [
                (
                    f"max by ({OPERATION}, {VERSION}, migration_statistic) {fleet('improvement', HOUR)}",
                    legend(OPERATION, VERSION, "migration_statistic"),
                )
            ],
            unit="percent",
            steps=((None, "red"), (-10, "yellow"), (0, "green")),
        ),
        figures(
            gauge,
            "Adoption (24 h)",
            "Candidates' distinct users / all distinct users over 24 h across the fleet (merged "
            "HyperLogLog sketches, within 1.6 %).",
            6,
            8,
            [(f"avg by (migration_name) {fleet('adoption_ratio', DAY)}", "{{migration_name}}")],
            unit="percentunit",
            low=0,
            high=1,
            steps=((None, "blue"), (0.5, "green"), (0.95, "purple")),
        ),
        over_time(
            "Adoption ratio over time",
            "Candidates' share of distinct users across the fleet, over the last hour and the last 24 hours.",
            10,
            8,
            [
                (
                    f"avg by (migration_name, migration_window) {fleet('adoption_ratio')}",
                    "{{migration_name}} {{migration_window}}",
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
        ),
        figures(
            bargauge,
            "Unique users per version (24 h)",
            "Distinct users across the fleet (merged HyperLogLog sketches, within 1.6 %), summed over the "
            "selected services.",
            8,
            8,
            [(f"sum by ({VERSION}) {fleet('adoption_users', DAY)}", by_version)],
        ),
        over_time(
            "Rollout percent",
            "The rollout's percent in force (0 while the kill switch holds).",
            8,
            8,
            [(f"max by (migration_name) ({sel('rollout_percent')})", "{{migration_name}}")],
            unit="percent",
            low=0,
            high=100,
        ),
        figures(
            stat,
            "Rollbacks",
            "Kill-switch rollbacks in the time range; 'rolled back' is 1 while the kill switch holds; "
            "'sample ratio mismatch' is 1 when the fleet's users split contradicts the rollout percent "
            "(tested once one percent has held for an hour with 100 users).",
            8,
            8,
            [
                (increase("rollbacks", by="migration_name"), "rollbacks {{migration_name}}"),
                (f"max by (migration_name) ({sel('rolled_back')})", "rolled back {{migration_name}}"),
                (f"max by (migration_name) {fleet('srm')}", "sample ratio mismatch {{migration_name}}"),
            ],
            unit=None,
            steps=((None, "green"), (1, "red")),
        ),
        figures(
            bargauge,
            "Error categories",
            "Failed calls per version and category (syntax, runtime, timeout, resource, network, unknown) "
            "over the time range.",
            8,
            8,
            [per(increase, "errors", VERSION, "migration_error_category")],
        ),
        place(
            table.Panel().mappings(VERDICTS),
            "Verdicts",
            "Candidate against control per operation and metric over the last hour across the fleet "
            "(Mann-Whitney U / two-proportion test on the merged state, Holm-corrected): better, worse or "
            "inconclusive.",
            24,
            8,
            [
                (
                    f"max by (migration_name, {OPERATION}, {VERSION}, migration_metric) {fleet('verdict')}",
                    "__auto",
                )
            ],
            instant=True,
            fmt="table",
        ),
        place(
            stat.Panel().reduce_options(last()).text_mode(common_models.BigValueTextMode.NAME),
            "Adoption stage",
            "Stage of the fleet's 24 h adoption ratio: not_started, low, adopted or replaced.",
            6,
            6,
            [
                (
                    f"max by (migration_name, migration_adoption_stage) {fleet('adoption_stage')} == 1",
                    "{{migration_adoption_stage}}",
                )
            ],
            instant=True,
        ),
        figures(
            bargauge,
            "Error-free users (24 h)",
            "Share of each version's distinct users who met no error over 24 h, across the fleet "
            "(1 - error users / users, from merged sketches).",
            12,
            6,
            [(f"min by ({VERSION}) {fleet('error_free_users', DAY)}", by_version)],
            unit="percentunit",
            low=0,
            high=1,
        ),
        figures(
            stat,
            "Processes in the fleet figures",
            "Processes of each service whose state the collector merged within its stream_ttl.",
            6,
            6,
            [(f"sum by (job) {of_migration(sel('instances', migration=False))}", "{{job}}")],
        ),
    ]
    return board(
        "otel-migration-overview",
        "Migration: 1.0 -> 2.0",
        "Usage, errors, latency, adoption, rollout and verdicts of a migration measured by otel-migration.",
        panels,
    )


# -- LLM --------------------------------------------------------------------------------------------
def llm_dashboard() -> Any:
    by_version = legend(VERSION)
    by_model = "job, gen_ai_request_model"

    def cache_tokens(kind: str) -> str:
        # migration.llm.tokens: counters per process, so the ratio of their sums holds for the fleet.
        return increase("llm_tokens", f'gen_ai_token_type="{kind}"', by=f"gen_ai_request_model, {VERSION}")

    def nps_class(name: str) -> str:
        # `or 0 * all` stands for a class with no answers yet, so NPS is defined from the first answer.
        every = increase("feedback", by=VERSION)
        one = increase("feedback", f'migration_nps_class="{name}"', by=VERSION)
        return f"({one} or 0 * {every})"

    nps = f"100 * ({nps_class('promoter')} - {nps_class('detractor')}) / {increase('feedback', by=VERSION)}"
    score_count = increase("quality_count", by=VERSION)

    def band(upper: str | None, lower: str | None) -> str:
        high = increase("quality_bucket", f'le="{upper}"', by=VERSION) if upper else score_count
        if lower is None:
            return high
        below = increase("quality_bucket", f'le="{lower}"', by=VERSION)
        return f"{high} - {below}"

    bands = [
        ("poor (< 50)", "50", None),
        ("fair (50-69)", "70", "50"),
        ("good (70-89)", "90", "70"),
        ("excellent (90-100)", None, "90"),
    ]
    tokens = of_migration(
        f"rate({sel('tokens_sum', migration=False)}[$__rate_interval])", by_model, "llm_calls"
    )
    panels = [
        place(
            piechart.Panel()
            .pie_type(piechart_models.PieChartType.DONUT)
            .display_labels([piechart_models.PieChartLabels.PERCENT])
            .reduce_options(last())
            .unit("currencyUSD"),
            "Cost by tier",
            "LLM cost in USD over the time range per model tier (price table of the SDK or collector).",
            8,
            8,
            [(increase("llm_cost", by="migration_llm_tier"), "{{migration_llm_tier}}")],
            instant=True,
        ),
        figures(
            bargauge,
            "Cost by model and version",
            "LLM cost in USD over the time range per requested model and version.",
            8,
            8,
            [per(increase, "llm_cost", "gen_ai_request_model", VERSION)],
            unit="currencyUSD",
        ),
        figures(
            gauge,
            "Daily spend against budget",
            "Spend / limit of each service-wide daily budget, for the services of the selected migration.",
            8,
            8,
            [
                (
                    of_migration(
                        "max by (job, migration_budget) ("
                        + sel("budget_utilization", 'migration_budget_period="daily"', migration=False)
                        + ")"
                    ),
                    "{{migration_budget}}",
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
            steps=((None, "green"), (0.5, "yellow"), (0.8, "orange"), (0.9, "red")),
        ),
        over_time(
            "Cost per hour by version",
            "LLM spend rate, in USD per hour.",
            8,
            8,
            [(f"3600 * {rate('llm_cost', by=VERSION)}", by_version)],
            unit="currencyUSD",
        ),
        over_time(
            "Tokens per second",
            "gen_ai.client.token.usage by token type (input includes cached input). The metric has no "
            "migration label: these are the tokens of the services and models that serve the migration.",
            8,
            8,
            [(f"sum by (gen_ai_token_type) {tokens}", "{{gen_ai_token_type}}")],
        ),
        figures(
            bargauge,
            "Tokens by version and operation",
            "LLM tokens over the time range per version, operation and type (migration.llm.tokens: input "
            "includes cached input; cache_read and cache_write are parts of it).",
            8,
            8,
            [per(increase, "llm_tokens", VERSION, OPERATION, "gen_ai_token_type")],
        ),
        figures(
            bargauge,
            "Prompt-cache hit rate",
            "Cache-read input tokens / input tokens (cached ones included) over the time range, per "
            "requested model and version, from migration.llm.tokens: counters, so the ratio holds "
            "across processes, unlike the per-process gauge migration.llm.prompt_cache.hit_ratio.",
            6,
            8,
            [
                (
                    f"{cache_tokens('cache_read')} / {cache_tokens('input')}",
                    legend("gen_ai_request_model", VERSION),
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
        ),
        over_time(
            "Time to first token",
            "p50 and p95 of gen_ai.client.operation.time_to_first_chunk (streams only) per model, "
            "for the services and models that serve the migration.",
            9,
            8,
            quantiles(
                "first_chunk_bucket",
                "gen_ai_request_model",
                inner=lambda rates: of_migration(rates, by_model, "llm_calls"),
            ),
            unit="s",
        ),
        figures(
            bargauge,
            "Calls per tier",
            "LLM calls over the time range per tier and outcome.",
            9,
            8,
            [per(increase, "llm_calls", "migration_llm_tier", "migration_outcome")],
        ),
        figures(
            bargauge,
            "Quality score bands",
            "Scores (0-100) over the time range per band, from the histogram's buckets (50, 70, 90): "
            "a score of exactly 50, 70 or 90 counts in the lower band here.",
            8,
            8,
            [(band(upper, lower), f"{by_version} {name}") for name, upper, lower in bands],
        ),
        over_time(
            "Mean quality score by version",
            "Mean of the quality scores per version.",
            8,
            8,
            [(mean("quality", by=VERSION, window="rate"), by_version)],
            low=0,
            high=100,
        ),
        figures(
            bargauge,
            "User actions",
            "Approved (without edits), edited, regenerated and abandoned answers over the time range.",
            8,
            8,
            [per(increase, "actions", VERSION, "migration_quality_action")],
        ),
        figures(
            stat,
            "NPS by version",
            "Net Promoter Score over the time range: % promoters (9-10) - % detractors (0-6).",
            6,
            8,
            [(nps, by_version)],
            unit="none",
            low=-100,
            high=100,
        ),
        figures(
            stat,
            "CSAT by version",
            "Share of 4 and 5 ratings (1-5 scale) over the time range.",
            6,
            8,
            [
                (
                    share(
                        increase("csat", 'migration_csat_rating=~"4|5"', by=VERSION),
                        increase("csat", by=VERSION),
                    ),
                    by_version,
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
        ),
        figures(
            bargauge,
            "Mean confidence",
            "Mean model confidence (0-1) per version and tier over the time range.",
            6,
            8,
            [
                (
                    mean("confidence", by=f"{VERSION}, migration_llm_tier"),
                    f"confidence {legend(VERSION, 'migration_llm_tier')}",
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
        ),
        figures(
            stat,
            "Model upgrades",
            "Answers escalated to a higher model tier over the time range, per version and starting tier.",
            6,
            8,
            [
                (
                    increase("upgrades", by=f"{VERSION}, migration_llm_tier"),
                    f"{by_version} from {{{{migration_llm_tier}}}}",
                )
            ],
        ),
    ]
    return board(
        "otel-migration-llm",
        "Migration: LLM cost and quality",
        "Cost, budgets, tokens, latency and quality of the LLM calls of a migration.",
        panels,
    )


# -- resources, streams, tools and agents, events, health -------------------------------------------
def operations_dashboard() -> Any:
    by_call = f"{OPERATION}, {VERSION}"
    call = legend(OPERATION, VERSION)

    def process(key: str, combine: str) -> str:
        """A figure of the process as a whole (no migration label): per service, the worst process."""
        return f"{combine} by (job) {of_migration(sel(key, migration=False))}"

    panels = [
        row("CPU and memory of versioned calls"),
        over_time(
            "CPU time per call",
            "Mean thread CPU seconds per call, per operation and version (migration.cpu_time; a "
            "coroutine's or generator's own steps only): a version that burns more CPU shows here "
            "before it shows in latency on a loaded host.",
            8,
            8,
            [(mean("cpu", by=by_call, window="rate"), call)],
            unit="s",
            low=0,
        ),
        figures(
            bargauge,
            "CPU share of wall time",
            "CPU seconds / wall-clock seconds of the calls over the time range: near 100 % the operation "
            "is CPU-bound, near 0 it waits (I/O, sleeps, locks).",
            8,
            8,
            [
                (
                    f"{increase('cpu_sum', by=by_call)} / {increase('duration_sum', by=by_call)}",
                    call,
                )
            ],
            unit="percentunit",
            low=0,
            high=1,
        ),
        figures(
            stat,
            "CPU verdict",
            "Candidate against control on thread CPU per successful call over the last hour across the "
            "fleet (Mann-Whitney U on the merged migration.state.cpu, Holm-corrected with the other "
            "verdicts, cpu_min_effect of the control's median).",
            8,
            8,
            [per(per_version, "cpu_verdict", OPERATION, VERSION, matchers=['migration_metric="cpu"'])],
            mappings=VERDICTS,
        ),
        figures(
            bargauge,
            "Memory retained by calls (opt-in)",
            "Net bytes the calls allocated and still held when they ended, summed over the processes "
            "(migration.memory.retained; only with measure_memory = true: tracemalloc slows every "
            "allocation). Other threads' allocations during a call count too: read trends, not bytes.",
            12,
            8,
            [(f"sum by ({by_call}) ({sel('memory_retained')})", call)],
            unit="bytes",
        ),
        over_time(
            "Calls in flight",
            "Versioned calls running now per operation and version, and LLM calls per model and version "
            "(migration.calls.in_flight, migration.llm.in_flight), summed over the processes.",
            12,
            8,
            [
                (f"sum by ({by_call}) ({sel('in_flight')})", call),
                (
                    f"sum by (gen_ai_request_model, {VERSION}) ({sel('llm_in_flight')})",
                    f"LLM {legend('gen_ai_request_model', VERSION)}",
                ),
            ],
            low=0,
        ),
        row("Streams (generators and async generators)"),
        over_time(
            "Stream: time to first item",
            "p50 and p95 of the time from the call to its first item (migration.stream.time_to_first_item).",
            12,
            8,
            quantiles("first_item_bucket", by_call),
            unit="s",
        ),
        over_time(
            "Stream: duration",
            "p50 and p95 of the time from the call to the stream's exhaustion (migration.stream.duration).",
            12,
            8,
            quantiles("stream_duration_bucket", by_call),
            unit="s",
        ),
        row("Tools and agents"),
        figures(
            bargauge,
            "Tool runs",
            "execute_tool runs over the time range per tool, version and outcome "
            "(migration.tool.invocations).",
            8,
            8,
            [per(increase, "tool_runs", "gen_ai_tool_name", VERSION, "migration_outcome")],
        ),
        figures(
            bargauge,
            "Tool calls the model asked for",
            "Tool calls in LLM responses (tool_use blocks, tool_calls) over the time range per tool, model "
            "and version (migration.llm.tool_calls): asked for, not necessarily run.",
            8,
            8,
            [per(increase, "tools_requested", "gen_ai_tool_name", "gen_ai_request_model", VERSION)],
        ),
        figures(
            bargauge,
            "Agent loops",
            "invoke_agent loops over the time range per agent, version and outcome "
            "(migration.agent.invocations).",
            8,
            8,
            [per(increase, "agent_loops", "gen_ai_agent_name", VERSION, "migration_outcome")],
        ),
        figures(
            bargauge,
            "Model turns per agent loop",
            "Mean LLM calls per loop over the time range (migration.agent.iterations).",
            8,
            8,
            [per(mean, "agent_turns", "gen_ai_agent_name", VERSION)],
        ),
        figures(
            bargauge,
            "Tool calls per agent loop",
            "Mean tool calls per loop over the time range, run and asked for by the model "
            "(migration.agent.tool_calls by migration.tool.source).",
            8,
            8,
            [per(mean, "agent_tool_calls", "gen_ai_agent_name", VERSION, "migration_tool_source")],
        ),
        figures(
            bargauge,
            "Tokens per agent loop",
            "Mean input and output tokens per loop over the time range, summed over its LLM calls "
            "(migration.agent.tokens).",
            8,
            8,
            [per(mean, "agent_tokens", "gen_ai_agent_name", VERSION, "gen_ai_token_type")],
        ),
        row("Events"),
        figures(
            bargauge,
            "Events by name and version",
            "Events (otel_migration.event: retries, fallbacks, circuit breakers, cache hits and misses, "
            "generations, user actions) over the time range (migration.events).",
            12,
            8,
            [per(increase, "events", "migration_event_name", VERSION)],
        ),
        over_time(
            "Events per second",
            "The same events per second, by name and version.",
            12,
            8,
            [per(rate, "events", "migration_event_name", VERSION)],
            low=0,
        ),
        row("Health and prediction (the fleet's; memory per process; docs/health.md)"),
        figures(
            bargauge,
            "Health score",
            "0-100 per version over the last 5 minutes, from error rate, slow calls, saturation and "
            "telemetry loss against their budgets, on the whole fleet's calls "
            "(migration.fleet.health.score).",
            8,
            8,
            [per(per_version, "health_score", VERSION)],
            low=0,
            high=100,
            steps=((None, "red"), (50, "orange"), (80, "green")),
        ),
        figures(
            bargauge,
            "Health inputs",
            "Each input's part of the score (migration.fleet.health.factor): 100 % does no harm, 0 loses its "
            "whole weight (errors 40, latency 30, saturation 15, telemetry loss 15 points).",
            8,
            8,
            [per(per_version, "health_factor", VERSION, "migration_health_input")],
            unit="percentunit",
            low=0,
            high=1,
            steps=((None, "red"), (0.5, "orange"), (0.9, "green")),
        ),
        figures(
            stat,
            "Error trend",
            "Per version and error category over the last 30 minutes (Mann-Kendall test on the per-minute "
            "error rate of the fleet, migration.fleet.error.trend): rising, stable or falling.",
            8,
            8,
            [per(per_version, "error_trend", VERSION, "migration_error_category")],
            mappings=states((1, "rising", "red"), (0, "stable", "text"), (-1, "falling", "green")),
        ),
        figures(
            stat,
            "Anomalies",
            "The minute that ended health_delay (90 s) ago against the 30 before it, per version: request "
            "rate (both ways), error rate and latency (upwards), on the fleet's calls "
            "(migration.fleet.anomaly; 0 too while there is too little history).",
            12,
            8,
            [per(per_version, "anomaly", VERSION, "migration_metric")],
            mappings=states((1, "anomalous", "red"), (0, "normal", "green")),
        ),
        figures(
            bargauge,
            "Anomaly z-score",
            "Robust z-score of that minute (median and MAD of the 30 before; "
            "migration.fleet.anomaly.score): an anomaly from 5.",
            12,
            8,
            [per(per_version, "anomaly_score", VERSION, "migration_metric")],
            unit="none",
            steps=((None, "green"), (3, "orange"), (5, "red")),
        ),
        figures(
            stat,
            "Memory leak",
            "Whether a process's memory floor (the minimum after each garbage collection) rises "
            "significantly over the last hour (migration.memory.leak): leaking in any process of the "
            "service.",
            8,
            8,
            [(process("memory_leak", "max"), "{{job}}")],
            mappings=states((1, "leaking", "red"), (0, "no leak", "green")),
        ),
        figures(
            stat,
            "Memory floor growth",
            "Theil-Sen slope of the memory floor (migration.memory.growth), the fastest process.",
            8,
            8,
            [(process("memory_growth", "max"), "{{job}}")],
            unit="Bps",
        ),
        figures(
            stat,
            "Time to memory limit",
            "Predicted time until a leaking process reaches its memory limit at the current growth "
            "(migration.memory.time_to_limit; only while leaking), the soonest process.",
            8,
            8,
            [(process("memory_time_to_limit", "min"), "{{job}}")],
            unit="s",
            steps=((None, "red"), (3600, "orange"), (86400, "green")),
        ),
    ]
    return board(
        "otel-migration-operations",
        "Migration: resources, tools, events and health",
        "What the versioned calls cost (CPU, memory, concurrency, streams), the tools and agent loops they "
        "run, the events they emit, and each version's health, anomalies and memory-leak prediction.",
        panels,
    )


# -- pipeline health --------------------------------------------------------------------------------
def pipeline_dashboard() -> Any:
    def col(key: str, by: str, *, counter: bool = True) -> str:
        selector = f"{METRICS[key]}{{{COLLECTOR}}}"
        return (
            f"sum by ({by}) (rate({selector}[$__rate_interval]))"
            if counter
            else f"sum by ({by}) ({selector})"
        )

    def counts(by: str, *named: tuple[str, str]) -> list[Query]:
        """Per-second rates of the collector's counters ``col_<key>`` per ``by``, each named by its text."""
        return [(col(f"col_{key}", by), f"{text} {legend(by)}") for key, text in named]

    def app(key: str, by: str, *matchers: str, counter: bool = True) -> str:
        selector = sel(key, *matchers, migration=False)
        inner = f"increase({selector}[$__rate_interval])" if counter else selector
        return f"sum by ({by}) {of_migration(inner)}"

    process_cpu = sel("process_cpu", migration=False)
    panels = [
        over_time(
            "Dropped calls",
            "Finished calls the SDK's in-process queue could not take (max_queue_size), per service.",
            6,
            8,
            [(app("dropped", "job, reason"), "{{job}} {{reason}}")],
        ),
        over_time(
            "Call queue (SDK)",
            "Finished calls waiting in the SDK's in-process queue for its aggregator "
            "(migration.telemetry.queue.depth), per service; past max_queue_size they are dropped.",
            6,
            8,
            [(app("queue_depth", "job", counter=False), "{{job}}")],
            low=0,
        ),
        over_time(
            "Failed span exports (SDK)",
            "Spans the SDK's exporter could not deliver (collector down, refusing, timing out).",
            6,
            8,
            [
                (app("spans_failed", "job, exporter"), "{{job}} {{exporter}}"),
                (
                    app("sdk_spans_exported", "job, error_type", 'error_type!=""'),
                    "{{job}} {{error_type}} (SDK)",
                ),
            ],
        ),
        over_time(
            "SDK span queue",
            "Spans waiting in the SDK's batch span processor, against its capacity.",
            6,
            8,
            [
                (app("sdk_queue_size", "job", counter=False), "{{job}} queued"),
                (app("sdk_queue_capacity", "job", counter=False), "{{job}} capacity"),
            ],
            low=0,
        ),
        over_time(
            "Collector: received",
            "Spans and metric points the collector's receivers accepted, refused (memory limiter) or "
            "failed, per second.",
            12,
            8,
            counts(
                "receiver",
                ("accepted_spans", "spans accepted"),
                ("refused_spans", "spans refused"),
                ("accepted_points", "metric points accepted"),
                ("refused_points", "metric points refused"),
                ("failed_points", "metric points failed"),
            ),
        ),
        over_time(
            "Collector: exported",
            "Spans and metric points the collector's exporters sent, and spans they failed to send "
            "(after retries), per second.",
            12,
            8,
            counts(
                "exporter",
                ("sent_spans", "spans sent"),
                ("send_failed_spans", "spans failed"),
                ("sent_points", "metric points sent"),
            ),
        ),
        over_time(
            "Collector: export queue",
            "Batches waiting in each exporter's sending queue, against its capacity.",
            12,
            8,
            [
                (col("col_queue_size", "exporter", counter=False), "{{exporter}} queued"),
                (col("col_queue_capacity", "exporter", counter=False), "{{exporter}} capacity"),
            ],
            low=0,
        ),
        figures(
            stat,
            "Collector: memory",
            "Resident memory of each collector process (the memory limiter refuses data at 80 %).",
            12,
            8,
            [(col("col_memory_rss", "job", counter=False), "{{job}}")],
            unit="bytes",
        ),
        over_time(
            "Service processes: CPU",
            "CPU the processes of each service use, in cores (process.cpu.time, user and system, "
            "summed over the processes): the host side of what the instrumented service and its "
            "telemetry cost, next to what the pipeline loses.",
            12,
            8,
            [(f"sum by (job) {of_migration(f'rate({process_cpu}[$__rate_interval])')}", "{{job}}")],
            low=0,
        ),
        figures(
            stat,
            "Service processes: memory",
            "Resident memory of the largest process of each service (process.memory.usage): a worker "
            "that grows while the others do not shows here before it hits its limit (leak prediction: "
            "the operations dashboard).",
            12,
            8,
            [(f"max by (job) {of_migration(sel('process_memory', migration=False))}", "{{job}}")],
            unit="bytes",
        ),
    ]
    return board(
        "otel-migration-pipeline",
        "Migration: telemetry pipeline health",
        "What the telemetry pipeline itself loses: calls dropped in process, span exports that failed, "
        "queues, the collector's own receive and export counts, and the CPU and memory of the "
        "service's processes.",
        panels,
        collector=True,
    )


DASHBOARDS: dict[str, Callable[[], Any]] = {
    "migration.json": migration_dashboard,
    "llm.json": llm_dashboard,
    "operations.json": operations_dashboard,
    "pipeline-health.json": pipeline_dashboard,
}


def render(build: Callable[[], Any]) -> str:
    """The dashboard as Grafana's JSON model, with a stable key order and a final newline."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def typescript(rendered: dict[str, str]) -> str:
    """A module assigning each dashboard to @grafana/schema's Dashboard type, and each panel's options
    and field config to its plugin's published Options and FieldConfig types (for tsc --strict)."""
    lines = [
        "// Generated by collector_config/dashboards/generate.py --typescript: do not edit.",
        'import type { Dashboard, Panel, RowPanel, DataQuery } from "@grafana/schema";',
    ]
    # plugin -> its module in @grafana/schema, and whether it publishes a FieldConfig (custom field
    # options); those that do not take none.
    plugins = {
        "piechart": ("PieChartPanelCfg", True),
        "timeseries": ("TimeSeriesPanelCfg", True),
        "heatmap": ("HeatmapPanelCfg", True),
        "gauge": ("GaugePanelCfg", False),
        "stat": ("StatPanelCfg", False),
        "table": ("TablePanelCfg", True),
        "bargauge": ("BarGaugePanelCfg", False),
        "text": ("TextPanelCfg", False),
    }
    for plugin, (cfg, _) in plugins.items():
        lines.append(
            f'import type * as {plugin} from "@grafana/schema/dist/esm/raw/composable/{plugin}/panelcfg/x/'
            f'{cfg}_types.gen.js";'
        )
    lines += [
        "",
        "// The JSON holds an enum's value, not the TypeScript enum: compare against the values.",
        "type Json<T> = T extends string",
        "  ? `${T}`",
        "  : T extends readonly (infer U)[]",
        "    ? Json<U>[]",
        "    : T extends object",
        "      ? { [K in keyof T]: Json<T[K]> }",
        "      : T;",
        "// A Prometheus target: the common DataQuery plus the fields the Prometheus query editor writes.",
        "type PromQuery = DataQuery & {",
        "  expr: string;",
        "  legendFormat?: string;",
        "  instant?: boolean;",
        "  range?: boolean;",
        '  format?: "time_series" | "table" | "heatmap";',
        "};",
        "type Typed<O, F> = Omit<Json<Panel<O, F>>, 'options' | 'targets'> & {",
        "  options?: Json<O>;",
        "  targets?: Json<PromQuery>[];",
        "};",
    ]
    names = []
    for filename, text_ in rendered.items():
        model = json.loads(text_)
        name = filename.removesuffix(".json").replace("-", "_")
        names.append(name)
        for number, panel in enumerate(model.get("panels", [])):
            plugin = panel["type"]
            if plugin == "row":  # a row heading: no plugin, Grafana's RowPanel
                lines.append(
                    f"export const {name}_panel_{number}: Json<RowPanel> = {json.dumps(panel, indent=2)};"
                )
                continue
            custom = f"{plugin}.FieldConfig" if plugins[plugin][1] else "Record<string, never>"
            lines.append(
                f"export const {name}_panel_{number}: Typed<{plugin}.Options, {custom}> = "
                f"{json.dumps(panel, indent=2)};"
            )
        lines.append(f"export const {name}: Json<Dashboard> = {text_.rstrip()};")
    return "\n".join(lines) + "\n"


def broken(rendered: dict[str, str]) -> dict[str, str]:
    """The dashboards with one wrong field type (a panel height as a string): proof that tsc checks."""
    name = next(iter(rendered))
    model = json.loads(rendered[name])
    model["panels"][0]["gridPos"]["h"] = str(model["panels"][0]["gridPos"]["h"])
    return {**rendered, name: json.dumps(model, indent=2, sort_keys=True) + "\n"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file differs")
    parser.add_argument("--typescript", type=Path, help="also write the TypeScript module tsc checks")
    parser.add_argument(
        "--broken-typescript",
        type=Path,
        help="also write the module with one panel broken, which tsc must reject",
    )
    args = parser.parse_args(argv)
    rendered = {filename: render(build) for filename, build in DASHBOARDS.items()}
    if args.typescript is not None:
        args.typescript.write_text(typescript(rendered))
    if args.broken_typescript is not None:
        args.broken_typescript.write_text(typescript(broken(rendered)))
    stale = [name for name, text_ in rendered.items() if _committed(name) != text_]
    if args.check:
        for name in stale:
            print(f"collector_config/dashboards/{name} is not what generate.py makes: run make dashboards")
        return 1 if stale else 0
    for name in stale:
        (HERE / name).write_text(rendered[name])
    return 0


def _committed(name: str) -> str | None:
    path = HERE / name
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    raise SystemExit(main())
