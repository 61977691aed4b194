"""Instrumentation of the ``anthropic`` SDK (0.43 to 2.x): Messages create and stream, sync and async.

Wrapped: ``Messages.create`` / ``AsyncMessages.create`` (also with ``stream=True``) and the
``Messages.stream`` / ``AsyncMessages.stream`` helpers, plain and beta. ``anthropic`` 1.14 and
later trace themselves through the global provider (unless ``ANTHROPIC_OPEN_TELEMETRY=false``):
then we add no span of our own; the call is still priced, charged and counted, and the SDK's span
gets the version, phase, cost and tier from :class:`otel_migration._llm.enrich.LLMSpanEnricher`.

Anthropic counts ``input_tokens`` without the cached ones; we report the conventions' total
(input + cache reads + cache writes), as the SDK's own spans do.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, Final

from opentelemetry import trace

from ._calls import call_wrapper, stream_manager_wrapper
from ._streams import Usage
from ._support import SDKInstrumentor
from ._tools import watch_anthropic_event

__all__ = ["AnthropicInstrumentor"]

_logger = logging.getLogger(__name__)

PROVIDER: Final = "anthropic"
SUPPORTED: Final = "anthropic >= 0.43, < 3"
_MODULES: Final = ("anthropic.resources.messages", "anthropic.resources.beta.messages")


def _tokens(usage: Any) -> Usage:
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    return Usage(
        input=(getattr(usage, "input_tokens", None) or 0) + cache_read + cache_write,
        output=getattr(usage, "output_tokens", None) or 0,
        cache_read=cache_read,
        cache_write=cache_write,
        seen=True,
    )


def extract(message: Any) -> Usage | None:
    """Usage of a ``Message`` (None for raw responses, which carry no parsed usage)."""
    usage = getattr(message, "usage", None)
    if usage is None:
        return None
    result = _tokens(usage)
    result.model = getattr(message, "model", None)
    return result


def observe(usage: Usage, event: Any) -> bool:
    """message_start carries the input (and cache) counts; message_delta the cumulative output."""
    kind = getattr(event, "type", None)
    watch_anthropic_event(usage, event)
    if kind == "message_start":
        message = event.message
        start = _tokens(message.usage)
        usage.input, usage.cache_read, usage.cache_write = start.input, start.cache_read, start.cache_write
        usage.output, usage.model, usage.seen = start.output, message.model, True
    elif kind == "message_delta" and getattr(event, "usage", None) is not None:
        delta = event.usage
        usage.output = delta.output_tokens  # cumulative: replace, never add
        if getattr(delta, "input_tokens", None) is not None:  # newer API versions repeat the totals
            final = _tokens(delta)
            usage.input, usage.cache_read, usage.cache_write = (
                final.input,
                final.cache_read,
                final.cache_write,
            )
        usage.seen = True
    return kind == "content_block_delta"


def traced_by_sdk(messages: Any) -> bool:
    """Whether anthropic (>= 1.14) will record its own span for this call.

    Its client has a tracer unless tracing is switched off, but that tracer only records once a real
    provider is behind it: the one passed in the client's options, or the global one.
    """
    client = getattr(messages, "_client", None)
    if getattr(client, "_tracer", None) is None:
        return False
    options = getattr(client, "_open_telemetry", None)
    provider = options.get("tracer_provider") if isinstance(options, dict) else None
    provider = provider or trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class AnthropicInstrumentor(SDKInstrumentor):
    """Prices, labels and counts every Messages call of the ``anthropic`` SDK."""

    SUPPORTED = SUPPORTED

    def wrap_sdk(self) -> None:
        create = functools.partial(
            call_wrapper, PROVIDER, "chat", extract=extract, observe=observe, traced_by_sdk=traced_by_sdk
        )
        sync, asynchronous = create(asynchronous=False), create(asynchronous=True)
        stream = stream_manager_wrapper(PROVIDER, "chat", observe=observe, traced_by_sdk=traced_by_sdk)
        for module_name in _MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for cls_name, method, wrapper in (
                ("Messages", "create", sync),
                ("AsyncMessages", "create", asynchronous),
                ("Messages", "stream", stream),
                ("AsyncMessages", "stream", stream),
            ):
                self.wrap(module, cls_name, method, wrapper)
