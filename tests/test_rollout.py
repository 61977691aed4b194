"""Rollouts: deterministic, sticky as they ramp, lists and kill switch, recorded as flag evaluations.

Every rollout here is an OpenFeature flag served by flagd's file provider from the test's own flag
file (tests/conftest.py sets ``OTEL_MIGRATION_FLAG_FILE``).
"""

from __future__ import annotations

import asyncio
import uuid

import cbor2
import mmh3
import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

import otel_migration
from otel_migration._rollouts.rollout import registry

from .conftest import Harness


def unique(name: str) -> str:
    """Rollouts live for the process: every test gets its own."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


USERS = [f"user-{i}" for i in range(10_000)]


def test_deterministic_and_close_to_the_percent() -> None:
    name = unique("billing")
    first = [otel_migration.rollout(name, u, percent=25) for u in USERS[:5000]]
    again = [otel_migration.rollout(name, u, percent=60) for u in USERS[:5000]]  # seeds once: the file wins
    assert first == again
    share = first.count("2.0") / 5000
    assert abs(share - 0.25) < 0.03  # binomial sd at n=5000 is 0.6 %: 5 sd of slack
    assert set(first) == {"1.0", "2.0"}


def test_buckets_are_flagds_fractional_hash_not_random() -> None:
    # flagd's documented algorithm, computed here from its definition: murmur3 (32 bit, unsigned)
    # of the CBOR of [flag key, targeting key], scaled into the summed weight (10,000). The same
    # user lands in the same bucket in every process, run and language of the flagd providers.
    name = unique("billing")
    otel_migration.set_rollout(name, percent=37.5)
    for user in USERS[:2000]:
        bucket = (mmh3.hash(cbor2.dumps([name, user], canonical=True), signed=False) * 10_000) >> 32
        assert otel_migration.rollout(name, user) == ("2.0" if bucket >= 6250 else "1.0")


def test_sticky_as_the_percent_ramps_up() -> None:
    # Raising the percent only ever moves users from 1.0 to 2.0: the candidate is listed last in
    # the fractional split and the weights always sum to 10,000.
    name = unique("ramp")
    users = USERS[:3000]
    on_candidate: set[str] = set()
    for percent in (0, 1, 10, 25, 60, 99.99, 100):
        otel_migration.set_rollout(name, percent=percent)
        now = {u for u in users if otel_migration.rollout(name, u) == "2.0"}
        assert on_candidate <= now, "a user moved back to 1.0 while the percent grew"
        assert abs(len(now) / len(users) - percent / 100) < 0.035  # binomial sd <= 0.9 % at n=3000
        on_candidate = now
    assert on_candidate == set(users)


def _flagd_split(first: str, second: str, first_weight: int) -> dict[str, object]:
    return {
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"1.0": "1.0", "2.0": "2.0"},
                "defaultVariant": "1.0",
                "targeting": {"fractional": [[first, first_weight], [second, 10_000 - first_weight]]},
            }
        }
    }


def test_the_candidate_must_stay_at_the_same_end_of_the_split() -> None:
    # Why the writer always lists the candidate last: a user is on the candidate when its hash
    # falls in the candidate's end of [0, 1), so ramping is monotone only while that end stays the
    # same. Put the candidate first at 30 % and last at 60 %, and users move back to 1.0.
    core = FlagdCore()

    def on_candidate(split: dict[str, object]) -> set[str]:
        core.set_flags(split)
        return {
            u
            for u in USERS[:3000]
            if core.resolve_string_value("f", "1.0", EvaluationContext(targeting_key=u)).value == "2.0"
        }

    last_30, last_60 = (
        on_candidate(_flagd_split("1.0", "2.0", 7000)),
        on_candidate(_flagd_split("1.0", "2.0", 4000)),
    )
    first_30 = on_candidate(_flagd_split("2.0", "1.0", 3000))
    assert last_30 <= last_60
    assert not first_30 <= last_60
    assert len(first_30 - last_60) > 300  # about 30 % x 40 % of 3000 users would move back


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
    assert state is not None and state.killed and state.rollbacks == 1 and state.kill_reason == "again"
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
    # flagd reports a fractional or list decision as a targeting match
    assert event.attributes["feature_flag.result.reason"] == "targeting_match"
    assert event.attributes["feature_flag.provider.name"] == "FlagdProvider"
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
