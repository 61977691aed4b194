"""Wrapper factories shared by the SDK instrumentations: one LLM call per wrapped request.

The budget's hard stop is checked before the request (``BudgetExceeded`` is the one exception we
raise on purpose); our span is current only while the SDK sends the request; a stream comes back
observed; anything else of ours that fails is logged and never reaches the application.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import wrapt
from opentelemetry import trace

from .._core import semconv as sc
from .._llm.call import LLMCall
from .._llm.enrich import is_llm_span
from ._streams import ObservedAsyncStream, ObservedStream, Observer, Usage
from ._tools import note_tool_calls

__all__ = ["Extractor", "ObservedStreamManager", "call_wrapper", "stream_manager_wrapper"]

_logger = logging.getLogger(__name__)

#: extract(result) -> the usage of a non-streamed response, or None when it has none to read.
Extractor = Callable[[Any], Usage | None]
#: traced_by_sdk(instance) -> whether the SDK client will emit its own span for this call.
SelfTraced = Callable[[Any], bool]
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
_Stream = ObservedStream | ObservedAsyncStream


def _start(
    provider: str, operation: str, kwargs: dict[str, Any], instance: Any, traced_by_sdk: SelfTraced
) -> LLMCall | None:
    try:
        # Already traced (by the SDK itself, or by another GenAI instrumentation wrapping outside
        # ours): price and count the call, but do not add a second span for it.
        own_span = not traced_by_sdk(instance) and not is_llm_span(trace.get_current_span())
    except Exception:
        own_span = True
    call = LLMCall.start(provider, operation, str(kwargs.get("model", "")), own_span=own_span)
    if call is not None and call.telemetry.settings.capture_content:
        _capture(call, sc.GEN_AI_INPUT_MESSAGES, _request_content(kwargs))
    return call


_CONTENT_LIMIT = 16_384  # characters of each captured attribute


def _request_content(kwargs: dict[str, Any]) -> object:
    return {key: kwargs[key] for key in ("system", "instructions", "messages", "input") if key in kwargs}


def _response_content(result: Any) -> object:
    """The text an SDK response carries: Anthropic content blocks, chat choices or Responses output."""
    text = getattr(result, "output_text", None)
    if isinstance(text, str):
        return text
    choices = getattr(result, "choices", None)
    if choices:
        return [getattr(getattr(choice, "message", None), "content", None) for choice in choices]
    blocks = getattr(result, "content", None)
    if isinstance(blocks, list):
        return [getattr(block, "text", None) for block in blocks]
    return None


def _capture(call: LLMCall, attribute: str, content: object) -> None:
    """Opt-in only (``capture_content``): the content as JSON on the call's span, truncated."""
    if content in (None, {}, []) or not call.span.is_recording():
        return
    try:
        text = json.dumps(content, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(content)
    call.span.set_attribute(attribute, text[:_CONTENT_LIMIT])


class _Request:
    """One SDK request as an LLM call (none when untraced): current while the SDK sends it; failed if
    the request raises (cancellation is not an error of the call); its result kept for the caller."""

    __slots__ = ("call", "result")

    def __init__(self, call: LLMCall | None) -> None:
        self.call = call
        self.result: Any = None

    def __enter__(self) -> _Request:
        if self.call is not None:
            self.call.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.call is not None:
            if isinstance(exc, Exception):
                self.call.finish(error=exc)
            else:  # cancelled: no answer, so no usage came back; never priced as a $0 call
                self.call.finish(usage_known=False)

    def returned(
        self, kwargs: dict[str, Any], extract: Extractor, observe: Observer, stream_type: type[_Stream]
    ) -> Any:
        """What the application gets: a stream comes back observed; a response is read for its usage now."""
        call, result = self.call, self.result
        if call is None:
            return result
        call.deactivate()
        if kwargs.get("stream"):
            return stream_type(result, call, observe)
        if call.telemetry.settings.capture_content:
            _capture(call, sc.GEN_AI_OUTPUT_MESSAGES, _response_content(result))
        try:
            usage = extract(result)
        except Exception:
            _logger.debug("otel-migration: no usage in %r", type(result), exc_info=True)
            usage = None
        note_tool_calls(call, result)  # before finishing: they go on the call's span
        (usage or Usage()).finish(call)
        return result


def call_wrapper(
    provider: str,
    operation: str,
    *,
    asynchronous: bool,
    extract: Extractor,
    observe: Observer,
    traced_by_sdk: SelfTraced = lambda instance: False,
) -> Wrapper:
    """For ``create``; ``asynchronous`` for ``Async*.create``, a plain function returning a coroutine,
    so the wrapper returns one too (the request is started when it is awaited)."""
    if asynchronous:

        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            async def run() -> Any:
                with _Request(_start(provider, operation, kwargs, instance, traced_by_sdk)) as request:
                    request.result = await wrapped(*args, **kwargs)
                return request.returned(kwargs, extract, observe, ObservedAsyncStream)

            return run()

    else:

        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with _Request(_start(provider, operation, kwargs, instance, traced_by_sdk)) as request:
                request.result = wrapped(*args, **kwargs)
            return request.returned(kwargs, extract, observe, ObservedStream)

    return wrapper


class ObservedStreamManager(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """anthropic's ``messages.stream(...)`` manager: the request happens on entering it.

    The helper stream it yields reads the SDK's raw event stream lazily (``_raw_stream``, the same
    name in every supported version), so swapping that for an observed proxy sees every event
    whichever helper the application uses (``text_stream``, ``until_done``, ``get_final_message``).
    """

    def __init__(
        self,
        wrapped: Any,
        provider: str,
        operation: str,
        kwargs: dict[str, Any],
        instance: Any,
        observe: Observer,
        traced_by_sdk: SelfTraced,
    ) -> None:
        super().__init__(wrapped)
        self._self_args = (provider, operation, kwargs, instance, traced_by_sdk)
        self._self_observe = observe
        self._self_observed: ObservedStream | ObservedAsyncStream | None = None

    def _self_attach(self, request: _Request, stream_type: type[_Stream]) -> Any:
        """The SDK's helper stream, its raw event stream swapped for an observed one."""
        stream, call = request.result, request.call
        if call is None:
            return stream
        call.deactivate()
        try:
            self._self_observed = stream_type(stream._raw_stream, call, self._self_observe)
            stream._raw_stream = self._self_observed
        except Exception:
            _logger.exception(
                "otel-migration: cannot observe this stream; its call is recorded without usage"
            )
            call.finish(usage_known=False)
        return stream

    def _self_done(self) -> None:
        if self._self_observed is not None:
            self._self_observed._self_finish()

    def __enter__(self) -> Any:
        with _Request(_start(*self._self_args)) as request:
            request.result = self.__wrapped__.__enter__()
        return self._self_attach(request, ObservedStream)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_done()

    async def __aenter__(self) -> Any:
        with _Request(_start(*self._self_args)) as request:
            request.result = await self.__wrapped__.__aenter__()
        return self._self_attach(request, ObservedAsyncStream)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_done()


def stream_manager_wrapper(
    provider: str, operation: str, *, observe: Observer, traced_by_sdk: SelfTraced = lambda instance: False
) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        return ObservedStreamManager(manager, provider, operation, kwargs, instance, observe, traced_by_sdk)

    return wrapper
