"""Process CPU and memory with the official ``process.*`` names, by the contrib instrumentation.

``opentelemetry-instrumentation-system-metrics`` reads psutil and reports ``process.cpu.time``,
``process.cpu.utilization``, ``process.memory.usage``, ``process.memory.virtual``,
``process.thread.count``, ``process.open_file_descriptor.count`` and ``process.context_switches``
as the semantic conventions name them; we ask for those only (no ``system.*``: a host agent's job,
and no deprecated ``process.runtime.*``). Its instrumentor is a process-wide singleton bound to one
MeterProvider: if the application instrumented it already, we leave it as it is.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from opentelemetry.metrics import MeterProvider

__all__ = ["PROCESS_METRICS", "start_process_metrics"]

_logger = logging.getLogger(__name__)
_ours: Any = None  # the instrumentor when we started it

PROCESS_METRICS: Final[dict[str, list[str] | None]] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
}


def start_process_metrics(meter_provider: MeterProvider) -> bool:
    """Report ``process.*`` on ``meter_provider``; False when unavailable or already reporting elsewhere."""
    try:
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        _logger.warning("otel-migration: opentelemetry-instrumentation-system-metrics is missing")
        return False
    global _ours
    try:
        existing = getattr(SystemMetricsInstrumentor, "_instance", None)
        if existing is not None and existing.is_instrumented_by_opentelemetry:
            if existing is not _ours:
                return False  # the application's own (constructing it again would reset its config)
            existing.uninstrument()  # ours, on a previous MeterProvider: move it to this one
        instrumentor = SystemMetricsInstrumentor(config=dict(PROCESS_METRICS))
        instrumentor.instrument(meter_provider=meter_provider)
        _ours = instrumentor
        return True
    except Exception:
        _logger.exception("otel-migration: could not start the process metrics")
        return False
