"""The hot path of ``rollout()``: flagd's rules compiled per loaded flag state give flagd's answers.

Every check compares with the OpenFeature client evaluating the same flag through the API (what
``rollout()`` did on every call before, and still does when the hot path steps aside): same value,
variant and reason for every user of every shape, the same recorded events and counts, the same
moment a rewrite is served, and the client again as soon as an application hook or provider
could see the evaluation.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails
from openfeature.hook import Hook, HookContext, HookHints, get_hooks

import otel_migration
from otel_migration._rollouts.evaluation import Evaluation, cbor_text, compile_flag
from otel_migration._rollouts.flagfile import FlagFile, RolloutState
from otel_migration._rollouts.rollout import decide, flags

from .conftest import Harness


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def flag_file() -> Path:
    return Path(os.environ["OTEL_MIGRATION_FLAG_FILE"])


def through_openfeature(name: str, user: str, default: str = "1.0") -> Evaluation:
    """The flag evaluated by the OpenFeature client, hooks and all: the reference."""
    details = api.get_client().get_string_details(name, default, EvaluationContext(targeting_key=user))
    return Evaluation.of(details)


USERS = [f"user-{i}" for i in range(3000)] + [
    "vip",
    "fragile",
    "ü-user",
    "用户-42",
    "🙂",
    "x" * 23,
    "x" * 24,
    "é" * 200,
    "y" * 300,
    "z" * 70_000,
    "\ud800-lone-surrogate",  # neither cbor2 nor UTF-8 encode it: flagd serves its default
]


@pytest.mark.parametrize("size", [0, 1, 23, 24, 255, 256, 65_535, 65_536])
def test_the_bucket_key_is_cbor2s_canonical_encoding(size: int) -> None:
    for text in ("a" * size, ("ü" * size)[:size], "🙂" * (size // 4)):
        assert cbor_text(text) == cbor2.dumps(text, canonical=True)
        assert b"\x82" + cbor_text("checkout") + cbor_text(text) == cbor2.dumps(
            ["checkout", text], canonical=True
        )
    with pytest.raises(UnicodeEncodeError):
        cbor_text("\ud800")


def _write_shapes(path: Path) -> dict[str, bool]:
    """Flags of every shape into the flag file; name -> whether the hot path compiles it."""
    names = {
        "ramp": unique("ramp"),
        "lists": unique("lists"),
        "killed": unique("killed"),
        "zero": unique("zero"),
        "full": unique("full"),
        "fine": unique("fine"),
    }
    flag_file_ = FlagFile(path)
    flag_file_.edit(
        lambda current: {
            names["ramp"]: RolloutState(names["ramp"], percent=37.5),
            names["lists"]: RolloutState(
                names["lists"], percent=60, allow=frozenset({"vip", "user-42"}), deny=frozenset({"fragile"})
            ),
            names["killed"]: RolloutState(names["killed"], percent=80, allow=frozenset({"vip"}), killed=True),
            names["zero"]: RolloutState(names["zero"], "v1", "v2", percent=0),
            names["full"]: RolloutState(names["full"], "v1", "v2", percent=100, deny=frozenset({"vip"})),
            names["fine"]: RolloutState(names["fine"], percent=0.01),
        }
    )
    document = json.loads(path.read_text())
    document["metadata"] = {"flagSetId": "shop"}  # flag-set metadata, merged under each flag's
    enabled = {"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"}, "defaultVariant": "a"}
    hand = {
        # written by hand but in a shape we compile: three variants, a zero weight, odd total
        "three-way": {**enabled, "targeting": {"fractional": [["a", 0], ["b", 3], ["c", 4]]}},
        "static": {**enabled, "defaultVariant": "c"},
        # not compiled: another operator, a bucketing expression, a weightless variant, no string
        "prefix": {
            **enabled,
            "targeting": {"if": [{"starts_with": [{"var": "targetingKey"}, "user-1"]}, "b", "a"]},
        },
        "by-email": {**enabled, "targeting": {"fractional": [{"var": "targetingKey"}, ["a", 50], ["b", 50]]}},
        "weightless": {**enabled, "targeting": {"fractional": [["a"], ["b"]]}},
        "boolean": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        "disabled": {**enabled, "state": "DISABLED"},
        "no-default": {"state": "ENABLED", "variants": {"a": "a"}},
    }
    document["flags"].update(hand)
    path.write_text(json.dumps(document))
    compiled = {name: True for name in names.values()}
    compiled.update({"three-way": True, "static": True})
    compiled.update(
        dict.fromkeys(("prefix", "by-email", "weightless", "boolean", "disabled", "no-default"), False)
    )
    return compiled


def test_every_user_of_every_shape_gets_what_the_openfeature_client_serves() -> None:
    shapes = _write_shapes(flag_file())
    flags.changed(flags.file())  # a provider already running loads the file now
    flags.client()  # or one starts on it
    loaded = flags._hot()
    assert loaded is not None, "the hot path must be on with the pinned flagd (its store layout changed?)"
    for name, compiled in shapes.items():
        assert (loaded.flag(name) is not None) is compiled, name
        for user in USERS:
            assert flags.evaluate(name, user, "1.0", None) == through_openfeature(name, user), (name, user)
    killed = next(n for n in shapes if n.startswith("killed-"))
    assert flags.evaluate(killed, "vip", "1.0", None) == Evaluation("1.0", "1.0", "disabled")
    assert decide(killed, "anyone").reason == "disabled"


def test_what_is_recorded_is_what_the_hook_records(harness: Harness) -> None:
    name = unique("recorded")
    otel_migration.set_rollout(name, percent=50, deny=["fragile"])
    flags.client()  # the provider runs
    assert flags._hot() is not None
    users = ["fragile", *USERS[:41]]  # 3 events each: the SDK keeps 128 per span
    with otel_migration.versioned("2.0", operation="pay"):
        for user in users:
            otel_migration.rollout(name, user)  # the hot path
            decide(name, user)  # the hot path, pseudonym computed by the caller
            api.get_client().get_string_value(name, "1.0", EvaluationContext(targeting_key=user))  # the hook
    (span,) = harness.spans("pay")
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert len(events) == 3 * len(users)
    for fast, decided, hooked in zip(events[::3], events[1::3], events[2::3], strict=True):
        assert fast == decided == hooked
    assert events[0][1]["feature_flag.result.reason"] == "targeting_match"
    assert events[0][1]["feature_flag.provider.name"] == "FlagdProvider"
    decisions = {
        p.attributes["feature_flag.result.variant"]: p.value
        for p in harness.points("migration.rollout.decisions")
        if p.attributes["feature_flag.key"] == name
    }
    served = [attributes["feature_flag.result.variant"] for _, attributes in events[::3]]
    assert decisions == {"1.0": 3 * served.count("1.0"), "2.0": 3 * served.count("2.0")}


def test_an_application_hook_sees_every_rollout_evaluation() -> None:
    # The hot path would skip the application's hooks: with one added, the client evaluates.
    name = unique("hooked")
    otel_migration.set_rollout(name, percent=100)
    seen: list[tuple[str, str | None]] = []

    class Seen(Hook):
        def after(
            self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
        ) -> None:
            seen.append((hook_context.flag_key, details.variant))

    hook = Seen()
    flags.client()  # the provider runs
    assert flags._hot() is not None
    api.add_hooks([hook])
    try:
        assert flags._hot() is None
        assert otel_migration.rollout(name, "alice") == "2.0"
    finally:
        get_hooks().remove(hook)
    assert seen == [(name, "2.0")]
    assert flags._hot() is not None
    assert otel_migration.rollout(name, "alice") == "2.0"
    assert seen == [(name, "2.0")]


def _set_to(state: RolloutState) -> Callable[[dict[str, RolloutState]], dict[str, RolloutState]]:
    return lambda current: {state.name: state}


def test_a_rewrite_is_served_at_the_same_moment_as_through_the_client() -> None:
    # Another writer toggles the rollout (the watcher loads it); at every instant the hot path
    # answers what the client answers: when two client answers around it agree, so does it.
    name = unique("toggled")
    otel_migration.set_rollout(name, percent=0)
    writer_file = FlagFile(flag_file())
    stop = threading.Event()

    def writer() -> None:
        percent = 100.0
        while not stop.is_set():
            writer_file.edit(_set_to(RolloutState(name, percent=percent)))
            percent = 100.0 - percent
            time.sleep(random.uniform(0.05, 0.4))

    thread = threading.Thread(target=writer)
    thread.start()
    transitions, compared, last = 0, 0, "1.0"
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            before = through_openfeature(name, "alice").value
            fast = otel_migration.rollout(name, "alice")
            after = through_openfeature(name, "alice").value
            if before == after:
                assert fast == before
                compared += 1
                transitions += fast != last
                last = fast
    finally:
        stop.set()
        thread.join()
    assert transitions >= 4 and compared > 1000


def test_compile_leaves_other_shapes_to_flagd() -> None:
    class Flag:
        key, state, variants, default_variant, metadata = "f", "ENABLED", {"a": "a", "b": "b"}, "a", None

        def __init__(self, targeting: object) -> None:
            self.targeting = targeting

    assert compile_flag(Flag({"fractional": [["a", 1], ["b", 1]]}), {}) is not None
    assert compile_flag(Flag(None), {}) is not None
    for targeting in (
        {"fractional": [["a", 1], ["x", 1]]},  # a variant the flag lacks: flagd's error to report
        {"fractional": [["a", 0], ["b", 0]]},  # no weight at all
        {"fractional": [["a", True], ["b", 1]]},
        {"if": [{"in": [{"var": "email"}, ["x"]]}, "b", {"fractional": [["a", 1], ["b", 1]]}]},
        {"if": [{"in": [{"var": "targetingKey"}, ["x", 1]]}, "b", {"fractional": [["a", 1], ["b", 1]]}]},
        {"if": [{"in": [{"var": "targetingKey"}, ["x"]]}, "b"]},
        {"fractional": [["a", 1], ["b", 1]], "if": []},
        ["a"],
    ):
        assert compile_flag(Flag(targeting), {}) is None, targeting
