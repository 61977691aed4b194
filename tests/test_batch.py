"""A drained chunk grouped from rows equals the same calls grouped by hand, record by record."""

from __future__ import annotations

import gc
import random
from typing import Any

import numpy as np

import otel_migration
from otel_migration import Scope
from otel_migration._core.batch import CallBatch
from otel_migration._core.pseudonyms import subject_hash
from otel_migration._core.records import SCOPE_IDS, CallRecord, LLMRecord, Queued, record_of, row_of

from .conftest import Harness

SCOPES = [
    Scope("m", "op", "1.0"),
    Scope("m", "op", "2.0"),
    Scope("m", "other", "2.0"),
    Scope("n", "op", "1.0"),
]
OUTCOMES = ["ok", "ok", "ok", "error", "cancelled"]


def _llm(scope: Scope) -> LLMRecord:
    return LLMRecord(
        scope, "openai", "chat", "gpt", "gpt", "tier", 1, 2, 0, 0, None, 0.1, None, "ok", None, 10**18
    )


def _calls(rng: random.Random, count: int) -> list[Queued]:
    """Rows of several scopes, outcomes and subjects, with records (streamed, memory) and LLM calls."""
    queued: list[Queued] = []
    for i in range(count):
        scope = rng.choice(SCOPES)
        outcome = rng.choice(OUTCOMES)
        user = rng.choice([None, "alice", "bob", "0123456789abcdef"])
        session = rng.choice([None, f"s{i % 7}"]) if user else None
        if user:
            scope = Scope(scope.migration, scope.operation, scope.version, None, user, session)
        error = ("ValueError", rng.choice([None, "validation"])) if outcome == "error" else (None, None)
        cpu = rng.choice([None, rng.random() / 100])
        record = CallRecord(scope, outcome, rng.random(), 10**18 + i, error[0], error[1], cpu)
        kind = rng.random()
        if kind < 0.05:
            record.memory_delta_bytes = rng.randrange(1000)
            queued.append(record)
        elif kind < 0.1:
            record.streamed, record.time_to_first_item_s = True, 0.01
            queued.append(record)
        elif kind < 0.15:
            queued.append(_llm(scope))
        elif kind < 0.2:
            phase = Scope(scope.migration, scope.operation, scope.version, "load", user, session)
            queued.append(row_of(CallRecord(phase, outcome, rng.random(), 10**18 + i)))
        else:
            queued.append(row_of(record))
    return queued


def _by_hand(
    queued: list[Queued],
) -> tuple[dict[tuple[str, ...], list[CallRecord]], dict[tuple[str, ...], list[float]]]:
    calls: dict[tuple[str, ...], list[CallRecord]] = {}
    phases: dict[tuple[str, ...], list[float]] = {}
    for item in queued:
        if isinstance(item, LLMRecord):
            continue
        record = item if isinstance(item, CallRecord) else record_of(item)
        s = record.scope
        if s.phase is None:
            calls.setdefault((s.migration, s.operation, s.version, record.outcome), []).append(record)
        else:
            key = (s.migration, s.operation, s.version, s.phase, record.outcome)
            phases.setdefault(key, []).append(record.duration_s)
    return calls, phases


def _hashes(values: list[str | None]) -> tuple[list[int], list[int]]:
    rows = [i for i, v in enumerate(values) if v]
    return rows, [subject_hash(values[i]) for i in rows]  # type: ignore[arg-type]


def _assert_group_matches(group: Any, records: list[CallRecord]) -> None:
    assert group.size == len(records)
    assert group.durations.tolist() == [r.duration_s for r in records]
    assert group.end_ns.tolist() == [r.end_time_ns for r in records]
    assert group.cpu.tolist() == [r.cpu_time_s for r in records if r.cpu_time_s is not None]
    assert list(group.error_types) == [r.error_type for r in records]
    assert list(group.error_categories) == [r.error_category for r in records]
    for got, field in ((group.users, "subject"), (group.sessions, "session")):
        rows, hashes = _hashes([getattr(r.scope, field) for r in records])
        assert got[0].tolist() == rows
        assert got[1].tolist() == hashes
        assert got[1].dtype == np.uint64
    extras = [r for r in records if r.streamed or r.memory_delta_bytes is not None]
    assert [(r.duration_s, r.streamed, r.memory_delta_bytes) for r in group.extras] == [
        (r.duration_s, r.streamed, r.memory_delta_bytes) for r in extras
    ]


def test_rows_group_like_the_records_they_stand_for() -> None:
    for seed in range(20):
        queued = _calls(random.Random(seed), 500)
        batch = CallBatch(queued)
        calls, phases = _by_hand(queued)
        assert {(g.migration, g.operation, g.version, g.outcome) for g in batch.calls} == set(calls)
        for group in batch.calls:
            _assert_group_matches(
                group, calls[(group.migration, group.operation, group.version, group.outcome)]
            )
        assert {p.key: list(p.durations) for p in batch.phases} == phases
        assert batch.llm == tuple(item for item in queued if isinstance(item, LLMRecord))
        # Listeners that take records one by one get every call, in order, with the same fields.
        assert [
            (r.scope, r.outcome, r.duration_s, r.end_time_ns, r.error_type, r.error_category)
            for r in batch.records
            if isinstance(r, CallRecord)
        ] == [
            (r.scope, r.outcome, r.duration_s, r.end_time_ns, r.error_type, r.error_category)
            for item in queued
            if not isinstance(item, LLMRecord)
            for r in [item if isinstance(item, CallRecord) else record_of(item)]
        ]


def test_a_chunk_of_one_group_takes_the_fast_path_with_the_same_figures() -> None:
    rng = random.Random(7)
    scope = Scope("m", "op", "2.0")
    records = [
        CallRecord(
            Scope("m", "op", "2.0", None, rng.choice(["u1", "u2", "u3"]), "s") if i % 3 else scope,
            "ok",
            rng.random(),
            10**18 + i,
            cpu_time_s=rng.random() if i % 2 else None,
        )
        for i in range(1000)
    ]
    batch = CallBatch([row_of(r) for r in records])
    assert len(batch.calls) == 1 and not batch.phases and not batch.llm
    _assert_group_matches(batch.calls[0], records)
    assert batch.calls[0]._rows is None  # the fast path: every row, no index


def test_scope_ids_name_scopes_without_their_subject() -> None:
    plain = SCOPE_IDS.id(Scope("ids", "op", "1.0"))
    assert SCOPE_IDS.id(Scope("ids", "op", "1.0", None, "user", "session")) == plain
    assert SCOPE_IDS.id(Scope("ids", "op", "1.0", "phase")) != plain
    assert SCOPE_IDS.scopes[plain] == Scope("ids", "op", "1.0")


def test_a_queued_plain_call_is_not_tracked_by_the_garbage_collector(harness: Harness) -> None:
    """Thousands of calls wait between drains: the host's young-generation collections must not walk them."""
    work = otel_migration.versioned("2.0", operation="gc")(lambda: None)
    with otel_migration.subject("user-1", session="s-1"):
        work()
    recorder = harness.telemetry.recorder
    with recorder._drain_lock:  # the aggregator waits: the calls stay queued
        for _ in range(3):
            work()
        with otel_migration.subject("user-2"):
            work()
        queued = list(recorder._queue)
        gc.collect()
        assert queued and all(isinstance(item, tuple) for item in queued)
        assert not any(gc.is_tracked(item) for item in queued)
    assert harness.value("migration.requests", migration_operation="gc") == 5
