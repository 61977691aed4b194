"""What the call path hands to aggregation: one typed record per finished call.

Data flows one way: a wrapped call ends its span and submits a record; the recorder's background
thread aggregates it and passes it on to the listeners (analytics, LLM metrics). A record carries
the call's :class:`Scope` (migration, operation, version, phase, subject) rather than copies of
its fields; listeners tell the two kinds apart by type.

A plain versioned call (the common case: no stream, no memory measurement) is queued as a
:data:`CallRow` instead: a tuple of strings and numbers, its scope as a small integer. Why: the
queue holds thousands of finished calls between drains, and every object on it that can hold
references is tracked by the garbage collector, which walks all of them on each young-generation
collection the *caller's* allocations trigger. A tuple of atoms is untracked at the first
collection that sees it, so rows cost the host nothing while they wait.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from .context import Scope

__all__ = [
    "SCOPE_IDS",
    "CallListener",
    "CallRecord",
    "CallRow",
    "LLMRecord",
    "Queued",
    "Record",
    "ScopeIds",
    "make_row",
    "row_of",
    "record_of",
]


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

#: A finished plain call: (scope id, subject, session, outcome, duration_s, end_time_ns, error_type,
#: error_category, cpu_time_s). The scope id is :data:`SCOPE_IDS`' number for the call's scope
#: without its subject (which travels as the two strings after it).
CallRow = tuple[int, str | None, str | None, str, float, int, str | None, str | None, float | None]
#: What the call path puts on the recorder's queue.
Queued = CallRow | CallRecord | LLMRecord


class ScopeIds:
    """Numbers the scopes calls run under (migration, operation, version, phase; no subject).

    Scopes are few, bounded by the code and by the cardinality limits on their names; each keeps
    its number for the life of the process (a forked child inherits them, which is right: the
    numbers mean the same scopes there).
    """

    __slots__ = ("_ids", "_lock", "scopes")

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str, str, str | None], int] = {}
        self._lock = threading.Lock()
        #: The scope (without subject) of each number.
        self.scopes: list[Scope] = []

    def id(self, scope: Scope) -> int:
        key = (scope.migration, scope.operation, scope.version, scope.phase)
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(key)
            if found is None:
                found = self._ids[key] = len(self.scopes)
                self.scopes.append(Scope(*key))
            return found


SCOPE_IDS = ScopeIds()


def make_row(
    scope_id: int,
    scope: Scope,
    outcome: str,
    duration_s: float,
    end_time_ns: int,
    error_type: str | None,
    error_category: str | None,
    cpu_time_s: float | None,
) -> CallRow:
    """The row of a call under ``scope`` (numbered ``scope_id``): its subject and session as strings."""
    return (
        scope_id,
        scope.subject,
        scope.session,
        outcome,
        duration_s,
        end_time_ns,
        error_type,
        error_category,
        cpu_time_s,
    )


def row_of(record: CallRecord) -> CallRow:
    """The row of a record's call (its stream and memory fields left out)."""
    scope = record.scope
    return make_row(
        SCOPE_IDS.id(scope),
        scope,
        record.outcome,
        record.duration_s,
        record.end_time_ns,
        record.error_type,
        record.error_category,
        record.cpu_time_s,
    )


def record_of(row: CallRow) -> CallRecord:
    """The record of a row's call, for listeners that take records one by one."""
    scope_id, subject, session, outcome, duration_s, end_ns, err_type, category, cpu = row
    scope = SCOPE_IDS.scopes[scope_id]
    if subject is not None or session is not None:
        scope = Scope(scope.migration, scope.operation, scope.version, scope.phase, subject, session)
    return CallRecord(scope, outcome, duration_s, end_ns, err_type, category, cpu)


class CallListener(Protocol):
    """Receives every record, in the aggregator's thread, after the core metrics saw it."""

    def on_call(self, record: Record) -> None: ...
