"""``versioned`` and ``phase``: each works as a decorator and as a (sync or async) ``with`` block.

One object may be shared (a module-level ``CHARGE_V2 = versioned("2.0", operation="charge")`` used
from many threads and tasks at once), so the calls a block has in flight are kept in a context
variable of that object rather than on the object itself.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

import wrapt

from .wrappers import ActiveCall, CallSpec, make_wrapper, start_call

__all__ = ["Phase", "Versioned", "phase", "versioned"]

F = TypeVar("F", bound=Callable[..., Any])


class _DecoratorAndBlock:
    """Shared machinery: decorate with ``__call__``, or enter as a block."""

    _spec: CallSpec | None
    _phase: str | None

    def __init__(self) -> None:
        self._in_flight: contextvars.ContextVar[tuple[ActiveCall | None, ...]] = contextvars.ContextVar(
            "otel_migration_in_flight", default=()
        )

    def _spec_for(self, function: Callable[..., Any]) -> CallSpec | None:
        return self._spec

    def __call__(self, function: F) -> F:
        target = function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        spec = self._spec_for(target)
        return cast(F, wrapt.FunctionWrapper(function, make_wrapper(function, spec, self._phase)))

    def _block_spec(self) -> CallSpec | None:
        return self._spec

    def __enter__(self) -> None:
        call = start_call(self._block_spec(), self._phase)
        if call is not None:
            call.activate()
        self._in_flight.set((*self._in_flight.get(), call))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = self._in_flight.get()
        if not stack:
            return
        call = stack[-1]
        self._in_flight.set(stack[:-1])
        if call is not None:
            call.close(exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Versioned(_DecoratorAndBlock):
    """A versioned code path; see :func:`versioned`."""

    def __init__(self, version: str, *, operation: str | None, migration: str | None) -> None:
        super().__init__()
        if not isinstance(version, str) or not version:
            raise ValueError(f"versioned(): version must be a non-empty string, got {version!r}")
        self.version = version
        self.operation = operation
        self.migration = migration
        self._phase = None
        self._spec = (
            CallSpec(version=version, operation=operation, migration=migration, code_function=None)
            if operation
            else None
        )

    def _spec_for(self, function: Callable[..., Any]) -> CallSpec:
        name = getattr(function, "__name__", "call")
        qualname = getattr(function, "__qualname__", name)
        module = getattr(function, "__module__", None)
        return CallSpec(
            version=self.version,
            operation=self.operation or name,
            migration=self.migration,
            code_function=f"{module}.{qualname}" if module else qualname,
        )

    def _block_spec(self) -> CallSpec:
        if self._spec is None:
            raise ValueError(f"versioned({self.version!r}) used as a block needs operation=...")
        return self._spec

    def __repr__(self) -> str:
        return f"versioned({self.version!r}, operation={self.operation!r}, migration={self.migration!r})"


class Phase(_DecoratorAndBlock):
    """A phase of the versioned call in effect; see :func:`phase`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if not isinstance(name, str) or not name:
            raise ValueError(f"phase(): name must be a non-empty string, got {name!r}")
        self.name = name
        self._phase = name
        self._spec = None

    def __repr__(self) -> str:
        return f"phase({self.name!r})"


def versioned(version: str, *, operation: str | None = None, migration: str | None = None) -> Versioned:
    """Mark a code path as ``version`` of ``operation``: one span and one exact call record per call.

    As a decorator the operation defaults to the function's name; as a ``with`` block it must be
    given. ``migration`` defaults to the configured migration name.
    """
    return Versioned(version, operation=operation, migration=migration)


def phase(name: str) -> Phase:
    """Mark a phase (extraction, analysis, synthesis...) of the versioned call that runs it."""
    return Phase(name)
