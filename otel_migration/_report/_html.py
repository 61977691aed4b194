"""The report as one self-contained HTML file: plotly charts, plotly.js inlined once, no network.

A person opens it from a mail attachment or a CI artifact, offline: nothing is fetched (no CDN, no
fonts). Sections follow the dashboards. A section without data says so in words rather than drawing
an empty chart. Each version keeps its colour in every chart.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ._figures import version_key
from ._model import SECTIONS, Figure, Figures

__all__ = ["render_html"]

_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D", "#BAB0AC")
# Apart from the versions' colours, so a category is never mistaken for a version.
_CATEGORY_COLOURS = {
    "timeout": "#8C564B",
    "network": "#9467BD",
    "runtime": "#D62728",
    "resource": "#E377C2",
    "syntax": "#17BECF",
    "unknown": "#7F7F7F",
}
_ACTION_COLOURS = {
    "approved": "#54A24B",
    "edited": "#EECA3B",
    "regenerated": "#9467BD",
    "abandoned": "#D62728",
}
# Models are not versions: their own hues, none of the versions' first ones.
_MODEL_PALETTE = ("#9467BD", "#17BECF", "#BCBD22", "#8C564B", "#E377C2", "#7F7F7F")
_WINDOW_LINES = {
    "1h": {"color": "#3B75AF", "width": 3},
    "24h": {"color": "#7F7F7F", "width": 2, "dash": "dot"},
}
_STAT_COLOURS = {"p50": "#9ECAE9", "p95": "#3B75AF", "mean": "#7F7F7F"}
_STATE_STYLE = {1.0: ("better", "#2E7D32"), -1.0: ("worse", "#C62828"), 0.0: ("not decided", "#616161")}
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 360,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
    "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
    "legend": {"orientation": "h", "y": -0.2},
    # Versions are words, not numbers: "1.0" and "2.0" on a linear axis would be points 1 and 2.
    "xaxis": {"type": "category"},
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2933;
       background: #f5f7fa; }
header { background: #1f2933; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #cbd2d9; font-size: 14px; }
main { padding: 8px 32px 32px; max-width: 1400px; }
section { background: #fff; border-radius: 8px; margin: 18px 0; padding: 8px 20px 16px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 18px; margin: 12px 0; }
/* auto-fill, not auto-fit: a chart is drawn as soon as its div is parsed, before the next one exists;
   with auto-fit the lone first chart would span the row, be drawn that wide, and then be clipped. */
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; }
.grid > * { min-width: 0; }
.empty { color: #616161; font-style: italic; }
ul.verdicts { list-style: none; padding: 0; }
ul.verdicts li { margin: 8px 0; line-height: 1.5; display: flex; align-items: baseline; }
.badge { flex: none; width: 92px; text-align: center; color: #fff; border-radius: 4px;
         padding: 1px 6px; margin-right: 10px; font-size: 12px; font-weight: 600; }
.notes { color: #8a4b00; }
"""


# Charts size themselves when drawn; once the whole page is laid out, fit each to its cell again.
_RESIZE = (
    "<script>window.addEventListener('load', function () {"
    "document.querySelectorAll('.js-plotly-plot').forEach(function (gd) { Plotly.Plots.resize(gd); });"
    "});</script>"
)


def _colours(versions: Iterable[str]) -> dict[str, str]:
    ordered = sorted(set(versions), key=version_key)
    return {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(ordered)}


def _name(row: Figure, several: bool) -> str:
    return f"{row.migration} {row.version}" if several else row.version


class _Page:
    def __init__(self, figures: Figures) -> None:
        self.figures = figures
        self.several = len(figures.migrations()) > 1
        self.colours = _colours(r.version for r in figures.rows if r.version)
        self.count = 0

    def chart(self, data: list[dict[str, Any]], title: str, **layout: Any) -> str:
        """One plotly chart as a div plus the script that draws it (plotly.js is on the page once)."""
        import plotly.graph_objects as go

        self.count += 1
        xaxis = {**_LAYOUT["xaxis"], **layout.pop("xaxis", {})}
        figure = go.Figure(
            data=data, layout={**_LAYOUT, "title": {"text": title, "x": 0.01}, "xaxis": xaxis, **layout}
        )
        return str(
            figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{self.count}",
                config={"displaylogo": False, "responsive": True},
            )
        )

    def rows(self, section: str, metric: str) -> list[Figure]:
        return [r for r in self.figures.select(section, metric) if r.value is not None]

    def bars_by_version(self, rows: list[Figure], title: str, axis: str, **layout: Any) -> str:
        percent = axis.startswith("%")  # the figure is a fraction; the axis shows percent
        data = [
            {
                "type": "bar",
                "x": [_name(r, self.several)],
                "y": [100 * (r.value or 0.0) if percent else r.value],
                "name": _name(r, self.several),
                "marker": {"color": self.colours[r.version]},
                "text": [_fmt(r.value, axis)],
                "textposition": "outside",
                "cliponaxis": False,
            }
            for r in rows
        ]
        yaxis = {"title": axis, **layout.pop("yaxis", {})}
        return self.chart(data, title, yaxis=yaxis, showlegend=False, **layout)

    # -- sections ---------------------------------------------------------------------------------
    def version_split(self) -> list[str]:
        charts = []
        requests = self.rows("version_split", "requests")
        for migration in sorted({r.migration for r in requests}):
            rows = [r for r in requests if r.migration == migration]
            pie = {
                "type": "pie",
                "labels": [r.version for r in rows],
                "values": [r.value for r in rows],
                "marker": {"colors": [self.colours[r.version] for r in rows]},
                "textinfo": "label+percent+value",
                "hole": 0.35,
                "sort": False,
            }
            charts.append(self.chart([pie], f"Calls by version: {migration}"))
        users = self.rows("version_split", "users_24h")
        if users:
            charts.append(self.bars_by_version(users, "Unique users by version (24 h)", "users"))
        return charts

    def adoption(self) -> list[str]:
        charts = []
        ratios = self.rows("adoption", "ratio")
        series: dict[tuple[str, str], list[Figure]] = defaultdict(list)
        for r in ratios:
            series[(r.migration, r.label)].append(r)
        if series:
            data = [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "x": [_time(r.at) for r in rows],
                    "y": [100 * (r.value or 0.0) for r in rows],
                    "name": f"{migration + ' ' if self.several else ''}users on the candidate, last {window}",
                    "line": _WINDOW_LINES.get(window, {"width": 2}),
                }
                for (migration, window), rows in sorted(series.items())
            ]
            charts.append(
                self.chart(
                    data,
                    "Adoption: candidates' share of users",
                    xaxis={"type": "date"},
                    yaxis={"title": "%", "range": [0, 105]},
                )
            )
            stages = {r.migration: r.text for r in self.figures.select("adoption", "stage")}
            for migration in sorted({m for m, _ in series}):
                last = [r for r in series.get((migration, "24h"), []) if r.at is not None]
                if not last:
                    continue
                gauge = {
                    "type": "indicator",
                    "mode": "gauge+number",
                    "value": 100 * (last[-1].value or 0.0),
                    "number": {"suffix": " %"},
                    "gauge": {"axis": {"range": [0, 100]}, "bar": {"color": _PALETTE[1]}},
                }
                title = f"Adoption now (24 h): {migration}, stage {stages.get(migration, 'unknown')}"
                charts.append(self.chart([gauge], title, height=300))
        return charts

    def errors(self) -> list[str]:
        charts = []
        errors = self.rows("errors", "errors")
        if errors:
            categories = sorted({r.label for r in errors})
            versions = sorted(
                {(r.migration, r.version) for r in errors}, key=lambda k: (k[0], version_key(k[1]))
            )
            data = []
            for category in categories:
                counts = {(r.migration, r.version): r.value for r in errors if r.label == category}
                data.append(
                    {
                        "type": "bar",
                        "name": category,
                        "x": [f"{m} {v}" if self.several else v for m, v in versions],
                        "y": [counts.get(k, 0) for k in versions],
                        "marker": {"color": _CATEGORY_COLOURS.get(category, "#7F7F7F")},
                    }
                )
            charts.append(
                self.chart(data, "Errors by version and category", barmode="stack", yaxis={"title": "errors"})
            )
        rates = self.rows("errors", "error_rate")
        if rates:
            charts.append(self.bars_by_version(rates, "Error rate by version", "% of calls"))
        return charts

    def latency(self) -> list[str]:
        charts = []
        durations = self.rows("latency", "duration_s")
        for migration, operation in sorted({(r.migration, r.operation) for r in durations}):
            rows = [r for r in durations if r.migration == migration and r.operation == operation]
            stats = [s for s in ("p50", "p95", "p99", "mean") if any(r.label == s for r in rows)]
            data = []
            for version in sorted({r.version for r in rows}, key=version_key):
                values = {r.label: r.value for r in rows if r.version == version}
                data.append(
                    {
                        "type": "bar",
                        "name": version,
                        "x": stats,
                        "y": [1000 * (values.get(s) or 0.0) for s in stats],
                        "marker": {"color": self.colours[version]},
                        "hovertemplate": "%{x}: %{y:.2f} ms",
                    }
                )
            title = f"Latency of {operation}{' (' + migration + ')' if self.several else ''}: recent calls"
            charts.append(self.chart(data, title, barmode="group", yaxis={"title": "ms"}))
        buckets = self.rows("latency", "bucket")
        for migration, operation in sorted({(r.migration, r.operation) for r in buckets}):
            rows = [r for r in buckets if r.migration == migration and r.operation == operation]
            charts.append(self._distribution(rows, migration, operation))
        return charts

    def _distribution(self, rows: list[Figure], migration: str, operation: str) -> str:
        """Share of each version's calls per bucket, trimmed to the buckets that hold any call."""
        labels = list(dict.fromkeys(r.label for r in rows))  # rows are in bucket order
        used = [i for i, label in enumerate(labels) if any(r.value for r in rows if r.label == label)]
        labels = labels[used[0] : used[-1] + 1] if used else labels
        data = []
        for version in sorted({r.version for r in rows}, key=version_key):
            counts = {r.label: r.value or 0.0 for r in rows if r.version == version}
            total = sum(counts.values()) or 1.0
            data.append(
                {
                    "type": "bar",
                    "name": version,
                    "x": [_bucket_label(label) for label in labels],
                    "y": [100 * counts.get(label, 0.0) / total for label in labels],
                    "customdata": [counts.get(label, 0.0) for label in labels],
                    "marker": {"color": self.colours[version]},
                    "hovertemplate": "%{x}: %{y:.1f} % (%{customdata:.0f} calls)",
                }
            )
        title = (
            f"Latency distribution of {operation}{' (' + migration + ')' if self.several else ''}: all calls"
        )
        return self.chart(
            data,
            title,
            barmode="group",
            yaxis={"title": "% of the version's calls"},
            xaxis={"title": "duration"},
        )

    def verdicts(self) -> list[str]:
        charts = []
        order = {"latency": 0, "error_rate": 1, "quality": 2, "cost": 3}  # as the dashboards list them
        verdicts = sorted(self.figures.select("verdicts", "verdict"), key=lambda r: order.get(r.label, 9))
        if verdicts:
            items = []
            for r in verdicts:
                word, colour = _STATE_STYLE.get(r.value or 0.0, _STATE_STYLE[0.0])
                badge = f'<span class="badge" style="background:{colour}">{word}</span>'
                items.append(f"<li>{badge}{html.escape(r.text)}</li>")
            charts.append(f'<ul class="verdicts">{"".join(items)}</ul>')
        improvements = self.rows("verdicts", "improvement_pct")
        if improvements:
            data = []
            for stat in ("p50", "p95", "mean"):
                rows = [r for r in improvements if r.label == stat]
                if rows:
                    data.append(
                        {
                            "type": "bar",
                            "name": stat,
                            "marker": {"color": _STAT_COLOURS[stat]},
                            "x": [f"{r.operation} {r.version}" for r in rows],
                            "y": [r.value for r in rows],
                            "hovertemplate": "%{x}: %{y:.1f} %",
                        }
                    )
            charts.append(
                self.chart(
                    data,
                    "Candidate faster than the control (negative: slower)",
                    barmode="group",
                    yaxis={"title": "% faster", "zeroline": True, "zerolinecolor": "#616161"},
                    bargap=0.35,
                )
            )
        return charts

    def cost(self) -> list[str]:
        charts = []
        cost = self.rows("cost", "cost_usd")
        if cost:
            versions = sorted(
                {(r.migration, r.version) for r in cost}, key=lambda k: (k[0], version_key(k[1]))
            )
            data = []
            for index, model in enumerate(sorted({r.label for r in cost})):
                spent = {(r.migration, r.version): r.value for r in cost if r.label == model}
                tier = next(r.text for r in cost if r.label == model)
                data.append(
                    {
                        "type": "bar",
                        "name": f"{model} ({tier})",
                        "marker": {"color": _MODEL_PALETTE[index % len(_MODEL_PALETTE)]},
                        "x": [f"{m} {v}" if self.several else v for m, v in versions],
                        "y": [spent.get(k, 0.0) for k in versions],
                        "hovertemplate": "%{x}: $%{y:.4f}",
                    }
                )
            charts.append(
                self.chart(data, "LLM spend by version and model", barmode="stack", yaxis={"title": "USD"})
            )
        per_call = self.rows("cost", "cost_per_call_usd")
        if per_call:
            charts.append(self.bars_by_version(per_call, "Cost per LLM call", "USD"))
        budgets = self.rows("cost", "budget_utilization")
        if budgets:
            gauges = [
                {
                    "type": "indicator",
                    "mode": "gauge+number",
                    "value": 100 * (r.value or 0.0),
                    "number": {"suffix": " %"},
                    "title": {"text": r.label},
                    "domain": {"x": [i / len(budgets) + 0.03, (i + 1) / len(budgets) - 0.03], "y": [0, 1]},
                    "gauge": {
                        "axis": {"range": [0, max(100, 100 * (r.value or 0.0))]},
                        "bar": {"color": "#C62828" if (r.value or 0.0) >= 0.9 else "#52606D"},
                        "steps": [
                            {"range": [50, 90], "color": "#FFF3C4"},
                            {"range": [90, 100], "color": "#FDE2E1"},
                        ],
                    },
                }
                for i, r in enumerate(budgets)
            ]
            charts.append(self.chart(gauges, "Budget used this period", height=300))
        return charts

    def quality(self) -> list[str]:
        charts = []
        means = self.rows("quality", "quality_mean")
        if means:
            charts.append(
                self.bars_by_version(means, "Mean quality score (0-100)", "score", yaxis={"range": [0, 105]})
            )
        actions = self.rows("quality", "actions")
        if actions:
            versions = sorted(
                {(r.migration, r.version) for r in actions}, key=lambda k: (k[0], version_key(k[1]))
            )
            totals = {
                k: sum(r.value or 0.0 for r in actions if (r.migration, r.version) == k) for k in versions
            }
            data = []
            for action in ("approved", "edited", "regenerated", "abandoned"):
                counts = {(r.migration, r.version): r.value or 0.0 for r in actions if r.label == action}
                if counts:
                    data.append(
                        {
                            "type": "bar",
                            "name": action,
                            "x": [f"{m} {v}" if self.several else v for m, v in versions],
                            "y": [100 * counts.get(k, 0.0) / (totals[k] or 1.0) for k in versions],
                            "customdata": [counts.get(k, 0.0) for k in versions],
                            "marker": {"color": _ACTION_COLOURS[action]},
                            "hovertemplate": "%{x}: %{y:.1f} % (%{customdata:.0f})",
                        }
                    )
            charts.append(
                self.chart(
                    data, "What users did with the answers", barmode="stack", yaxis={"title": "% of answers"}
                )
            )
        nps = self.rows("quality", "nps")
        if nps:
            charts.append(
                self.bars_by_version(nps, "Net Promoter Score", "NPS", yaxis={"range": [-105, 105]})
            )
        return charts


def _fmt(value: float | None, axis: str) -> str:
    if value is None:
        return ""
    if axis.startswith("%"):
        return f"{100 * value:.1f} %"
    if axis == "USD":
        return f"${value:.5f}"
    if axis == "NPS":
        return f"{value:+.0f}" if value else "0"
    if axis == "score":
        return f"{value:.1f}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}"


def _time(at: float | None) -> str:
    return dt.datetime.fromtimestamp(at or 0.0, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _bucket_label(label: str) -> str:
    if label == "+Inf":
        return "> last bound"
    seconds = float(label)
    return f"≤ {seconds * 1000:g} ms" if seconds < 1 else f"≤ {seconds:g} s"


def render_html(figures: Figures, *, title: str = "Migration report") -> str:
    """The whole page; plotly.js (about 4.6 MB) is inlined once, so the file works offline."""
    from plotly.offline import get_plotlyjs

    page = _Page(figures)
    builders = {
        "version_split": page.version_split,
        "adoption": page.adoption,
        "errors": page.errors,
        "latency": page.latency,
        "verdicts": page.verdicts,
        "cost": page.cost,
        "quality": page.quality,
    }
    sections = []
    for name, heading in SECTIONS:
        parts = builders[name]()
        body = (
            f'<div class="grid">{"".join(parts)}</div>'
            if parts
            else ('<p class="empty">No data for this section in this source.</p>')
        )
        if name == "verdicts" and parts and parts[0].startswith("<ul"):
            body = parts[0] + (f'<div class="grid">{"".join(parts[1:])}</div>' if parts[1:] else "")
        sections.append(f'<section id="{name}"><h2>{html.escape(heading)}</h2>{body}</section>')
    notes = "".join(f'<p class="notes">{html.escape(n)}</p>' for n in figures.notes)
    subtitle = f"{html.escape(figures.source)} · taken {_time(figures.taken_at)} UTC"
    if figures.migrations():
        subtitle += f" · migrations: {html.escape(', '.join(figures.migrations()))}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><header><h1>{html.escape(title)}</h1><p>{subtitle}</p></header>"
        f"<main>{notes}{''.join(sections)}</main>{_RESIZE}</body></html>\n"
    )
