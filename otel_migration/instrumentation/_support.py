"""Whether the installed SDK is one an instrumentor supports: one requirement string per SDK, checked here.

Each instrumentor declares its range once (``SUPPORTED = "anthropic >= 0.43, < 3"``), returns it
from ``instrumentation_dependencies()`` as contrib instrumentations do, and asks :func:`supported`
before wrapping anything. We check it ourselves rather than through an ``instruments`` extra:
under ``opentelemetry-instrument`` that extra would gate every entry point of the package.
"""

from __future__ import annotations

import importlib.metadata
import logging

from packaging.requirements import Requirement

__all__ = ["supported"]

_logger = logging.getLogger("otel_migration.instrumentation")


def supported(requirement: str) -> bool:
    """True when the installed distribution satisfies ``requirement``; logs why not otherwise."""
    wanted = Requirement(requirement)
    try:
        version = importlib.metadata.version(wanted.name)
    except importlib.metadata.PackageNotFoundError:
        _logger.debug("otel-migration: %s is not installed; nothing to instrument", wanted.name)
        return False
    if not wanted.specifier.contains(version, prereleases=True):
        _logger.warning(
            "otel-migration: %s %s is outside %s; not instrumented", wanted.name, version, requirement
        )
        return False
    return True
