"""Tool calls in SDK responses: anthropic ``tool_use`` blocks, chat ``tool_calls``, Responses function calls.

Read from the parsed response objects (never from raw HTTP), duck-typed so every supported SDK
version and the beta namespaces read the same. What a response asks for goes on its LLM call's
span and into ``migration.llm.tool_calls`` (see otel_migration._llm.tools for why a request is not an
``execute_tool`` span). Never raises: a shape we do not know is read as "no tool calls".
"""

from __future__ import annotations

from typing import Any

from .._core.lifecycle import log_once
from .._llm.agent_metrics import AgentMetrics
from .._llm.call import LLMCall
from .._llm.tools import RequestedToolCall, record_requested

__all__ = ["note_tool_calls", "tool_calls_of"]

_RESPONSES_CALL_TYPES = ("function_call", "custom_tool_call")


def tool_calls_of(result: Any) -> tuple[list[RequestedToolCall], list[str]]:
    """(tool calls, finish reasons) of an anthropic ``Message``, a ``ChatCompletion`` or a ``Response``."""
    choices = getattr(result, "choices", None)
    if isinstance(choices, list):  # chat completions
        calls: list[RequestedToolCall] = []
        reasons = []
        for choice in choices:
            if getattr(choice, "finish_reason", None):
                reasons.append(str(choice.finish_reason))
            for call in getattr(getattr(choice, "message", None), "tool_calls", None) or ():
                function = getattr(call, "function", None) or getattr(call, "custom", None)
                calls.append((str(getattr(function, "name", "") or "unknown"), getattr(call, "id", None)))
        return calls, reasons
    output = getattr(result, "output", None)
    if isinstance(output, list) and getattr(result, "object", None) == "response":  # Responses
        calls = [
            (str(getattr(item, "name", "") or "unknown"), getattr(item, "call_id", None))
            for item in output
            if getattr(item, "type", None) in _RESPONSES_CALL_TYPES
        ]
        return calls, []
    content = getattr(result, "content", None)
    if isinstance(content, list):  # anthropic Message
        calls = [
            (str(getattr(block, "name", "") or "unknown"), getattr(block, "id", None))
            for block in content
            if getattr(block, "type", None) == "tool_use"
        ]
        stop = getattr(result, "stop_reason", None)
        return calls, [str(stop)] if stop else []
    return [], []


def note_tool_calls(call: LLMCall, result: Any) -> None:
    """Put what ``result`` asks for on ``call`` (before it finishes: the span must still be open)."""
    try:
        calls, reasons = tool_calls_of(result)
        if not calls and not reasons:
            return
        scope = call.scope
        record_requested(
            call.span,
            call.telemetry.find(AgentMetrics),
            call.agent,
            provider=call.provider,
            model=call.request_model,
            migration=scope.migration,
            version=scope.version,
            calls=calls,
            finish_reasons=reasons,
        )
    except Exception:
        log_once("tool-calls", "otel-migration: could not read the tool calls of an LLM response")
