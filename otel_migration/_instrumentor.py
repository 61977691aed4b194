"""Zero-code start: ``opentelemetry-instrument python app.py`` with a config file and no code change.

Registered under the ``opentelemetry_instrumentor`` entry point. When a distro or configurator
(e.g. ``opentelemetry-distro``) has already installed SDK providers, we attach to them; without
one, :func:`configure` builds the pipeline from the ``OTEL_*`` variables itself. The instrumented
"library" is the user's own code, so there are no instrumentation dependencies.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from ._setup import configure, shutdown

__all__ = ["MigrationInstrumentor"]


class MigrationInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Wraps the targets of the configuration file; ``instrument(**settings)`` is ``configure``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        configure(**kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        shutdown()
