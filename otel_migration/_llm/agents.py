"""``agent(name)``: one ``invoke_agent`` span per agent loop, and what the loop did.

The span follows the GenAI agent conventions (``invoke_agent {gen_ai.agent.name}``, INTERNAL: the
agent runs in this process). The loop travels in the OpenTelemetry context, like the migration
scope, so whatever runs inside it finds it without being passed anything:

- every LLM call (instrumented SDK or ``record_llm_call``) is one *iteration* (a model turn) and
  adds its tokens;
- every ``tool(...)`` run inside is an *executed* tool call;
- every tool call an LLM response asks for (``tool_use`` blocks, ``tool_calls``, Responses
  function calls) is a *requested* tool call.

A nested agent counts for itself only (the innermost loop in effect). The outcome is ``ok``,
``error`` (an exception left the loop, or :meth:`AgentLoop.fail` said why it gave up) or
``cancelled``. When the loop ends, its span gets the totals, ``migration.agent.invocations`` counts
it, and the per-loop histograms get iterations, tool calls and tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, Status, StatusCode

from .._core import semconv as sc
from .._core.categories import error_type
from .._core.lifecycle import InFlight, log_once
from .._core.runtime import active
from .agent_metrics import AgentMetrics
from .spanned import Call, Spanned, SpannedRun, outcome_of, start_span

__all__ = ["Agent", "AgentLoop", "agent", "current_loop"]

_LOOP_KEY: Final = otel_context.create_key("otel_migration.agent_loop")


class AgentLoop(SpannedRun):
    """One agent loop in flight: what ``with agent(...) as loop`` gives. Counts are read-only to you."""

    _kind = "agent"
    _noun = "an agent loop"

    def __init__(
        self, name: str, flight: InFlight | None, metrics: AgentMetrics | None, migration: str, version: str
    ) -> None:
        super().__init__(flight)
        self.name = name
        self._metrics = metrics
        self._migration, self._version = migration, version
        self._lock = threading.Lock()
        self._failure: str | None = None
        self.iterations = 0
        self.executed_tool_calls = 0
        self.requested_tool_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0

    # -- what runs inside tells the loop -------------------------------------------------------------
    def llm_call_finished(self, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self.iterations += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens

    def tool_executed(self) -> None:
        with self._lock:
            self.executed_tool_calls += 1

    def tools_requested(self, n: int) -> None:
        with self._lock:
            self.requested_tool_calls += n

    def fail(self, reason: str) -> None:
        """Mark the loop failed without an exception (``"max_iterations"``, ``"gave_up"``): its error.type."""
        self._failure = str(reason) or "failed"

    # -- lifecycle: an agent's answer is content, never recorded ------------------------------------
    def _finish(self, span: Span, exc: BaseException | None) -> None:
        outcome = outcome_of(exc)
        err = error_type(exc) if outcome == sc.OUTCOME_ERROR and exc is not None else None
        if self._failure is not None and outcome == sc.OUTCOME_OK:
            outcome, err = sc.OUTCOME_ERROR, self._failure
        with self._lock:
            iterations, executed, requested = (
                self.iterations,
                self.executed_tool_calls,
                self.requested_tool_calls,
            )
            input_tokens, output_tokens = self.input_tokens, self.output_tokens
        if span.is_recording():
            span.set_attributes(
                {
                    sc.AGENT_ITERATIONS: iterations,
                    sc.AGENT_TOOL_CALLS_EXECUTED: executed,
                    sc.AGENT_TOOL_CALLS_REQUESTED: requested,
                    sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                    sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
                }
            )
            if err is not None:
                span.set_attribute(sc.ERROR_TYPE, err)
                if exc is not None and outcome == sc.OUTCOME_ERROR:
                    span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, err))
        span.end()
        metrics = self._metrics
        if metrics is not None:
            key = (self.name, self._migration, self._version, outcome)
            metrics.agents.add(key)
            metrics.loop_finished(
                {
                    sc.GEN_AI_AGENT_NAME: self.name,
                    sc.MIGRATION_NAME: self._migration,
                    sc.MIGRATION_VERSION: self._version,
                    sc.MIGRATION_OUTCOME: outcome,
                },
                iterations=iterations,
                executed=executed,
                requested=requested,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            )


def current_loop(ctx: otel_context.Context | None = None) -> AgentLoop | None:
    """The innermost agent loop in effect, or None."""
    value = otel_context.get_value(_LOOP_KEY, ctx)
    return value if isinstance(value, AgentLoop) else None


class Agent(Spanned[AgentLoop]):
    """An agent loop; see :func:`agent`."""

    _kind = "agent"

    def __init__(self, name: str, *, agent_id: str | None, description: str | None) -> None:
        super().__init__()
        if callable(name):
            raise TypeError("agent: decorate with @otel_migration.agent('name'): an agent needs a name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"agent(): name must be a non-empty string, got {name!r}")
        self.name = name.strip()
        self._static = {
            sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_INVOKE_AGENT,
            sc.GEN_AI_AGENT_NAME: self.name,
        }
        if agent_id:
            self._static[sc.GEN_AI_AGENT_ID] = agent_id
        if description:
            self._static[sc.GEN_AI_AGENT_DESCRIPTION] = description

    def _start(self, function: Callable[..., Any] | None, call: Call | None = None) -> AgentLoop:
        try:
            telemetry = active()
            if telemetry is None or not telemetry.enabled:
                return AgentLoop(self.name, None, None, "", "")
            span, ctx, migration, version = start_span(telemetry, f"invoke_agent {self.name}", self._static)
            loop = AgentLoop(self.name, None, telemetry.find(AgentMetrics), migration, version)
            loop._flight = InFlight(telemetry, span, otel_context.set_value(_LOOP_KEY, loop, ctx))
            return loop
        except Exception:
            log_once("agent-start", "otel-migration: failed to start an agent loop's telemetry")
            return AgentLoop(self.name, None, None, "", "")

    def __repr__(self) -> str:
        return f"agent({self.name!r})"


def agent(name: str, *, agent_id: str | None = None, description: str | None = None) -> Agent:
    """Mark an agent loop: one ``invoke_agent`` span per run, with its iterations, tool calls and tokens.

    As a block it gives the :class:`AgentLoop`, to read its counts or to mark it failed without an
    exception (``loop.fail("max_iterations")``); as a decorator every call of the function is one loop.
    """
    return Agent(name, agent_id=agent_id, description=description)
