"""Tool calls in SDK responses: anthropic ``tool_use`` blocks, chat ``tool_calls``, Responses function calls.

Read from the parsed response objects (never from raw HTTP), duck-typed so every supported SDK
version and the beta namespaces read the same. What a response asks for goes on its LLM call's
span and into ``migration.llm.tool_calls`` (see otel_migration._llm.tools for why a request is not an
``execute_tool`` span). Never raises: a shape we do not know is read as "no tool calls".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._core.lifecycle import log_once
from .._llm.agent_metrics import AgentMetrics
from .._llm.call import LLMCall
from .._llm.tools import RequestedToolCall, record_requested

__all__ = [
    "note_streamed_tool_calls",
    "note_tool_calls",
    "tool_calls_of",
    "watch_anthropic_event",
    "watch_chat_chunk",
    "watch_response_event",
]

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


# -- streams: the observers hand every event here; what they find waits on the stream's Usage --------
Watcher = Callable[[Any, Any], None]


def _never_raises(watch: Watcher) -> Watcher:
    """A watcher runs before the observer reads usage: an event shape it did not expect must cost nothing."""

    @functools.wraps(watch)
    def guarded(usage: Any, event: Any) -> None:
        try:
            watch(usage, event)
        except Exception:
            log_once("tool-calls-stream", "otel-migration: could not read the tool calls of a stream event")

    return guarded


@_never_raises
def watch_anthropic_event(usage: Any, event: Any) -> None:
    """``content_block_start`` of a ``tool_use`` block; the stop reason from ``message_delta``."""
    kind = getattr(event, "type", None)
    if kind == "content_block_start":
        block = getattr(event, "content_block", None)
        if getattr(block, "type", None) == "tool_use":
            usage.tool_calls.append(
                (str(getattr(block, "name", "") or "unknown"), getattr(block, "id", None))
            )
    elif kind == "message_delta":
        stop = getattr(getattr(event, "delta", None), "stop_reason", None)
        if stop:
            usage.finish_reasons = [str(stop)]


@_never_raises
def watch_chat_chunk(usage: Any, chunk: Any) -> None:
    """A tool call's first fragment carries its id and name; a choice's last chunk its finish reason."""
    for choice in getattr(chunk, "choices", None) or ():
        for fragment in getattr(getattr(choice, "delta", None), "tool_calls", None) or ():
            if getattr(fragment, "id", None):
                name = getattr(getattr(fragment, "function", None), "name", None)
                usage.tool_calls.append((str(name or "unknown"), fragment.id))
        if getattr(choice, "finish_reason", None):
            usage.finish_reasons.append(str(choice.finish_reason))


@_never_raises
def watch_response_event(usage: Any, event: Any) -> None:
    """The final response of a Responses stream lists every function call."""
    if getattr(event, "type", None) in ("response.completed", "response.incomplete"):
        usage.tool_calls, _ = tool_calls_of(getattr(event, "response", None))


def note_streamed_tool_calls(call: LLMCall, calls: list[RequestedToolCall], reasons: list[str]) -> None:
    """What a finished stream asked for (see the watchers above), before its call finishes."""
    if calls or reasons:
        _note(call, calls, reasons)


def note_tool_calls(call: LLMCall, result: Any) -> None:
    """Put what ``result`` asks for on ``call`` (before it finishes: the span must still be open)."""
    try:
        calls, reasons = tool_calls_of(result)
    except Exception:
        log_once("tool-calls", "otel-migration: could not read the tool calls of an LLM response")
        return
    if calls or reasons:
        _note(call, calls, reasons)


def _note(call: LLMCall, calls: list[RequestedToolCall], reasons: list[str]) -> None:
    try:
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
