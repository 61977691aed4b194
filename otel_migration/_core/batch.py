"""A drained chunk of finished calls, grouped once so that every listener can aggregate it with numpy.

The recorder drains up to a few thousand calls at a time. Most of them share a handful of keys
(migration, operation, version, outcome). Plain calls arrive as rows (``records.CallRow``): the
chunk is turned into columns with one ``zip``, grouped by (scope, outcome) with a fast path for the
usual chunk of one group, and each group offers its durations, end times, CPU times and subject
hashes as arrays, built on first use and shared by every listener. Listeners then do a few numpy
operations per group instead of Python work per call (``benchmarks/call_overhead.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .pseudonyms import subject_hash
from .records import SCOPE_IDS, CallRecord, CallRow, LLMRecord, Queued, Record, record_of, row_of

__all__ = ["CallBatch", "CallGroup", "PhaseGroup", "split_by"]

_NO_ROWS: Final = np.zeros(0, dtype=np.intp)
_NO_HASHES: Final = np.zeros(0, dtype=np.uint64)
# Columns of a CallRow.
_SCOPE, _SUBJECT, _SESSION, _OUTCOME, _DURATION, _END, _ERROR_TYPE, _CATEGORY, _CPU = range(9)


def split_by(buckets: npt.NDArray[np.int64]) -> list[tuple[int, npt.NDArray[np.bool_]]]:
    """Each distinct value of ``buckets`` (time buckets of a group's calls) with the rows that have it.

    A group's calls nearly always fall in one bucket: two reductions find that, without a sort.
    """
    low, high = int(buckets.min()), int(buckets.max())
    if low == high:
        return [(low, np.full(buckets.size, True))]
    return [(bucket, buckets == bucket) for bucket in np.unique(buckets).tolist()]


class _Columns:
    """The chunk's rows as columns, with the numeric ones as arrays built once, on first use."""

    __slots__ = ("_arrays", "_hashes", "columns")

    def __init__(self, rows: Sequence[CallRow]) -> None:
        self.columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
        self._arrays: dict[int, npt.NDArray[Any]] = {}
        self._hashes: dict[str, int] = {}  # a user calls many times a chunk: hash each once

    def array(self, column: int, dtype: type) -> npt.NDArray[Any]:
        found = self._arrays.get(column)
        if found is None:
            found = self._arrays[column] = np.array(self.columns[column], dtype=dtype)
        return found

    def hash(self, value: str) -> int:
        found = self._hashes.get(value)
        if found is None:
            found = self._hashes[value] = subject_hash(value)
        return found


class CallGroup:
    """Finished versioned calls (not phases) of one migration, operation, version and outcome."""

    __slots__ = (
        "_columns",
        "_cpu",
        "_durations",
        "_end_ns",
        "_rows",
        "_sessions",
        "_users",
        "extras",
        "migration",
        "operation",
        "outcome",
        "size",
        "version",
    )

    def __init__(
        self,
        migration: str,
        operation: str,
        version: str,
        outcome: str,
        columns: _Columns,
        rows: list[int] | None,
        size: int,
    ) -> None:
        self.migration, self.operation, self.version, self.outcome = migration, operation, version, outcome
        self._columns = columns
        self._rows = rows  # the chunk's rows in this group, in order; None: all of them
        self.size = size
        #: Records of the calls with more than a row says (streamed, memory measured), in order.
        self.extras: list[CallRecord] = []
        self._durations: npt.NDArray[np.float64] | None = None
        self._end_ns: npt.NDArray[np.int64] | None = None
        self._cpu: npt.NDArray[np.float64] | None = None
        self._users: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None
        self._sessions: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None

    def _array(self, column: int, dtype: type) -> npt.NDArray[Any]:
        full = self._columns.array(column, dtype)
        return full if self._rows is None else full[self._rows]

    def _values(self, column: int) -> Sequence[Any]:
        values = self._columns.columns[column]
        return values if self._rows is None else [values[i] for i in self._rows]

    @property
    def durations(self) -> npt.NDArray[np.float64]:
        if self._durations is None:
            self._durations = self._array(_DURATION, np.float64)
        return self._durations

    @property
    def end_ns(self) -> npt.NDArray[np.int64]:
        if self._end_ns is None:
            self._end_ns = self._array(_END, np.int64)
        return self._end_ns

    @property
    def cpu(self) -> npt.NDArray[np.float64]:
        """CPU seconds of the calls that measured it (in call order, unmeasured ones left out)."""
        if self._cpu is None:
            values = self._values(_CPU)
            if None in values:
                values = [c for c in values if c is not None]
            self._cpu = np.array(values, dtype=np.float64)
        return self._cpu

    @property
    def error_types(self) -> Sequence[str | None]:
        """Each call's ``error.type`` (None for a call that did not raise), in call order."""
        return self._values(_ERROR_TYPE)

    @property
    def error_categories(self) -> Sequence[str | None]:
        """Each call's error category (None for a call that did not raise), in call order."""
        return self._values(_CATEGORY)

    @property
    def users(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        """(rows, 64-bit hashes) of the calls made for a user (``subject``)."""
        if self._users is None:
            self._users = self._hashes(_SUBJECT)
        return self._users

    @property
    def sessions(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        """(rows, 64-bit hashes) of the calls made in a session."""
        if self._sessions is None:
            self._sessions = self._hashes(_SESSION)
        return self._sessions

    def _hashes(self, column: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        ids = self._values(column)
        if not any(ids):
            return _NO_ROWS, _NO_HASHES
        hash_of = self._columns.hash
        rows = [i for i, value in enumerate(ids) if value]
        hashes = [hash_of(ids[i]) for i in rows]
        return np.array(rows, dtype=np.intp), np.array(hashes, dtype=np.uint64)


class PhaseGroup:
    """Phases of versioned calls sharing migration, operation, version, phase and outcome."""

    __slots__ = ("durations", "key")

    def __init__(self, key: tuple[str, str, str, str, str]) -> None:
        self.key = key
        self.durations: Sequence[float] = []


class CallBatch:
    """Calls drained together: versioned calls grouped by key, phases grouped, LLM calls in order."""

    __slots__ = ("_queued", "calls", "llm", "phases")

    def __init__(self, queued: Sequence[Queued]) -> None:
        self._queued = queued
        llm: list[LLMRecord] = []
        extras: dict[int, CallRecord] = {}  # row number -> the record it came from
        if set(map(type, queued)) == {tuple}:  # the usual chunk: plain calls only
            rows: Sequence[CallRow] = queued  # type: ignore[assignment]
        else:
            rows = []
            for item in queued:
                if item.__class__ is tuple:
                    rows.append(item)
                elif isinstance(item, CallRecord):
                    extras[len(rows)] = item
                    rows.append(row_of(item))
                elif isinstance(item, LLMRecord):
                    llm.append(item)
        self.llm: tuple[LLMRecord, ...] = tuple(llm)
        self.calls: tuple[CallGroup, ...] = ()
        self.phases: tuple[PhaseGroup, ...] = ()
        if rows:
            self._group(rows, extras)

    def _group(self, rows: Sequence[CallRow], extras: dict[int, CallRecord]) -> None:
        columns = _Columns(rows)
        scope_ids, outcomes = columns.columns[_SCOPE], columns.columns[_OUTCOME]
        # (scope id, outcome) -> the rows of that group, in order; None: every row (one group).
        index: dict[tuple[int, str], list[int] | None] = {}
        if len(set(scope_ids)) == 1 and len(set(outcomes)) == 1:
            index[(scope_ids[0], outcomes[0])] = None
        else:
            for i, key in enumerate(zip(scope_ids, outcomes, strict=True)):
                found = index.get(key)
                if found is None:
                    index[key] = [i]
                else:
                    found.append(i)
        scopes = SCOPE_IDS.scopes
        calls: list[CallGroup] = []
        phases: list[PhaseGroup] = []
        for (scope_id, outcome), members in index.items():
            scope = scopes[scope_id]
            size = len(rows) if members is None else len(members)
            if scope.phase is None:
                group = CallGroup(
                    scope.migration, scope.operation, scope.version, outcome, columns, members, size
                )
                if extras:
                    group.extras = [extras[i] for i in (members or range(size)) if i in extras]
                calls.append(group)
            else:
                phase = PhaseGroup((scope.migration, scope.operation, scope.version, scope.phase, outcome))
                durations = columns.columns[_DURATION]
                phase.durations = durations if members is None else [durations[i] for i in members]
                phases.append(phase)
        self.calls, self.phases = tuple(calls), tuple(phases)

    @property
    def records(self) -> list[Record]:
        """Every call as a record, in the order they finished (for listeners without ``on_batch``)."""
        queued = self._queued
        return [item if isinstance(item, CallRecord | LLMRecord) else record_of(item) for item in queued]
