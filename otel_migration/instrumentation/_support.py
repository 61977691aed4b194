"""Whether the installed SDK is one an instrumentor supports: one requirement string per SDK, checked here.

Each instrumentor declares its range once (``SUPPORTED = "anthropic >= 0.43, < 3"``), returns it
from ``instrumentation_dependencies()`` as contrib instrumentations do, and asks :func:`supported`
before wrapping anything. We check it ourselves rather than through an ``instruments`` extra:
under ``opentelemetry-instrument`` that extra would gate every entry point of the package.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Collection
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from packaging.requirements import Requirement

__all__ = ["SDKInstrumentor", "supported"]

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


class SDKInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An LLM SDK's instrumentor: its supported range, checked before wrapping, and every wrap undone.

    Subclasses name the range in ``SUPPORTED`` and wrap methods with :meth:`wrap` in
    :meth:`wrap_sdk`; ``uninstrument()`` unwraps exactly what was wrapped.
    """

    SUPPORTED: ClassVar[str]

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.SUPPORTED,)

    def _instrument(self, **kwargs: Any) -> None:
        self._wrapped: list[tuple[Any, str]] = []
        if supported(self.SUPPORTED):
            self.wrap_sdk()

    def wrap_sdk(self) -> None:
        raise NotImplementedError

    def wrap(self, module: ModuleType, cls_name: str, method: str, wrapper: Any) -> None:
        """Wrap ``module.cls_name.method`` if the SDK has it (older versions lack some classes)."""
        cls = getattr(module, cls_name, None)
        if cls is not None and hasattr(cls, method):
            wrapt.wrap_function_wrapper(module, f"{cls_name}.{method}", wrapper)
            self._wrapped.append((cls, method))

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, method in getattr(self, "_wrapped", []):
            unwrap(cls, method)
        self._wrapped = []
