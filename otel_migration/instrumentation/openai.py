"""Instrumentation of the ``openai`` SDK (1.66 to 3.x): chat completions and Responses, sync and async.

Wrapped: ``Completions.create`` / ``AsyncCompletions.create`` (chat) and ``Responses.create`` /
``AsyncResponses.create``, streamed or not. The SDK's ``.stream()`` helpers call ``create``
themselves, so they are covered without wrapping them (which would count them twice).

A chat stream carries usage only when asked for (``stream_options={"include_usage": True}``);
we never add that option ourselves, because the extra final chunk it brings (with no choices)
breaks code that reads ``chunk.choices[0]``. Without it the call is recorded with its duration
but without tokens or cost, and a warning says so once.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Final

from ._calls import call_wrapper
from ._streams import Usage
from ._support import SDKInstrumentor
from ._tools import watch_chat_chunk, watch_response_event

__all__ = ["OpenAIInstrumentor"]

_logger = logging.getLogger(__name__)

PROVIDER: Final = "openai"
SUPPORTED: Final = "openai >= 1.66, < 4"


def _detail(details: Any, name: str) -> int:
    if details is None:
        return 0
    value = details.get(name) if isinstance(details, dict) else getattr(details, name, None)
    return int(value or 0)


def chat_usage(usage: Any, model: str | None) -> Usage:
    return Usage(
        input=usage.prompt_tokens or 0,  # includes cached tokens
        output=usage.completion_tokens or 0,
        cache_read=_detail(getattr(usage, "prompt_tokens_details", None), "cached_tokens"),
        model=model,
        seen=True,
    )


def response_usage(usage: Any, model: str | None) -> Usage:
    return Usage(
        input=usage.input_tokens or 0,  # includes cached tokens
        output=usage.output_tokens or 0,  # includes reasoning tokens
        cache_read=_detail(getattr(usage, "input_tokens_details", None), "cached_tokens"),
        model=model,
        seen=True,
    )


def extract_chat(completion: Any) -> Usage | None:
    usage = getattr(completion, "usage", None)
    return chat_usage(usage, getattr(completion, "model", None)) if usage is not None else None


def extract_response(response: Any) -> Usage | None:
    usage = getattr(response, "usage", None)
    return response_usage(usage, getattr(response, "model", None)) if usage is not None else None


def observe_chat(usage: Usage, chunk: Any) -> bool:
    watch_chat_chunk(usage, chunk)
    if getattr(chunk, "usage", None) is not None:
        final = chat_usage(chunk.usage, getattr(chunk, "model", None))
        usage.input, usage.output, usage.cache_read = final.input, final.output, final.cache_read
        usage.seen = True
    if getattr(chunk, "model", None):
        usage.model = chunk.model
    choices = getattr(chunk, "choices", None) or ()
    return any(getattr(getattr(c, "delta", None), "content", None) for c in choices)


def observe_response(usage: Usage, event: Any) -> bool:
    watch_response_event(usage, event)
    kind = getattr(event, "type", "")
    if kind in ("response.created", "response.completed", "response.incomplete", "response.failed"):
        response = event.response
        usage.model = getattr(response, "model", None) or usage.model
        if getattr(response, "usage", None) is not None:
            final = response_usage(response.usage, usage.model)
            usage.input, usage.output, usage.cache_read = final.input, final.output, final.cache_read
            usage.seen = True
    return kind == "response.output_text.delta"


class OpenAIInstrumentor(SDKInstrumentor):
    """Prices, labels and counts every chat completion and Responses call of the ``openai`` SDK."""

    SUPPORTED = SUPPORTED

    def wrap_sdk(self) -> None:
        targets = (
            (
                "openai.resources.chat.completions",
                ("Completions", "AsyncCompletions"),
                extract_chat,
                observe_chat,
            ),
            (
                "openai.resources.responses",
                ("Responses", "AsyncResponses"),
                extract_response,
                observe_response,
            ),
        )
        for module_name, cls_names, extract, observe in targets:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for cls_name in cls_names:
                asynchronous = cls_name.startswith("Async")
                wrapper = call_wrapper(
                    PROVIDER, "chat", asynchronous=asynchronous, extract=extract, observe=observe
                )
                self.wrap(module, cls_name, "create", wrapper)
