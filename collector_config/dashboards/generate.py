"""Generate the Grafana dashboards of otel-migration (migration, LLM, pipeline health) as JSON.

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
mismatch) are read from the fleet's series, ``migration_fleet_*``, that the collector's
``migration_analytics`` component computes from every process's merged state (docs/fleet.md): one
series per service and migration, with no per-process label (Prometheus's ``instance`` on them is
the aggregating collector).

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
# unit s, `_ratio` for unit 1, `_percent` for %). The collector's own metrics (`otelcol_*`) come
# from its internal telemetry endpoint, which writes counters without `_total`.
METRICS: dict[str, str] = {
    # migration
    "requests": "migration_requests_total",
    "errors": "migration_errors_total",
    "duration_bucket": "migration_duration_seconds_bucket",
    # the fleet's figures (collector component migration_analytics; dimensionless: no suffix)
    "adoption_ratio": "migration_fleet_adoption_ratio",
    "adoption_users": "migration_fleet_adoption_users",
    "adoption_stage": "migration_fleet_adoption_stage",
    "error_free_users": "migration_fleet_error_free_users",
    "fleet_duration": "migration_fleet_performance_duration_seconds",
    "improvement": "migration_fleet_performance_improvement_percent",
    "verdict": "migration_fleet_verdict",
    "srm": "migration_fleet_sample_ratio_mismatch",
    "instances": "migration_fleet_instances",
    # per process
    "rollout_percent": "migration_rollout_percent",
    "rolled_back": "migration_rollout_rolled_back_ratio",
    "rollbacks": "migration_rollbacks_total",
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
    # pipeline health: the SDK's side
    "dropped": "migration_telemetry_dropped_total",
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
    time-to-first-token histograms, budgets): `and on (...)` the series of ``source`` (requests,
    or LLM calls to match by model) of the selected migration.
    """
    return f"({expr} and on ({via}) group by ({via}) ({sel(source)}))"


def q(expr: str, legend: str = "__auto", *, ref: str = "A", instant: bool = False, fmt: str = "") -> Any:
    """A Prometheus target; instant for panels that show one figure per series over the range."""
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    query = query.instant() if instant else query.range()
    if fmt:
        query = query.format(prom_models.PromQueryFormat(fmt))
    return query


def place(panel: Any, title: str, description: str, w: int, h: int, targets: Sequence[Any]) -> Any:
    """A panel with its size (in grid units: 24 columns) and targets, on the dashboard's data source."""
    panel = panel.title(title).description(description).span(w).height(h).datasource(DATASOURCE)
    for target in targets:
        panel = panel.with_target(target)
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


def rate(key: str, *matchers: str, by: str) -> str:
    """Per-second rate, summed over processes (``instance``) and every label not in ``by``."""
    return f"sum by ({by}) (rate({sel(key, *matchers)}[$__rate_interval]))"


def increase(key: str, *matchers: str, by: str) -> str:
    """How much a counter grew over the dashboard's time range."""
    return f"sum by ({by}) (increase({sel(key, *matchers)}[$__range]))"


def share(part: str, whole: str) -> str:
    """``part / whole``, and 0 rather than no value where ``part`` has no series yet (no error so far)."""
    return f"({part} or 0 * {whole}) / {whole}"


def variables(with_collector: bool = False) -> list[Any]:
    found = [
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dashboard.QueryVariable("service")
        .label("Service")
        .description("Prometheus job: the service name, scraped from the collector with honor_labels")
        .datasource(DATASOURCE)
        .query(f"label_values({METRICS['requests']}, job)")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
        dashboard.QueryVariable("migration")
        .label("Migration")
        .datasource(DATASOURCE)
        .query(f"label_values({METRICS['requests']}{{{SERVICE}}}, migration_name)")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]
    if with_collector:
        found.append(
            dashboard.QueryVariable("collector")
            .label("Collector")
            .description("Prometheus job of the collector's own metrics endpoint (service.telemetry)")
            .datasource(DATASOURCE)
            .query(f"label_values({METRICS['col_uptime']}, job)")
            .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
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
        built = built.with_panel(panel.id(number))
    model = built.build()
    # The SDK gives every variable the interval variable's auto/auto_count/auto_min, which Grafana
    # 11.6's published VariableModel does not have; they mean nothing on other variables.
    for variable in model.templating.list_val or []:
        variable.auto = variable.auto_min = variable.auto_count = None
    return model


# -- migration --------------------------------------------------------------------------------------
def migration_dashboard() -> Any:
    version = "migration_version"
    quantiles = [
        q(
            f"max by (migration_operation, {version}) "
            f"{fleet('fleet_duration', HOUR, 'migration_statistic=' + json.dumps(name))}",
            f"{{{{migration_operation}}}} {{{{{version}}}}} {name}",
            ref=ref,
        )
        for ref, name in zip("ABC", ("p50", "p95", "p99"), strict=True)
    ]
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
            [q(increase("requests", by=version), f"{{{{{version}}}}}", instant=True)],
        ),
        place(
            timeseries.Panel().unit("reqps"),
            "Requests per version",
            "Calls per second per version, every outcome.",
            8,
            8,
            [q(rate("requests", by=version), f"{{{{{version}}}}}")],
        ),
        place(
            timeseries.Panel().unit("percentunit").min(0),
            "Error rate per version",
            "Failed calls / calls per version; cancelled calls are left out of the denominator.",
            8,
            8,
            [
                q(
                    share(
                        rate("errors", by=version),
                        rate("requests", 'migration_outcome!="cancelled"', by=version),
                    ),
                    f"{{{{{version}}}}}",
                )
            ],
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
            [
                q(
                    f"sum by (le) (increase({sel('duration_bucket')}[$__rate_interval]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
        ),
        place(
            timeseries.Panel().unit("s"),
            "Latency p50 / p95 / p99 per version and operation",
            "Successful calls of the last hour across the fleet, from the merged exponential histograms "
            "(within 0.55 %; migration.fleet.performance.duration).",
            12,
            9,
            quantiles,
        ),
        place(
            bargauge.Panel()
            .reduce_options(last())
            .unit("percent")
            .thresholds(thresholds((None, "red"), (-10, "yellow"), (0, "green"))),
            "Improvement of the candidate",
            "Candidate against control per operation, at p50, p95 and on the mean, over the last hour's "
            "successful calls across the fleet; negative means slower.",
            24,
            6,
            [
                q(
                    f"max by (migration_operation, {version}, migration_statistic) "
                    f"{fleet('improvement', HOUR)}",
                    f"{{{{migration_operation}}}} {{{{{version}}}}} {{{{migration_statistic}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            gauge.Panel()
            .unit("percentunit")
            .min(0)
            .max(1)
            .reduce_options(last())
            .thresholds(thresholds((None, "blue"), (0.5, "green"), (0.95, "purple"))),
            "Adoption (24 h)",
            "Candidates' distinct users / all distinct users over 24 h across the fleet (merged "
            "HyperLogLog sketches, within 1.6 %).",
            6,
            8,
            [q(f"avg by (migration_name) {fleet('adoption_ratio', DAY)}", "{{migration_name}}")],
        ),
        place(
            timeseries.Panel().unit("percentunit").min(0).max(1),
            "Adoption ratio over time",
            "Candidates' share of distinct users across the fleet, over the last hour and the last 24 hours.",
            10,
            8,
            [
                q(
                    f"avg by (migration_name, migration_window) {fleet('adoption_ratio')}",
                    "{{migration_name}} {{migration_window}}",
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("short"),
            "Unique users per version (24 h)",
            "Distinct users across the fleet (merged HyperLogLog sketches, within 1.6 %), summed over the "
            "selected services.",
            8,
            8,
            [
                q(
                    f"sum by ({version}) {fleet('adoption_users', DAY)}",
                    f"{{{{{version}}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            timeseries.Panel().unit("percent").min(0).max(100),
            "Rollout percent",
            "The rollout's percent in force (0 while the kill switch holds).",
            8,
            8,
            [q(f"max by (migration_name) ({sel('rollout_percent')})", "{{migration_name}}")],
        ),
        place(
            stat.Panel().reduce_options(last()).thresholds(thresholds((None, "green"), (1, "red"))),
            "Rollbacks",
            "Kill-switch rollbacks in the time range; 'rolled back' is 1 while the kill switch holds; "
            "'sample ratio mismatch' is 1 when the fleet's users split contradicts the rollout percent "
            "(tested once one percent has held for an hour with 100 users).",
            8,
            8,
            [
                q(increase("rollbacks", by="migration_name"), "rollbacks {{migration_name}}", instant=True),
                q(
                    f"max by (migration_name) ({sel('rolled_back')})",
                    "rolled back {{migration_name}}",
                    ref="B",
                    instant=True,
                ),
                q(
                    f"max by (migration_name) {fleet('srm')}",
                    "sample ratio mismatch {{migration_name}}",
                    ref="C",
                    instant=True,
                ),
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("short"),
            "Error categories",
            "Failed calls per version and category (syntax, runtime, timeout, resource, network, unknown) "
            "over the time range.",
            8,
            8,
            [
                q(
                    increase("errors", by=f"{version}, migration_error_category"),
                    f"{{{{{version}}}}} {{{{migration_error_category}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            table.Panel().mappings(
                [
                    models.ValueMap(
                        options={
                            "1": models.ValueMappingResult(text="better", color="green", index=0),
                            "0": models.ValueMappingResult(text="inconclusive", color="text", index=1),
                            "-1": models.ValueMappingResult(text="worse", color="red", index=2),
                        }
                    )
                ]
            ),
            "Verdicts",
            "Candidate against control per operation and metric over the last hour across the fleet "
            "(Mann-Whitney U / two-proportion test on the merged state, Holm-corrected): better, worse or "
            "inconclusive.",
            24,
            8,
            [
                q(
                    f"max by (migration_name, migration_operation, {version}, migration_metric) "
                    f"{fleet('verdict')}",
                    instant=True,
                    fmt="table",
                )
            ],
        ),
        place(
            stat.Panel().reduce_options(last()).text_mode(common_models.BigValueTextMode.NAME),
            "Adoption stage",
            "Stage of the fleet's 24 h adoption ratio: not_started, low, adopted or replaced.",
            6,
            6,
            [
                q(
                    f"max by (migration_name, migration_adoption_stage) {fleet('adoption_stage')} == 1",
                    "{{migration_adoption_stage}}",
                    instant=True,
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("percentunit").min(0).max(1),
            "Error-free users (24 h)",
            "Share of each version's distinct users who met no error over 24 h, across the fleet "
            "(1 - error users / users, from merged sketches).",
            12,
            6,
            [q(f"min by ({version}) {fleet('error_free_users', DAY)}", f"{{{{{version}}}}}", instant=True)],
        ),
        place(
            stat.Panel().reduce_options(last()).unit("short"),
            "Processes in the fleet figures",
            "Processes of each service whose state the collector merged within its stream_ttl.",
            6,
            6,
            [
                q(
                    f"sum by (job) {of_migration(sel('instances', migration=False))}",
                    "{{job}}",
                    instant=True,
                )
            ],
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
    version = "migration_version"
    by_model = "job, gen_ai_request_model"

    def cache_tokens(kind: str) -> str:
        # migration.llm.tokens: counters per process, so the ratio of their sums holds for the fleet.
        return increase("llm_tokens", f'gen_ai_token_type="{kind}"', by=f"gen_ai_request_model, {version}")

    def nps_class(name: str) -> str:
        # `or 0 * all` stands for a class with no answers yet, so NPS is defined from the first answer.
        every = increase("feedback", by=version)
        one = increase("feedback", f'migration_nps_class="{name}"', by=version)
        return f"({one} or 0 * {every})"

    nps = f"100 * ({nps_class('promoter')} - {nps_class('detractor')}) / {increase('feedback', by=version)}"
    score_count = increase("quality_count", by=version)

    def band(upper: str | None, lower: str | None) -> str:
        high = increase("quality_bucket", f'le="{upper}"', by=version) if upper else score_count
        if lower is None:
            return high
        below = increase("quality_bucket", f'le="{lower}"', by=version)
        return f"{high} - {below}"

    bands = [("poor (< 50)", "50", None), ("fair (50-69)", "70", "50"), ("good (70-89)", "90", "70")]
    band_targets = [
        q(band(upper, lower), f"{{{{{version}}}}} {name}", ref=ref, instant=True)
        for ref, (name, upper, lower) in zip("ABC", bands, strict=True)
    ] + [q(band(None, "90"), f"{{{{{version}}}}} excellent (90-100)", ref="D", instant=True)]
    tokens = of_migration(
        f"rate({sel('tokens_sum', migration=False)}[$__rate_interval])", by_model, "llm_calls"
    )
    first_chunk = of_migration(
        f"rate({sel('first_chunk_bucket', migration=False)}[$__rate_interval])", by_model, "llm_calls"
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
            [q(increase("llm_cost", by="migration_llm_tier"), "{{migration_llm_tier}}", instant=True)],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("currencyUSD"),
            "Cost by model and version",
            "LLM cost in USD over the time range per requested model and version.",
            8,
            8,
            [
                q(
                    increase("llm_cost", by=f"gen_ai_request_model, {version}"),
                    f"{{{{gen_ai_request_model}}}} {{{{{version}}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            gauge.Panel()
            .unit("percentunit")
            .min(0)
            .max(1)
            .reduce_options(last())
            .thresholds(thresholds((None, "green"), (0.5, "yellow"), (0.8, "orange"), (0.9, "red"))),
            "Daily spend against budget",
            "Spend / limit of each service-wide daily budget, for the services of the selected migration.",
            8,
            8,
            [
                q(
                    of_migration(
                        "max by (job, migration_budget) ("
                        + sel("budget_utilization", 'migration_budget_period="daily"', migration=False)
                        + ")"
                    ),
                    "{{migration_budget}}",
                    instant=True,
                )
            ],
        ),
        place(
            timeseries.Panel().unit("currencyUSD"),
            "Cost per hour by version",
            "LLM spend rate, in USD per hour.",
            12,
            8,
            [q(f"3600 * {rate('llm_cost', by=version)}", f"{{{{{version}}}}}")],
        ),
        place(
            timeseries.Panel().unit("short"),
            "Tokens per second",
            "gen_ai.client.token.usage by token type (input includes cached input). The metric has no "
            "migration label: these are the tokens of the services and models that serve the migration.",
            12,
            8,
            [
                q(
                    f"sum by (gen_ai_token_type) {tokens}",
                    "{{gen_ai_token_type}}",
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("percentunit").min(0).max(1),
            "Prompt-cache hit rate",
            "Cache-read input tokens / input tokens (cached ones included) over the time range, per "
            "requested model and version, from migration.llm.tokens: counters, so the ratio holds "
            "across processes, unlike the per-process gauge migration.llm.prompt_cache.hit_ratio.",
            6,
            8,
            [
                q(
                    f"{cache_tokens('cache_read')} / {cache_tokens('input')}",
                    f"{{{{gen_ai_request_model}}}} {{{{{version}}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            timeseries.Panel().unit("s"),
            "Time to first token",
            "p50 and p95 of gen_ai.client.operation.time_to_first_chunk (streams only) per model, "
            "for the services and models that serve the migration.",
            9,
            8,
            [
                q(
                    f"histogram_quantile({quantile}, sum by (le, gen_ai_request_model) {first_chunk})",
                    f"{{{{gen_ai_request_model}}}} p{name}",
                    ref=ref,
                )
                for ref, (quantile, name) in zip("AB", ((0.5, "50"), (0.95, "95")), strict=True)
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("short"),
            "Calls per tier",
            "LLM calls over the time range per tier and outcome.",
            9,
            8,
            [
                q(
                    increase("llm_calls", by="migration_llm_tier, migration_outcome"),
                    "{{migration_llm_tier}} {{migration_outcome}}",
                    instant=True,
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("short"),
            "Quality score bands",
            "Scores (0-100) over the time range per band, from the histogram's buckets (50, 70, 90): "
            "a score of exactly 50, 70 or 90 counts in the lower band here.",
            8,
            8,
            band_targets,
        ),
        place(
            timeseries.Panel().unit("short").min(0).max(100),
            "Mean quality score by version",
            "Mean of the quality scores per version.",
            8,
            8,
            [
                q(
                    f"{rate('quality_sum', by=version)} / {rate('quality_count', by=version)}",
                    f"{{{{{version}}}}}",
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("short"),
            "User actions",
            "Approved (without edits), edited, regenerated and abandoned answers over the time range.",
            8,
            8,
            [
                q(
                    increase("actions", by=f"{version}, migration_quality_action"),
                    f"{{{{{version}}}}} {{{{migration_quality_action}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            stat.Panel().reduce_options(last()).min(-100).max(100).unit("none"),
            "NPS by version",
            "Net Promoter Score over the time range: % promoters (9-10) - % detractors (0-6).",
            6,
            8,
            [q(nps, f"{{{{{version}}}}}", instant=True)],
        ),
        place(
            stat.Panel().reduce_options(last()).unit("percentunit").min(0).max(1),
            "CSAT by version",
            "Share of 4 and 5 ratings (1-5 scale) over the time range.",
            6,
            8,
            [
                q(
                    share(
                        increase("csat", 'migration_csat_rating=~"4|5"', by=version),
                        increase("csat", by=version),
                    ),
                    f"{{{{{version}}}}}",
                    instant=True,
                )
            ],
        ),
        place(
            bargauge.Panel().reduce_options(last()).unit("percentunit").min(0).max(1),
            "Mean confidence",
            "Mean model confidence (0-1) per version and tier over the time range.",
            6,
            8,
            [
                q(
                    f"{increase('confidence_sum', by=f'{version}, migration_llm_tier')} / "
                    f"{increase('confidence_count', by=f'{version}, migration_llm_tier')}",
                    f"confidence {{{{{version}}}}} {{{{migration_llm_tier}}}}",
                    instant=True,
                ),
            ],
        ),
        place(
            stat.Panel().reduce_options(last()).unit("short"),
            "Model upgrades",
            "Answers escalated to a higher model tier over the time range, per version and starting tier.",
            6,
            8,
            [
                q(
                    increase("upgrades", by=f"{version}, migration_llm_tier"),
                    f"{{{{{version}}}}} from {{{{migration_llm_tier}}}}",
                    instant=True,
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


# -- pipeline health --------------------------------------------------------------------------------
def pipeline_dashboard() -> Any:
    def col(key: str, by: str, *, counter: bool = True) -> str:
        selector = f"{METRICS[key]}{{{COLLECTOR}}}"
        return (
            f"sum by ({by}) (rate({selector}[$__rate_interval]))"
            if counter
            else f"sum by ({by}) ({selector})"
        )

    def app(key: str, by: str, *matchers: str, counter: bool = True) -> str:
        selector = sel(key, *matchers, migration=False)
        inner = f"increase({selector}[$__rate_interval])" if counter else selector
        return f"sum by ({by}) {of_migration(inner)}"

    panels = [
        place(
            timeseries.Panel().unit("short"),
            "Dropped calls",
            "Finished calls the SDK's in-process queue could not take (max_queue_size), per service.",
            8,
            8,
            [q(app("dropped", "job, reason"), "{{job}} {{reason}}")],
        ),
        place(
            timeseries.Panel().unit("short"),
            "Failed span exports (SDK)",
            "Spans the SDK's exporter could not deliver (collector down, refusing, timing out).",
            8,
            8,
            [
                q(app("spans_failed", "job, exporter"), "{{job}} {{exporter}}"),
                q(
                    app("sdk_spans_exported", "job, error_type", 'error_type!=""'),
                    "{{job}} {{error_type}} (SDK)",
                    ref="B",
                ),
            ],
        ),
        place(
            timeseries.Panel().unit("short").min(0),
            "SDK span queue",
            "Spans waiting in the SDK's batch span processor, against its capacity.",
            8,
            8,
            [
                q(app("sdk_queue_size", "job", counter=False), "{{job}} queued"),
                q(app("sdk_queue_capacity", "job", counter=False), "{{job}} capacity", ref="B"),
            ],
        ),
        place(
            timeseries.Panel().unit("short"),
            "Collector: received",
            "Spans and metric points the collector's receivers accepted, refused (memory limiter) or "
            "failed, per second.",
            12,
            8,
            [
                q(col("col_accepted_spans", "receiver"), "spans accepted {{receiver}}"),
                q(col("col_refused_spans", "receiver"), "spans refused {{receiver}}", ref="B"),
                q(col("col_accepted_points", "receiver"), "metric points accepted {{receiver}}", ref="C"),
                q(col("col_refused_points", "receiver"), "metric points refused {{receiver}}", ref="D"),
                q(col("col_failed_points", "receiver"), "metric points failed {{receiver}}", ref="E"),
            ],
        ),
        place(
            timeseries.Panel().unit("short"),
            "Collector: exported",
            "Spans and metric points the collector's exporters sent, and spans they failed to send "
            "(after retries), per second.",
            12,
            8,
            [
                q(col("col_sent_spans", "exporter"), "spans sent {{exporter}}"),
                q(col("col_send_failed_spans", "exporter"), "spans failed {{exporter}}", ref="B"),
                q(col("col_sent_points", "exporter"), "metric points sent {{exporter}}", ref="C"),
            ],
        ),
        place(
            timeseries.Panel().unit("short").min(0),
            "Collector: export queue",
            "Batches waiting in each exporter's sending queue, against its capacity.",
            12,
            8,
            [
                q(col("col_queue_size", "exporter", counter=False), "{{exporter}} queued"),
                q(col("col_queue_capacity", "exporter", counter=False), "{{exporter}} capacity", ref="B"),
            ],
        ),
        place(
            stat.Panel().reduce_options(last()).unit("bytes"),
            "Collector: memory",
            "Resident memory of each collector process (the memory limiter refuses data at 80 %).",
            12,
            8,
            [q(col("col_memory_rss", "job", counter=False), "{{job}}", instant=True)],
        ),
    ]
    return board(
        "otel-migration-pipeline",
        "Migration: telemetry pipeline health",
        "What the telemetry pipeline itself loses: calls dropped in process, span exports that failed, "
        "queues, and the collector's own receive and export counts.",
        panels,
        collector=True,
    )


DASHBOARDS: dict[str, Callable[[], Any]] = {
    "migration.json": migration_dashboard,
    "llm.json": llm_dashboard,
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
        'import type { Dashboard, Panel, DataQuery } from "@grafana/schema";',
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
