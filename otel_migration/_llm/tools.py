"""``tool(name)``: one ``execute_tool`` span per tool run, counted by tool, version and outcome; and the
tool calls LLM responses ask for.

The span follows the GenAI conventions (``execute_tool {gen_ai.tool.name}``, INTERNAL, with
``gen_ai.tool.name``, ``gen_ai.tool.type``, ``gen_ai.tool.call.id``). A tool call a model *asks
for* is not a tool execution: nothing has run yet, and the application may never run it. So the
instrumentations put requests on the LLM call's own span (its finish reasons, the number, names
and ids of the calls asked for) and count them in ``migration.llm.tool_calls``; an execution is an
``execute_tool`` span, and giving it the request's id (``tool(name, call_id=block.id)``) links the
two. Arguments and results are content: recorded only with ``capture_content = true``, as the
conventions' opt-in ``gen_ai.tool.call.arguments`` and ``gen_ai.tool.call.result`` (JSON, truncated).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry.trace import Span, Status, StatusCode

from .._core import semconv as sc
from .._core.categories import error_type
from .._core.lifecycle import InFlight, log_once
from .._core.runtime import Telemetry, active
from .agent_metrics import AgentMetrics
from .agents import AgentLoop, current_loop
from .spanned import Call, Spanned, SpannedRun, outcome_of, start_span

__all__ = ["TOOL_TYPES", "RequestedToolCall", "Tool", "ToolRun", "record_requested", "tool"]

TOOL_TYPES: Final = ("function", "extension", "datastore")
#: (tool name, call id) of one tool call an LLM response asked for.
RequestedToolCall = tuple[str, str | None]


_CONTENT_LIMIT: Final = 16_384  # characters of each captured attribute, as for LLM content


def _json(value: object) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    return text[:_CONTENT_LIMIT]


class ToolRun(SpannedRun):
    """One tool execution in flight (what ``with tool(...) as run`` gives)."""

    __slots__ = ("_capture", "_key", "_loop", "_metrics")
    _kind = "tool"
    _noun = "a tool run"

    def __init__(
        self,
        flight: InFlight | None,
        metrics: AgentMetrics | None,
        key: tuple[str, str, str],
        loop: AgentLoop | None,
        capture: bool = False,
    ) -> None:
        super().__init__(flight)
        self._metrics, self._key, self._loop = metrics, key, loop
        self._capture = capture and flight is not None and flight.span.is_recording()

    def record_arguments(self, arguments: object) -> None:
        """The tool's arguments as ``gen_ai.tool.call.arguments``, only with ``capture_content = true``."""
        if self._capture and self._flight is not None:
            self._flight.span.set_attribute(sc.GEN_AI_TOOL_CALL_ARGUMENTS, _json(arguments))

    def record_result(self, result: object) -> None:
        """The tool's result as ``gen_ai.tool.call.result``, only with ``capture_content = true``."""
        if self._capture and self._flight is not None:
            self._flight.span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, _json(result))

    def returned(self, result: Any) -> None:
        try:
            self.record_result(result)
        except Exception:
            log_once("tool-result", "otel-migration: could not record a tool's result")

    def _finish(self, span: Span, exc: BaseException | None) -> None:
        outcome = outcome_of(exc)
        if outcome == sc.OUTCOME_ERROR and exc is not None and span.is_recording():
            span.set_attribute(sc.ERROR_TYPE, error_type(exc))
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()
        if self._metrics is not None:
            self._metrics.tools.add((*self._key, outcome))
        if self._loop is not None:
            self._loop.tool_executed()


class Tool(Spanned[ToolRun]):
    """A tool the application runs; see :func:`tool`."""

    _kind = "tool"

    def __init__(
        self, name: str | None, *, call_id: str | None, tool_type: str, description: str | None
    ) -> None:
        super().__init__()
        if callable(name):
            raise TypeError("tool: decorate with @otel_migration.tool() or @otel_migration.tool('name')")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"tool(): name must be a non-empty string, got {name!r}")
        if tool_type not in TOOL_TYPES:
            raise ValueError(f"tool(): tool_type must be one of {', '.join(TOOL_TYPES)}, got {tool_type!r}")
        self.name = name.strip() if name else None
        self.call_id = call_id
        self._static: dict[str, str] = {
            sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_TYPE: tool_type,
        }
        if call_id:
            self._static[sc.GEN_AI_TOOL_CALL_ID] = call_id
        if description:
            self._static[sc.GEN_AI_TOOL_DESCRIPTION] = description

    def _name_for(self, function: Callable[..., Any] | None) -> str:
        if self.name is not None:
            return self.name
        if function is None:
            raise ValueError("tool() used as a block needs a name: tool('search')")
        return str(getattr(function, "__name__", "tool"))

    def __enter__(self) -> ToolRun:
        self._name_for(None)  # a nameless block is a programming error: say so before running
        return super().__enter__()

    def _start(self, function: Callable[..., Any] | None, call: Call | None = None) -> ToolRun:
        try:
            telemetry = active()
            if telemetry is None or not telemetry.enabled:
                return ToolRun(None, None, ("", "", ""), None)
            run = self._start_traced(telemetry, self._name_for(function))
            if run._capture and function is not None and call is not None:
                run.record_arguments(_arguments(function, call))
            return run
        except Exception:
            log_once("tool-start", "otel-migration: failed to start a tool run's telemetry")
            return ToolRun(None, None, ("", "", ""), None)

    def _start_traced(self, telemetry: Telemetry, name: str) -> ToolRun:
        attributes = {**self._static, sc.GEN_AI_TOOL_NAME: name}
        span, ctx, migration, version = start_span(telemetry, f"execute_tool {name}", attributes)
        flight = InFlight(telemetry, span, ctx)
        capture = telemetry.settings.capture_content
        return ToolRun(
            flight, telemetry.find(AgentMetrics), (name, migration, version), current_loop(), capture
        )

    def __repr__(self) -> str:
        return f"tool({self.name!r})"


def _arguments(function: Callable[..., Any], call: Call) -> dict[str, Any]:
    """A decorated tool's arguments by parameter name (``self`` and ``cls`` left out)."""
    args, kwargs = call
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return {"args": list(args), **kwargs}
    return {key: value for key, value in bound.items() if key not in ("self", "cls")}


def tool(
    name: str | None = None,
    *,
    call_id: str | None = None,
    tool_type: str = "function",
    description: str | None = None,
) -> Tool:
    """Mark a tool the application runs: one ``execute_tool`` span and one count per run.

    As a decorator the name defaults to the function's; as a block it must be given, and
    ``call_id`` (the id of the model's tool-use block, ``tool_calls[i].id``, or a Responses
    ``call_id``) links the run to the LLM response that asked for it.
    """
    return Tool(name, call_id=call_id, tool_type=tool_type, description=description)


def record_requested(
    span: Span,
    metrics: AgentMetrics | None,
    loop: AgentLoop | None,
    *,
    provider: str,
    model: str,
    migration: str,
    version: str,
    calls: Sequence[RequestedToolCall],
    finish_reasons: Sequence[str],
) -> None:
    """The tool calls one LLM response asked for: on its span, in the counter, and in the agent loop."""
    if span.is_recording():
        if finish_reasons:
            span.set_attribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons))
        if calls:
            span.set_attributes(
                {
                    sc.LLM_TOOL_CALLS: len(calls),
                    sc.LLM_TOOL_CALL_NAMES: [name for name, _ in calls],
                    sc.LLM_TOOL_CALL_IDS: [call_id or "" for _, call_id in calls],
                }
            )
    if not calls:
        return
    if metrics is not None:
        for name, _ in calls:
            metrics.requested.add((name, provider, model, migration, version))
    if loop is not None:
        loop.tools_requested(len(calls))
