"""One shape for ``tool(...)`` and ``agent(...)``: a decorator (sync or async function) and a ``with`` block.

Like ``versioned``, one object may be shared by many threads and tasks at once (a module-level
``SEARCH = tool("search")``), so the runs a block has in flight are kept in a context variable of
that object, not on the object. Generators are refused: a span around a generator function would
cover creating the generator, not its work; wrap the loop that consumes it in a block instead.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar, cast

import wrapt

__all__ = ["Call", "Run", "Spanned"]

F = TypeVar("F", bound=Callable[..., Any])
#: A decorated call's positional and keyword arguments.
Call = tuple[tuple[Any, ...], dict[str, Any]]


class Run(Protocol):
    """A run in flight: made current around the work, then closed once with the exception, if any."""

    def activate(self) -> None: ...

    def close(self, exc: BaseException | None) -> None: ...

    def returned(self, result: Any) -> None:
        """What a decorated function returned, before ``close`` (blocks have none)."""


R = TypeVar("R", bound=Run)


class Spanned(Generic[R]):
    """Decorate with ``__call__``; enter as a (sync or async) block, which gives the run."""

    _kind = "spanned"

    def __init__(self) -> None:
        self._in_flight: contextvars.ContextVar[tuple[R, ...]] = contextvars.ContextVar(
            f"otel_migration_{self._kind}", default=()
        )

    def _start(self, function: Callable[..., Any] | None, call: Call | None = None) -> R:
        """Open the run (its span, its context); never raises, whatever the state of the telemetry.

        ``function`` and ``call`` (its positional and keyword arguments) are None for a block."""
        raise NotImplementedError

    def __call__(self, function: F) -> F:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(f"{self!r} cannot wrap the generator function {function!r}; use it as a block")
        if inspect.iscoroutinefunction(function):

            def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                async def run() -> Any:
                    current = self._start(wrapped, (args, kwargs))
                    current.activate()
                    try:
                        result = await wrapped(*args, **kwargs)
                    except BaseException as exc:
                        current.close(exc)
                        raise
                    current.returned(result)
                    current.close(None)
                    return result

                return run()

        else:

            def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                current = self._start(wrapped, (args, kwargs))
                current.activate()
                try:
                    result = wrapped(*args, **kwargs)
                except BaseException as exc:
                    current.close(exc)
                    raise
                current.returned(result)
                current.close(None)
                return result

        return cast(F, wrapt.FunctionWrapper(function, wrapper))

    def __enter__(self) -> R:
        current = self._start(None)
        current.activate()
        self._in_flight.set((*self._in_flight.get(), current))
        return current

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = self._in_flight.get()
        if stack:
            self._in_flight.set(stack[:-1])
            stack[-1].close(exc)

    async def __aenter__(self) -> R:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
