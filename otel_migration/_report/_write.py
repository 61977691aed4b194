"""``otel_migration.report()``: one call from a source to the HTML, JSON and CSV files of a report."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from .._analytics.snapshot import Snapshot
from ._figures import build
from ._html import render_html
from ._model import Figures, Measurements
from ._otlp_file import from_otlp_file
from ._process import from_process
from ._prometheus import from_prometheus
from ._tabular import to_csv, to_json

__all__ = ["INSTALL_HINT", "figures_from", "report"]

INSTALL_HINT = "the HTML report needs plotly: pip install 'otel-migration[report]'"

Source = str | os.PathLike[str] | Snapshot | Sequence[Snapshot] | None


def figures_from(source: Source = None, *, range_s: float = 86_400.0) -> Figures:
    """The figures of ``source``: see :func:`report`."""
    measurements: Measurements
    if source is None:
        measurements = from_process(())
    elif isinstance(source, Snapshot):
        measurements = from_process((source,))
    elif isinstance(source, str) and source.startswith(("http://", "https://")):
        measurements = from_prometheus(source, range_s=range_s)
    elif isinstance(source, str | os.PathLike):
        measurements = from_otlp_file(source)
    else:
        measurements = from_process(tuple(source))
    return build(measurements)


def report(
    path: str | os.PathLike[str],
    *,
    source: Source = None,
    title: str = "Migration report",
    range_s: float = 86_400.0,
) -> Path:
    """Write the migration report: ``path`` (HTML), and the same figures beside it as ``.json`` and ``.csv``.

    ``source`` is where the figures come from:

    - ``None``: this process, now (:func:`otel_migration.snapshot` and the LLM and quality counts);
    - a :class:`~otel_migration.Snapshot`, or several taken over time (adoption over time needs them);
    - the path of an OTLP JSON lines file, as the default file exporter writes
      (``otel-migration-telemetry.jsonl``);
    - the URL of a Prometheus server scraping the collector (``http://127.0.0.1:9090``), with
      ``range_s`` seconds of adoption history.

    The HTML file is self-contained (plotly.js inlined): it opens offline. Needs the ``report`` extra.
    Returns the HTML file's path.
    """
    if importlib.util.find_spec("plotly") is None:
        raise ImportError(INSTALL_HINT)
    figures = figures_from(source, range_s=range_s)
    html_path = Path(path)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_name(html_path.name + ".html")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(figures, title=title), encoding="utf-8")
    html_path.with_suffix(".json").write_text(to_json(figures), encoding="utf-8")
    html_path.with_suffix(".csv").write_text(to_csv(figures), encoding="utf-8")
    return html_path
