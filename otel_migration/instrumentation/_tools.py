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


def _fields(obj: Any) -> dict[str, Any]:
    """An SDK model's fields: pydantic keeps them in ``__dict__``, and a missing attribute costs a
    slow ``AttributeError`` there, so the three response shapes are told apart by their keys."""
    fields = getattr(obj, "__dict__", None)
    return fields if isinstance(fields, dict) else {}


def tool_calls_of(result: Any) -> tuple[list[RequestedToolCall], list[str]]:
    """(tool calls, finish reasons) of an anthropic ``Message``, a ``ChatCompletion`` or a ``Response``."""
    fields = _fields(result)
    calls: list[RequestedToolCall] = []
    reasons: list[str] = []
    choices = fields.get("choices")
    if isinstance(choices, list):  # chat completions
        for choice in choices:
            found = _fields(choice)
            if found.get("finish_reason"):
                reasons.append(str(found["finish_reason"]))
            for call in _fields(found.get("message")).get("tool_calls") or ():
                call_fields = _fields(call)
                function = call_fields.get("function") or call_fields.get("custom")
                calls.append((str(_fields(function).get("name") or "unknown"), call_fields.get("id")))
        return calls, reasons
    output = fields.get("output")
    if isinstance(output, list) and fields.get("object") == "response":  # Responses
        for item in output:
            item_fields = _fields(item)
            if item_fields.get("type") in _RESPONSES_CALL_TYPES:
                calls.append((str(item_fields.get("name") or "unknown"), item_fields.get("call_id")))
        return calls, reasons
    content = fields.get("content")
    if isinstance(content, list):  # anthropic Message
        for block in content:
            block_fields = _fields(block)
            if block_fields.get("type") == "tool_use":
                calls.append((str(block_fields.get("name") or "unknown"), block_fields.get("id")))
        stop = fields.get("stop_reason")
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
