"""The migration report: figures from a source (this process, an OTLP JSON lines file, Prometheus)
written as one self-contained HTML file plus JSON and CSV of the same figures.

Data flows one way: a source module reads into :class:`_model.Measurements`, :mod:`._figures`
derives every number once, and :mod:`._html` and :mod:`._tabular` only present them.
"""

from ._prometheus import PROMETHEUS_NAMES, ReportSourceError
from ._write import INSTALL_HINT, figures_from, report

__all__ = ["INSTALL_HINT", "PROMETHEUS_NAMES", "ReportSourceError", "figures_from", "report"]
