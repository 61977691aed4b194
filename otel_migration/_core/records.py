"""What the call path hands to aggregation: one typed record per finished call.

Data flows one way: a wrapped call ends its span and submits a record; the recorder's background
thread aggregates it and passes it on to the listeners (analytics, LLM metrics). A record carries
the call's :class:`Scope` (migration, operation, version, phase, subject) rather than copies of
its fields; listeners tell the two kinds apart by type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .context import Scope

__all__ = ["CallListener", "CallRecord", "LLMRecord", "Record"]


@dataclass(slots=True)
class CallRecord:
    """One finished versioned call, or one phase of it (``scope.phase`` set)."""

    scope: Scope
    outcome: str
    duration_s: float
    end_time_ns: int
    error_type: str | None = None
    error_category: str | None = None
    #: CPU seconds the call's own thread spent in it (a coroutine: in its steps); None: not measured
    #: (a phase, or measure_cpu off).
    cpu_time_s: float | None = None
    #: Net bytes allocated and still held when the call ended (tracemalloc, opt-in); None: not measured.
    memory_delta_bytes: int | None = None
    #: Generators only: seconds to the first item (their ``duration_s`` is the time to exhaustion).
    time_to_first_item_s: float | None = None
    streamed: bool = False

    @property
    def kind(self) -> str:
        """``"phase"`` for a phase of a versioned call, ``"call"`` for the call itself."""
        return "call" if self.scope.phase is None else "phase"

    @property
    def migration(self) -> str:
        return self.scope.migration

    @property
    def operation(self) -> str:
        return self.scope.operation

    @property
    def version(self) -> str:
        return self.scope.version

    @property
    def phase(self) -> str | None:
        return self.scope.phase

    @property
    def subject(self) -> str | None:
        return self.scope.subject

    @property
    def session(self) -> str | None:
        return self.scope.session


@dataclass(slots=True)
class LLMRecord:
    """One finished LLM call; ``scope.version`` is empty for a call made outside any versioned call."""

    scope: Scope
    provider: str
    operation: str
    request_model: str
    response_model: str
    tier: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    duration_s: float
    time_to_first_chunk_s: float | None
    outcome: str
    error_type: str | None
    end_time_ns: int
    usage_known: bool = True


Record = CallRecord | LLMRecord


class CallListener(Protocol):
    """Receives every record, in the aggregator's thread, after the core metrics saw it."""

    def on_call(self, record: Record) -> None: ...
