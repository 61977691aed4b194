"""``versioned`` and ``phase``: each works as a decorator and as a (sync or async) ``with`` block.

One object may be shared (a module-level ``CHARGE_V2 = versioned("2.0", operation="charge")`` used
from many threads and tasks at once), so the calls a block has in flight are kept per thread and
task, in one module-level :class:`OwnedStack` rather than on the object: a context variable per
object would stay in every context it was ever set in (the README's ``with versioned(...)`` idiom
creates one object per block).

Arguments are checked where they are given (``TypeError``/``ValueError`` naming the argument) and
names are bounded, cleaned and capped (see :mod:`otel_migration._core.limits`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

import wrapt

from .._core import limits
from .._core.lifecycle import OwnedStack
from .wrappers import ActiveCall, CallSpec, make_wrapper, start_call

__all__ = ["Phase", "Versioned", "phase", "versioned"]

F = TypeVar("F", bound=Callable[..., Any])

#: The calls each block has open, per thread and task (None: a block whose call is untraced).
_IN_FLIGHT: OwnedStack[ActiveCall | None] = OwnedStack("otel_migration_in_flight")


class _DecoratorAndBlock:
    """Shared machinery: decorate with ``__call__``, or enter as a block."""

    _spec: CallSpec | None
    _phase: str | None

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
        _IN_FLIGHT.push(self, call)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        found, call = _IN_FLIGHT.pop(self)
        if found and call is not None:
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
        version = limits.check_name(version, "version", "versioned")
        if operation is not None:
            operation = limits.check_name(operation, "operation", "versioned")
        if migration is not None:
            migration = limits.check_name(migration, "migration", "versioned")
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
        name = limits.check_name(name, "name", "phase")
        self.name = name
        self._phase = limits.admit("phase", name)
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
