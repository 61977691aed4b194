"""The public surface: exported names and documented telemetry names stay in step with the code."""

from __future__ import annotations

from pathlib import Path

import otel_migration
from otel_migration._core import semconv as _semconv

DOCS = Path(__file__).resolve().parents[1] / "docs" / "telemetry.md"


def test_all_is_exactly_the_public_surface() -> None:
    import inspect

    public = {
        name
        for name in dir(otel_migration)
        if not name.startswith("_") and not inspect.ismodule(getattr(otel_migration, name))
    }
    assert set(otel_migration.__all__) - {"__version__"} == public


def test_every_emitted_name_is_documented() -> None:
    text = DOCS.read_text()
    names = [
        value
        for key, value in vars(_semconv).items()
        if key.isupper() and isinstance(value, str) and "." in value and key != "INSTRUMENTATION_SCOPE"
    ]
    assert names, "no names found: the check would pass vacuously"
    missing = [name for name in names if f"`{name}`" not in text]
    assert missing == []


def test_reads_answer_without_a_configuration() -> None:
    """A health check may read before anything is configured: empty answers, never an error."""
    otel_migration.shutdown()
    assert otel_migration.snapshot().migrations == {}
    assert otel_migration.llm_stats() == []
