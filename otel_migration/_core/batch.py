"""A drained chunk of records, grouped once so that every listener can aggregate it with numpy.

The recorder drains up to a few thousand records at a time. Most of them share a handful of keys
(migration, operation, version, outcome), so one pass groups them and each group offers its
durations, end times, CPU times and subject hashes as arrays, built on first use and shared by
every listener. Listeners then do a few numpy operations per group instead of Python work per
record (``benchmarks/call_overhead.py`` measures the difference).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from .context import Scope
from .pseudonyms import subject_hash
from .records import CallRecord, LLMRecord, Record

__all__ = ["CallBatch", "CallGroup", "PhaseGroup", "split_by"]

_NO_HASHES: Final = np.zeros(0, dtype=np.uint64)


def split_by(buckets: npt.NDArray[np.int64]) -> list[tuple[int, npt.NDArray[np.bool_]]]:
    """Each distinct value of ``buckets`` (time buckets of a group's calls) with the rows that have it.

    A group's calls nearly always fall in one bucket: two reductions find that, without a sort.
    """
    low, high = int(buckets.min()), int(buckets.max())
    if low == high:
        return [(low, np.full(buckets.size, True))]
    return [(bucket, buckets == bucket) for bucket in np.unique(buckets).tolist()]


class CallGroup:
    """Finished versioned calls (not phases) of one migration, operation, version and outcome."""

    __slots__ = (
        "_cpu",
        "_durations",
        "_end_ns",
        "_sessions",
        "_users",
        "first_scope",
        "migration",
        "mixed",
        "operation",
        "outcome",
        "records",
        "version",
    )

    def __init__(self, migration: str, operation: str, version: str, outcome: str) -> None:
        self.migration, self.operation, self.version, self.outcome = migration, operation, version, outcome
        self.records: list[CallRecord] = []
        #: The scope of the first call, and whether any other call had another Scope object (a
        #: subject makes scopes per call); when none did, per-subject work is done once.
        self.first_scope: Scope | None = None
        self.mixed = False
        self._durations: npt.NDArray[np.float64] | None = None
        self._end_ns: npt.NDArray[np.int64] | None = None
        self._cpu: npt.NDArray[np.float64] | None = None
        self._users: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None
        self._sessions: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None

    @property
    def size(self) -> int:
        return len(self.records)

    @property
    def durations(self) -> npt.NDArray[np.float64]:
        if self._durations is None:
            self._durations = np.array([r.duration_s for r in self.records], dtype=np.float64)
        return self._durations

    @property
    def end_ns(self) -> npt.NDArray[np.int64]:
        if self._end_ns is None:
            self._end_ns = np.array([r.end_time_ns for r in self.records], dtype=np.int64)
        return self._end_ns

    @property
    def cpu(self) -> npt.NDArray[np.float64]:
        """CPU seconds of the calls that measured it (in record order, unmeasured ones left out)."""
        if self._cpu is None:
            self._cpu = np.array(
                [c for r in self.records if (c := r.cpu_time_s) is not None], dtype=np.float64
            )
        return self._cpu

    @property
    def users(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        """(rows, 64-bit hashes) of the calls made for a user (``subject``)."""
        if self._users is None:
            self._users = self._hashes("subject")
        return self._users

    @property
    def sessions(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        """(rows, 64-bit hashes) of the calls made in a session."""
        if self._sessions is None:
            self._sessions = self._hashes("session")
        return self._sessions

    def _hashes(self, field: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
        """(rows, hashes) of the calls whose scope has ``field`` (``subject`` or ``session``)."""
        shared = self._shared(getattr(self.first_scope, field) if self.first_scope else None)
        return shared if shared is not None else _hashes([getattr(r.scope, field) for r in self.records])

    def _shared(self, value: str | None) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None:
        """Rows and hashes when every call shares one scope (so ``value``); None when they differ."""
        if self.mixed:
            return None
        if not value:
            return np.zeros(0, dtype=np.intp), _NO_HASHES
        rows = np.arange(len(self.records), dtype=np.intp)
        return rows, np.full(rows.size, subject_hash(value), dtype=np.uint64)


def _hashes(ids: list[str | None]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    rows = [i for i, value in enumerate(ids) if value]
    if not rows:
        return np.zeros(0, dtype=np.intp), _NO_HASHES
    hashes = [subject_hash(ids[i]) for i in rows]  # type: ignore[arg-type]
    return np.array(rows, dtype=np.intp), np.array(hashes, dtype=np.uint64)


class PhaseGroup:
    """Phases of versioned calls sharing migration, operation, version, phase and outcome."""

    __slots__ = ("durations", "key")

    def __init__(self, key: tuple[str, str, str, str, str]) -> None:
        self.key = key
        self.durations: list[float] = []


class CallBatch:
    """Records drained together: versioned calls grouped by key, phases grouped, LLM calls in order."""

    __slots__ = ("calls", "llm", "phases", "records")

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        calls: dict[tuple[str, str, str, str], CallGroup] = {}
        phases: dict[tuple[str, str, str, str, str], PhaseGroup] = {}
        llm: list[LLMRecord] = []
        # Consecutive calls of one versioned function usually share one Scope object (no subject):
        # those skip building the key and the lookup.
        last_scope: object = None
        last_outcome = ""
        last: list[CallRecord] = []
        for record in records:
            if record.__class__ is CallRecord or isinstance(record, CallRecord):
                scope = record.scope
                outcome = record.outcome
                if scope is last_scope and outcome is last_outcome:
                    last.append(record)
                elif scope.phase is None:
                    key = (scope.migration, scope.operation, scope.version, outcome)
                    group = calls.get(key)
                    if group is None:
                        group = calls[key] = CallGroup(*key)
                        group.first_scope = scope
                    elif scope is not group.first_scope:
                        group.mixed = True
                    last, last_scope, last_outcome = group.records, scope, outcome
                    last.append(record)
                else:
                    phase_key = (scope.migration, scope.operation, scope.version, scope.phase, outcome)
                    phase = phases.get(phase_key)
                    if phase is None:
                        phase = phases[phase_key] = PhaseGroup(phase_key)
                    phase.durations.append(record.duration_s)
            else:
                llm.append(record)
        self.calls: tuple[CallGroup, ...] = tuple(calls.values())
        self.phases: tuple[PhaseGroup, ...] = tuple(phases.values())
        self.llm: tuple[LLMRecord, ...] = tuple(llm)
