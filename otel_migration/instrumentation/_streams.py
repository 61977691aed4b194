"""Streams observed as the application consumes them: no buffering, nothing changed.

An LLM stream's usage arrives in its events (first, last, or both); the proxies below hand every
event to a provider-specific observer as the application pulls it, mark the first content chunk
(time to first token), and finish the call exactly once: at exhaustion, on an error, when the
application closes or leaves the stream early (with the usage seen so far), whichever comes first.
A stream dropped without being closed or exhausted is never finished: nothing can tell when.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import wrapt

from .._llm.call import LLMCall
from ._tools import note_streamed_tool_calls

__all__ = ["ObservedAsyncStream", "ObservedStream", "Usage"]

_logger = logging.getLogger(__name__)


@dataclass
class Usage:
    """Token usage as the conventions count it: ``input`` includes cache reads and writes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    model: str | None = None
    seen: bool = False  # whether any usage arrived at all
    #: Tool calls a stream asked for and its finish reasons (see _tools), put on the call when it ends.
    tool_calls: list[tuple[str, str | None]] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)

    def finish(self, call: LLMCall, error: BaseException | None = None) -> None:
        if self.tool_calls or self.finish_reasons:  # noted once: a stream may be finished twice
            calls, reasons, self.tool_calls, self.finish_reasons = (
                self.tool_calls,
                self.finish_reasons,
                [],
                [],
            )
            note_streamed_tool_calls(call, calls, reasons)
        call.finish(
            response_model=self.model,
            input_tokens=self.input,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            error=error,
            usage_known=self.seen,
        )


_warned: set[str] = set()


def _warn_no_usage(provider: str) -> None:
    if provider not in _warned:
        _warned.add(provider)
        _logger.warning(
            "otel-migration: a %s stream ended without token usage; its calls are recorded without cost "
            "(for OpenAI chat streams pass stream_options={'include_usage': True})",
            provider,
        )


#: observe(usage, event) updates ``usage`` from one event; returns True when it carried content.
Observer = Callable[[Usage, Any], bool]


class _Observed(wrapt.ObjectProxy):  # type: ignore[type-arg]
    def __init__(self, wrapped: Any, call: LLMCall, observe: Observer, usage: Usage | None = None) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_observe = observe
        self._self_usage = usage or Usage()

    def _self_event(self, event: Any) -> None:
        try:
            if self._self_observe(self._self_usage, event):
                self._self_call.first_chunk()
        except Exception:  # an unexpected event shape must not break the application's loop
            pass

    def _self_finish(self, error: BaseException | None = None) -> None:
        if error is None and not self._self_usage.seen:
            _warn_no_usage(self._self_call.provider)
        self._self_usage.finish(self._self_call, error)


class _Ending:
    """Around reading from an observed stream: finishes its call as the read ends the stream.

    Around one pull (``next``): the stream's end finishes the call, an error fails it, anything else
    (a ``KeyboardInterrupt``) leaves it open. Around a whole iteration (``whole``): the call finishes
    however the iteration ends, failed only by an error; the application leaving early, or a
    cancellation, is no error of the call.
    """

    __slots__ = ("_stream", "_whole")

    def __init__(self, stream: _Observed, whole: bool = False) -> None:
        self._stream, self._whole = stream, whole

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stream, whole = self._stream, self._whole
        if exc is None:
            if whole:
                stream._self_finish()
        elif not whole and isinstance(exc, StopIteration | StopAsyncIteration):
            stream._self_finish()  # the end of the stream
        elif isinstance(exc, Exception):
            stream._self_finish(exc)
        elif whole:
            stream._self_finish()  # left early (GeneratorExit) or cancelled


class ObservedStream(_Observed):
    """A sync ``Stream`` (or the raw stream under a helper), observed."""

    def __iter__(self) -> Iterator[Any]:
        with _Ending(self, whole=True):
            for event in self.__wrapped__:
                self._self_event(event)
                yield event

    def __next__(self) -> Any:
        with _Ending(self):
            event = next(self.__wrapped__)
        self._self_event(event)
        return event

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish()

    def __enter__(self) -> ObservedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_finish()


class ObservedAsyncStream(_Observed):
    """An ``AsyncStream``, observed."""

    async def _self_iterate(self) -> AsyncIterator[Any]:
        with _Ending(self, whole=True):
            async for event in self.__wrapped__:
                self._self_event(event)
                yield event

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_iterate()

    async def __anext__(self) -> Any:
        with _Ending(self):
            event = await self.__wrapped__.__anext__()
        self._self_event(event)
        return event

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_finish()

    async def __aenter__(self) -> ObservedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_finish()
