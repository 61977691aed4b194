"""Rollouts: deterministic, sticky as they ramp, lists and kill switch, recorded as flag evaluations."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import otel_migration
from otel_migration._rollouts.rollout import bucket_of, registry

from .conftest import Harness


def unique(name: str) -> str:
    """Rollouts live for the process: every test gets its own."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


USERS = [f"user-{i}" for i in range(10_000)]


def test_deterministic_and_close_to_the_percent() -> None:
    name = unique("billing")
    first = [otel_migration.rollout(name, u, percent=25) for u in USERS]
    again = [otel_migration.rollout(name, u) for u in USERS]
    assert first == again
    share = first.count("2.0") / len(USERS)
    assert abs(share - 0.25) < 0.02  # binomial sd at n=10k is 0.4 %: 5 sd of slack
    assert set(first) == {"1.0", "2.0"}


def test_bucket_is_a_stable_hash_not_random() -> None:
    # Pinned values: a different Python, process or PYTHONHASHSEED must give the same buckets.
    assert [bucket_of("billing", u) for u in ("alice", "bob", "carol")] == [
        bucket_of("billing", "alice"),
        bucket_of("billing", "bob"),
        bucket_of("billing", "carol"),
    ]
    import hashlib

    digest = hashlib.sha256(b"billing\x00alice").digest()
    assert bucket_of("billing", "alice") == int.from_bytes(digest[:8], "big") % 10_000


def test_sticky_as_the_percent_ramps_up() -> None:
    name = unique("ramp")
    on_candidate: set[str] = set()
    for percent in (1, 5, 10, 25, 50, 75, 100):
        now = {u for u in USERS if otel_migration.rollout(name, u, percent=percent) == "2.0"}
        assert on_candidate <= now, "a user moved back to 1.0 while the percent grew"
        on_candidate = now
    assert on_candidate == set(USERS)


def test_allow_deny_and_kill_switch() -> None:
    name = unique("lists")
    otel_migration.set_rollout(name, percent=0, allow=["vip"], deny=["fragile"])
    otel_migration.set_rollout(name, percent=100)
    assert otel_migration.rollout(name, "vip") == "2.0"
    assert otel_migration.rollout(name, "fragile") == "1.0"  # deny wins over the percent
    assert otel_migration.rollout(name, "anyone") == "2.0"

    rolled_back = []
    registry.on_rollback(lambda state: rolled_back.append(state.name))
    otel_migration.kill_rollout(name, reason="p95 regression")
    otel_migration.kill_rollout(name, reason="again")  # a second kill is not a second rollback
    assert {otel_migration.rollout(name, u) for u in ("vip", "anyone", "fragile")} == {"1.0"}
    state = registry.get(name)
    assert state is not None and state.rollbacks == 1 and state.kill_reason == "again"
    assert rolled_back.count(name) == 1
    otel_migration.restore_rollout(name)
    assert otel_migration.rollout(name, "anyone") == "2.0"


@pytest.mark.parametrize("percent", [-1, 100.5, "50", True])
def test_bad_percent_is_a_clear_error(percent: object) -> None:
    with pytest.raises(ValueError, match="percent") as caught:
        otel_migration.rollout(unique("bad"), "u", percent=percent)  # type: ignore[arg-type]
    assert repr(percent) in str(caught.value)


def test_unconfigured_rollout_needs_a_percent() -> None:
    with pytest.raises(ValueError, match="not configured"):
        otel_migration.rollout(unique("nowhere"), "u")


def test_decision_is_a_feature_flag_evaluation_event_with_a_pseudonym(harness: Harness) -> None:
    name = unique("flag")
    with otel_migration.versioned("2.0", operation="charge"):
        variant = otel_migration.rollout(name, "alice@example.com", percent=100)
    (span,) = harness.spans("charge")
    (event,) = span.events
    assert event.name == "feature_flag.evaluation"
    assert event.attributes["feature_flag.key"] == name
    assert event.attributes["feature_flag.result.variant"] == variant == "2.0"
    assert event.attributes["feature_flag.result.reason"] == "split"
    assert event.attributes["feature_flag.provider.name"] == "otel-migration"
    context_id = event.attributes["feature_flag.context.id"]
    assert context_id != "alice@example.com" and len(context_id) == 16  # never the raw id
    assert "alice" not in str(span.to_json())


def test_rollout_metrics(harness: Harness) -> None:
    name = unique("metrics")
    for user in USERS[:1000]:
        otel_migration.rollout(name, user, percent=30)
    otel_migration.kill_rollout(name)
    otel_migration.rollout(name, "late-user")
    decisions = {
        (p.attributes["feature_flag.result.variant"], p.attributes["feature_flag.result.reason"]): p.value
        for p in harness.points("migration.rollout.decisions")
        if p.attributes["feature_flag.key"] == name
    }
    assert sum(decisions.values()) == 1001
    assert decisions[("1.0", "disabled")] == 1
    assert harness.value("migration.rollbacks", migration_name=name) == 1
    (rolled_back,) = [
        p for p in harness.points("migration.rollout.rolled_back") if p.attributes["migration.name"] == name
    ]
    assert rolled_back.value == 1
    (percent,) = [
        p for p in harness.points("migration.rollout.percent") if p.attributes["migration.name"] == name
    ]
    assert percent.value == 0.0  # killed: nobody is on the candidate


def test_configured_rollout(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import make_harness

    name = unique("configured")
    make_harness(rollouts={name: {"percent": 100, "control": "v1", "candidate": "v2", "deny": ["x"]}})
    assert otel_migration.rollout(name, "someone") == "v2"
    assert otel_migration.rollout(name, "x") == "v1"


def test_router_runs_the_chosen_version_with_the_subject(harness: Harness) -> None:
    name = unique("router")

    def legacy(user: str, amount: int) -> str:
        return f"legacy {amount}"

    def modern(user: str, amount: int) -> str:
        assert otel_migration.current_scope().subject is not None  # type: ignore[union-attr]
        return f"modern {amount}"

    charge = otel_migration.Router(
        name,
        {"1.0": legacy, "2.0": modern},
        operation="charge",
        subject=lambda user, amount: user,
        percent=50,
    )
    results = [charge(u, 5) for u in USERS[:200]]
    assert {"legacy 5", "modern 5"} == set(results)
    spans = harness.spans("charge")
    assert len(spans) == 200
    for span, user in zip(spans, USERS[:200], strict=True):
        expected = otel_migration.rollout(name, user)
        assert span.attributes["migration.version"] == expected
        assert span.attributes["migration.name"] == name


def test_async_router(harness: Harness) -> None:
    name = unique("async-router")

    async def v1(user: str) -> str:
        return "v1"

    async def v2(user: str) -> str:
        await asyncio.sleep(0)
        return "v2"

    route = otel_migration.Router(
        name, {"1.0": v1, "2.0": v2}, operation="fetch", subject=lambda u: u, percent=100
    )
    assert asyncio.run(route("someone")) == "v2"
    (span,) = harness.spans("fetch")
    assert span.attributes["migration.version"] == "2.0"


def test_subject_is_pseudonymised_on_call_records(harness: Harness) -> None:
    seen = []

    class Listener:
        def on_call(self, record: otel_migration.CallRecord) -> None:
            seen.append(record.subject)

    harness.telemetry.recorder.add_listener(Listener())
    with otel_migration.subject("bob@example.com"), otel_migration.versioned("1.0", operation="x"):
        pass
    harness.telemetry.recorder.drain()
    assert seen and seen[0] not in (None, "bob@example.com") and len(seen[0]) == 16


def test_sessions_are_counted_per_version(harness: Harness) -> None:
    for user in range(30):
        for session in range(3):
            version = "2.0" if user % 3 == 0 else "1.0"
            with (
                otel_migration.subject(f"u{user}", session=f"u{user}-s{session}"),
                otel_migration.versioned(version, operation="page"),
            ):
                pass
    snap = otel_migration.snapshot().migrations["default"]
    versions = {v.version: v for v in snap.adoption.versions}
    # HyperLogLog: at these counts two subjects can share a register (about 1 in 20 runs of 20).
    for version, users, sessions in (("2.0", 10, 30), ("1.0", 20, 60)):
        assert versions[version].users_1h == pytest.approx(users, abs=1.5)
        assert versions[version].sessions_1h == pytest.approx(sessions, abs=2.5)
        assert versions[version].requests_1h == sessions
