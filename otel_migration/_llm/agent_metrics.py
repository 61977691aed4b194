"""The instruments of tools and agents, all created here, once per MeterProvider.

Counts are kept under one lock and reported through observable counters (a dict increment on the
call path, as the recorder does for versioned calls); the per-loop figures of an agent are
histograms recorded when the loop ends (a loop takes seconds: five ``record`` calls are nothing
beside it). Tool names come from application code and from model responses, where a model may
invent one, so every counter is capped at :data:`MAX_SERIES` series, past which one overflow
series (``otel.metric.overflow=true``) takes the rest, as the SDK does for its own instruments.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final

from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.util.types import AttributeValue

from .._core import semconv as sc
from .._core.instruments import Measured, histogram, items_under, observables
from ..version import __version__

__all__ = ["ITERATION_BUCKETS", "MAX_SERIES", "TOKEN_BUCKETS", "AgentMetrics"]

MAX_SERIES: Final = 2000
ITERATION_BUCKETS: Final = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)  # model turns or tool calls per loop
TOKEN_BUCKETS: Final = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

_TOOL_NAMES: Final = (sc.GEN_AI_TOOL_NAME, sc.MIGRATION_NAME, sc.MIGRATION_VERSION, sc.MIGRATION_OUTCOME)
_REQUESTED_NAMES: Final = (
    sc.GEN_AI_TOOL_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.MIGRATION_NAME,
    sc.MIGRATION_VERSION,
)
_AGENT_NAMES: Final = (sc.GEN_AI_AGENT_NAME, sc.MIGRATION_NAME, sc.MIGRATION_VERSION, sc.MIGRATION_OUTCOME)


class _CappedCounts:
    """Cumulative counts by a tuple key, at most MAX_SERIES keys (then one overflow series)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._names = names
        self.counts: dict[tuple[str, ...] | None, int] = {}
        # As the recorder does: a forked child starts from zero (the parent exports its own counts)
        # with a lock no parent thread can be holding.
        weak_reinit = weakref.WeakMethod(self._reinit_after_fork)
        os.register_at_fork(after_in_child=lambda: (method := weak_reinit()) is not None and method())

    def _reinit_after_fork(self) -> None:
        self._lock = threading.Lock()
        self.counts.clear()

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        with self._lock:
            counts = self.counts
            found: tuple[str, ...] | None = key
            if key not in counts and len(counts) >= MAX_SERIES:
                found = None
            counts[found] = counts.get(found, 0) + n

    def read(self) -> Measured:
        out: list[tuple[float, dict[str, AttributeValue]]] = []
        for key, n in items_under(self._lock, self.counts):
            attributes: dict[str, AttributeValue] = (
                {sc.OTEL_METRIC_OVERFLOW: True} if key is None else dict(zip(self._names, key, strict=True))
            )
            out.append((n, attributes))
        return out


_lock: Final = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[MeterProvider, AgentMetrics] = weakref.WeakKeyDictionary()


class AgentMetrics:
    """Tool invocations, tool calls models asked for, and agent loops."""

    def __init__(self, meter: Meter) -> None:
        self.tools = _CappedCounts(_TOOL_NAMES)
        self.requested = _CappedCounts(_REQUESTED_NAMES)
        self.agents = _CappedCounts(_AGENT_NAMES)
        observables(
            meter.create_observable_counter,
            (
                sc.METRIC_TOOL_INVOCATIONS,
                self.tools.read,
                "{invocation}",
                "Tool executions (otel_migration.tool) by tool, migration, version and outcome.",
            ),
            (
                sc.METRIC_LLM_TOOL_CALLS,
                self.requested.read,
                "{call}",
                "Tool calls LLM responses asked for, by tool, provider, model and version.",
            ),
            (
                sc.METRIC_AGENT_INVOCATIONS,
                self.agents.read,
                "{invocation}",
                "Agent loops (otel_migration.agent) by agent, migration, version and outcome.",
            ),
        )
        self.iterations = histogram(
            meter,
            sc.METRIC_AGENT_ITERATIONS,
            "{iteration}",
            "Model turns (LLM calls) per agent loop.",
            ITERATION_BUCKETS,
        )
        self.tool_calls = histogram(
            meter,
            sc.METRIC_AGENT_TOOL_CALLS,
            "{call}",
            "Tool calls per agent loop: executed (otel_migration.tool) or requested.",
            ITERATION_BUCKETS,
        )
        self.tokens = histogram(
            meter,
            sc.METRIC_AGENT_TOKENS,
            "{token}",
            "Tokens per agent loop, summed over its LLM calls, by token type.",
            TOKEN_BUCKETS,
        )

    @classmethod
    def for_meter_provider(cls, meter_provider: MeterProvider) -> AgentMetrics:
        """One per MeterProvider: instruments register once, and counts survive a reconfiguration."""
        with _lock:
            found = _by_provider.get(meter_provider)
            if found is None:
                meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
                found = _by_provider[meter_provider] = cls(meter)
        return found

    def loop_finished(
        self,
        attributes: dict[str, str],
        *,
        iterations: int,
        executed: int,
        requested: int,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        """The per-loop histograms, recorded once when an agent loop ends."""
        self.iterations.record(iterations, attributes)
        self.tool_calls.record(executed, {**attributes, sc.MIGRATION_TOOL_SOURCE: "executed"})
        self.tool_calls.record(requested, {**attributes, sc.MIGRATION_TOOL_SOURCE: "requested"})
        self.tokens.record(input_tokens, {**attributes, sc.GEN_AI_TOKEN_TYPE: "input"})
        self.tokens.record(output_tokens, {**attributes, sc.GEN_AI_TOKEN_TYPE: "output"})
