"""The report's figures as JSON and CSV: the same rows the charts are drawn from, for spreadsheets."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import Any

from ._model import SECTIONS, Figure, Figures

__all__ = ["to_csv", "to_json"]


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a value is shown as missing."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _row(figure: Figure) -> dict[str, Any]:
    return {column: _finite(getattr(figure, column)) for column in Figure.COLUMNS}


def to_json(figures: Figures) -> str:
    """``{"source", "taken_at", "notes", "sections": {section: [row, ...]}}``, sections in report order."""
    document = {
        "source": figures.source,
        "taken_at": figures.taken_at,
        "notes": list(figures.notes),
        "columns": list(Figure.COLUMNS),
        "sections": {name: [_row(f) for f in figures.rows if f.section == name] for name, _title in SECTIONS},
    }
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def to_csv(figures: Figures) -> str:
    """One tidy table: a row per figure, the columns of :class:`Figure`; empty cells for None."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=Figure.COLUMNS, lineterminator="\n")
    writer.writeheader()
    for figure in figures.rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(figure).items()})
    return out.getvalue()
