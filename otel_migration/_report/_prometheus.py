"""The Prometheus source: the series the collector's ``prometheus`` exporter exposes, queried over HTTP.

Names are the exporter's translation of ours (dots to underscores, ``_total`` on counters, the unit
as a suffix: ``migration.duration`` in seconds becomes ``migration_duration_seconds``); the
end-to-end test checks them against the real collector. Each metric is one instant query for its
raw series, so the figures are derived by the same code as for the other sources; only the
adoption ratio is a range query, for its history.

Counters and histograms add up across a service's processes, so they are read as each process
exports them. Figures a process can only estimate on its own calls and users (percentiles,
improvement, distinct users, adoption, stage, verdicts) are read from the fleet's series that the
collector's ``migration_analytics`` component computes from every process's merged state
(``migration_fleet_*``, docs/fleet.md): one series per migration, whatever the number of processes.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final

from .._core import semconv as sc
from ._model import Histogram, Measurements
from ._series import Series, to_measurements

__all__ = ["PROMETHEUS_NAMES", "ReportSourceError", "from_prometheus"]

_COUNTERS: Final = {
    sc.METRIC_REQUESTS: "migration_requests_total",
    sc.METRIC_ERRORS: "migration_errors_total",
    sc.METRIC_LLM_COST: "migration_llm_cost_total",
    sc.METRIC_LLM_CALLS: "migration_llm_calls_total",
    sc.METRIC_QUALITY_ACTIONS: "migration_quality_actions_total",
    sc.METRIC_QUALITY_FEEDBACK: "migration_quality_feedback_total",
}
_INSTANCES: Final = "migration_fleet_instances"
_HOUR: Final = '{migration_window="1h"}'
# The figure each gauge stands for (as the package names it) -> its series and matchers. The
# fleet's percentiles and improvement are those of the last hour, as its verdicts and the alerts;
# its series carry the same labels as the per-process gauges, plus ``migration_window``.
_FLEET_GAUGES: Final = {
    sc.METRIC_PERFORMANCE_DURATION: ("migration_fleet_performance_duration_seconds", _HOUR),
    sc.METRIC_PERFORMANCE_IMPROVEMENT: ("migration_fleet_performance_improvement_percent", _HOUR),
    sc.METRIC_ADOPTION_USERS: ("migration_fleet_adoption_users", ""),
    sc.METRIC_ADOPTION_STAGE: ("migration_fleet_adoption_stage", ""),
    sc.METRIC_VERDICT: ("migration_fleet_verdict", ""),
}
# A budget is service-wide and enforced in each process: no fleet figure.
_GAUGES: Final = {sc.METRIC_LLM_BUDGET_UTILIZATION: "migration_llm_budget_utilization_ratio"}
_HISTOGRAMS: Final = {
    sc.METRIC_DURATION: "migration_duration_seconds",
    sc.METRIC_QUALITY_SCORE: "migration_quality_score",
}
_RATIO: Final = "migration_fleet_adoption_ratio"
#: Every Prometheus name the report reads (the e2e test checks the collector exports each).
PROMETHEUS_NAMES: Final = (
    *_COUNTERS.values(),
    *_GAUGES.values(),
    *(name for name, _ in _FLEET_GAUGES.values()),
    _INSTANCES,
    *(f"{name}_bucket" for name in _HISTOGRAMS.values()),
    _RATIO,
)
_POINTS: Final = 300  # points of the adoption history


class ReportSourceError(Exception):
    """A source could not be read (unreachable server, bad answer); the message says which and why."""


def _wire(attribute: str) -> str:
    return attribute.replace(".", "_")


class _Client:
    def __init__(self, url: str, timeout: float) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, **params: str) -> list[dict[str, Any]]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise ReportSourceError(f"Prometheus at {self.base} answered {exc.code} to {params}") from exc
        except (OSError, ValueError) as exc:
            raise ReportSourceError(f"could not query Prometheus at {self.base}: {exc}") from exc
        if body.get("status") != "success":
            raise ReportSourceError(f"Prometheus at {self.base}: {body.get('error', body)}")
        return list(body["data"]["result"])


def _fleet(name: str, matchers: str = "") -> str:
    """A fleet series, from the aggregators that still hear from the service's processes.

    With several aggregating collectors (docs/fleet.md section 9) a service that moved keeps its
    old series at the previous one, told apart by ``instance``, until they expire: as the alert
    rules do, keep only those of aggregators with live instances. ``instance`` (the aggregator,
    not a process) is not among the attributes the report reads.
    """
    return f"{name}{matchers} and on (job, instance) {_INSTANCES} > 0"


def _labels(result: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in result["metric"].items() if k != "__name__"}


def from_prometheus(
    url: str, *, range_s: float = 86_400.0, timeout: float = 10.0, at: float | None = None
) -> Measurements:
    """Measurements from the Prometheus at ``url``, now (or ``at``), with ``range_s`` of adoption history."""
    client = _Client(url, timeout)
    now = time.time() if at is None else at
    instant = {"time": f"{now:.3f}"}
    series = Series(source=f"Prometheus {client.base}", taken_at=now)
    for name, prom in _COUNTERS.items():
        for result in client.get("/api/v1/query", query=prom, **instant):
            series.counters[name].append((_labels(result), float(result["value"][1])))
    gauges = [(name, prom) for name, prom in _GAUGES.items()]
    gauges += [(name, _fleet(prom, matchers)) for name, (prom, matchers) in _FLEET_GAUGES.items()]
    for name, prom in gauges:
        for result in client.get("/api/v1/query", query=prom, **instant):
            value = float(result["value"][1])
            if not math.isnan(value):
                series.gauges[name].append((_labels(result), value))
    for name, prom in _HISTOGRAMS.items():
        series.histograms[name].extend(_histograms(client, prom, instant))

    step = max(1.0, range_s / _POINTS)
    for result in client.get(
        "/api/v1/query_range",
        query=_fleet(_RATIO),
        start=f"{now - range_s:.3f}",
        end=f"{now:.3f}",
        step=f"{step:g}",
    ):
        labels = _labels(result)
        series.ratio_history.extend((labels, float(t), float(v)) for t, v in result["values"])
    return to_measurements(series, _wire)


def _histograms(
    client: _Client, prom: str, instant: Mapping[str, str]
) -> list[tuple[dict[str, str], Histogram]]:
    """Each series' buckets (cumulative in Prometheus) as per-bucket counts, with the sum of values."""
    buckets: dict[tuple[tuple[str, str], ...], dict[float, float]] = defaultdict(dict)
    for result in client.get("/api/v1/query", query=f"{prom}_bucket", **instant):
        labels = _labels(result)
        le = float(labels.pop("le"))
        buckets[tuple(sorted(labels.items()))][le] = float(result["value"][1])
    sums = {
        tuple(sorted(_labels(r).items())): float(r["value"][1])
        for r in client.get("/api/v1/query", query=f"{prom}_sum", **instant)
    }
    histograms = []
    for key, cumulative in buckets.items():
        bounds = tuple(sorted(cumulative))
        counts, below = [], 0.0
        for bound in bounds:
            counts.append(round(cumulative[bound] - below))
            below = cumulative[bound]
        histograms.append((dict(key), Histogram(bounds, tuple(counts), sums.get(key, 0.0))))
    return histograms
