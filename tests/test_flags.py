"""One flag state for every process: the flag file, its writers, fork, the command, other providers.

The fleet itself (gunicorn's pre-fork workers) is in tests/e2e/test_fleet_rollout.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from openfeature.provider.no_op_provider import NoOpProvider

import otel_migration
from otel_migration._cli import main
from otel_migration._rollouts.flagfile import FlagFile, RolloutState
from otel_migration._rollouts.rollout import decide, flags, registry

from .conftest import Harness, make_harness


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def flag_file() -> Path:
    return Path(os.environ["OTEL_MIGRATION_FLAG_FILE"])


def eventually(check: object, timeout_s: float = 10.0) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout_s`` (a bound, not a timing assertion)."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < timeout_s, "never happened"
        time.sleep(0.01)
    return time.monotonic() - start


def test_the_flag_file_is_flagds_schema_with_the_rule_kept_through_a_kill() -> None:
    name = unique("checkout")
    otel_migration.set_rollout(name, percent=30)
    otel_migration.set_rollout(name, allow=["vip"], deny=["fragile"])
    document = json.loads(flag_file().read_text())
    flag = document["flags"][name]
    assert flag["variants"] == {"1.0": "1.0", "2.0": "2.0"} and flag["defaultVariant"] == "1.0"
    assert flag["targeting"] == {"$ref": name}
    assert document["$evaluators"][name] == {
        "if": [
            {"in": [{"var": "targetingKey"}, ["fragile"]]},
            "1.0",
            {"in": [{"var": "targetingKey"}, ["vip"]]},
            "2.0",
            {"fractional": [["1.0", 7000], ["2.0", 3000]]},
        ]
    }
    otel_migration.kill_rollout(name, reason="p95 regression")
    killed = json.loads(flag_file().read_text())
    assert "targeting" not in killed["flags"][name]  # every evaluator gets defaultVariant: the control
    assert killed["flags"][name]["metadata"] | {"percentSince": 0} == {
        "managedBy": "otel-migration",
        "killed": True,
        "killReason": "p95 regression",
        "rollbacks": 1,
        "percentSince": 0,
    }
    assert killed["$evaluators"][name] == document["$evaluators"][name]
    otel_migration.restore_rollout(name)
    assert json.loads(flag_file().read_text())["flags"][name]["targeting"] == {"$ref": name}
    assert otel_migration.rollout(name, "vip") == "2.0" and otel_migration.rollout(name, "fragile") == "1.0"


def test_flags_of_the_application_in_the_same_file_are_kept_and_served() -> None:
    path = flag_file()
    path.write_text(
        json.dumps(
            {
                "flags": {
                    "dark-mode": {
                        "state": "ENABLED",
                        "variants": {"on": True, "off": False},
                        "defaultVariant": "on",
                    }
                }
            }
        )
    )
    name = unique("billing")
    otel_migration.set_rollout(name, percent=100)
    assert json.loads(path.read_text())["flags"]["dark-mode"]["defaultVariant"] == "on"
    assert api.get_client().get_boolean_value("dark-mode", False) is True
    assert registry.get("dark-mode") is None  # not a rollout


def test_configured_rollouts_seed_the_file_and_the_file_wins(tmp_path: Path) -> None:
    name = unique("seeded")
    make_harness(rollouts={name: {"percent": 30, "deny": ["x"]}})
    state = registry.get(name)
    assert state is not None and state.percent == 30 and state.deny == {"x"}
    otel_migration.set_rollout(name, percent=60)
    otel_migration.kill_rollout(name, reason="checked by hand")
    make_harness(rollouts={name: {"percent": 30, "deny": ["x"]}})  # a restart with the same config
    state = registry.get(name)
    assert state is not None and state.percent == 60 and state.killed
    assert otel_migration.rollout(name, "anyone") == "1.0"
    # A changed configuration is applied (once, for the fleet), and the kill still holds.
    make_harness(rollouts={name: {"percent": 40}})
    state = registry.get(name)
    assert state is not None and (state.percent, state.deny, state.killed) == (40, frozenset(), True)
    otel_migration.restore_rollout(name)
    make_harness(rollouts={name: {"percent": 40}})
    assert FlagFile(flag_file()).rollouts()[name].percent == 40 and not registry.get(name).killed  # type: ignore[union-attr]


def test_a_kill_is_flag_state_another_process_obeys() -> None:
    name = unique("restart")
    otel_migration.set_rollout(name, percent=100)
    otel_migration.kill_rollout(name, reason="p95")
    code = (
        "import otel_migration\n"
        "from otel_migration._rollouts.rollout import decide\n"
        f"d = decide({name!r}, 'someone')\n"
        "print(d.variant, d.reason)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1.0", "disabled"]


def test_a_rewrite_by_another_process_reaches_this_one() -> None:
    name = unique("watched")
    otel_migration.set_rollout(name, percent=0)
    assert otel_migration.rollout(name, "alice") == "1.0"
    # The command line, in a process of its own: only flagd's file watcher can tell us.
    out = subprocess.run(
        [sys.executable, "-m", "otel_migration", "rollout", "set", name, "100"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert f"{name}  2.0 to 100 % of users, 1.0 to the rest" in out.stdout
    eventually(lambda: otel_migration.rollout(name, "alice") == "2.0")


def test_two_writers_never_lose_a_change() -> None:
    # Read-modify-write from four processes at once: with the flock every increment lands.
    name = unique("counted")
    otel_migration.set_rollout(name, percent=0)
    code = (
        "import sys\n"
        "from dataclasses import replace\n"
        "from otel_migration._rollouts.flagfile import FlagFile\n"
        "f = FlagFile(sys.argv[1])\n"
        "for _ in range(25):\n"
        "    f.edit(lambda c: {sys.argv[2]: replace(c[sys.argv[2]], percent=c[sys.argv[2]].percent + 1)})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(flag_file()), name]) for _ in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    assert FlagFile(flag_file()).rollouts()[name].percent == 100


def test_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "flags.json"
    assert main(["rollout", "--flag-file", str(path), "set", "checkout", "30"]) == 0
    assert "checkout  2.0 to 30 % of users, 1.0 to the rest" in capsys.readouterr().out
    assert main(["rollout", "--flag-file", str(path), "kill", "checkout", "--reason", "p95 up"]) == 0
    assert "checkout  1.0 to everyone: killed (p95 up)" in capsys.readouterr().out
    assert main(["rollout", "--flag-file", str(path), "status"]) == 0
    assert f"{path}: every process serves" in capsys.readouterr().out
    assert main(["rollout", "--flag-file", str(path), "restore", "checkout"]) == 0
    assert "checkout  2.0 to 30 % of users" in capsys.readouterr().out
    assert main(["rollout", "--flag-file", str(path), "kill", "nope"]) == 2
    assert "no rollout named 'nope'" in capsys.readouterr().err
    assert main(["rollout", "--flag-file", str(path), "set", "checkout", "101"]) == 2
    assert "got 101.0" in capsys.readouterr().err
    assert FlagFile(path).rollouts()["checkout"] == RolloutState(
        "checkout",
        percent=30.0,
        rollbacks=1,
        percent_since=FlagFile(path).rollouts()["checkout"].percent_since,
    )


def test_a_forked_child_keeps_following_the_file() -> None:
    # A pre-fork server sets the provider up in its master; flagd's watcher thread does not
    # survive fork. The child must still see a change made after the fork.
    name = unique("forked")
    otel_migration.set_rollout(name, percent=0)
    assert otel_migration.rollout(name, "alice") == "1.0"  # the provider runs in this process
    read, write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its watcher, wait for the change, report what it serves
        try:
            os.close(read)
            watching = any(t.name == "FlagdFileWatcherWorkerThread" for t in threading.enumerate())
            os.read(go_read, 1)
            deadline = time.monotonic() + 10
            served = otel_migration.rollout(name, "alice")
            while served != "2.0" and time.monotonic() < deadline:
                time.sleep(0.02)
                served = otel_migration.rollout(name, "alice")
            os.write(write, f"{watching} {served}".encode())
        finally:
            os._exit(0)
    os.close(write)
    FlagFile(flag_file()).edit(lambda c: {name: RolloutState(name, percent=100.0)})  # not through us
    os.write(go_write, b"x")
    report = b""
    while chunk := os.read(read, 100):
        report += chunk
    os.waitpid(pid, 0)
    assert report.decode().split() == ["True", "2.0"], report


@pytest.fixture
def application_provider() -> Iterator[InMemoryProvider]:
    """The application sets a provider of its own (the SDK's in-memory one)."""

    def by_user(flag: InMemoryFlag[str], context: EvaluationContext) -> FlagResolutionDetails[str]:
        variant = "2.0" if (context.targeting_key or "").startswith("beta-") else "1.0"
        return FlagResolutionDetails(flag.variants[variant], variant=variant, reason=Reason.TARGETING_MATCH)

    provider = InMemoryProvider(
        {
            "checkout": InMemoryFlag("1.0", {"1.0": "1.0", "2.0": "2.0"}, context_evaluator=by_user),
            "banner": InMemoryFlag("blue", {"blue": "blue", "red": "red"}),
        }
    )
    api.set_provider_and_wait(provider)
    yield provider
    api.set_provider_and_wait(NoOpProvider())  # as the application found it


def test_the_applications_provider_is_used_and_recorded(
    harness: Harness, application_provider: InMemoryProvider
) -> None:
    with otel_migration.versioned("2.0", operation="pay"):
        assert otel_migration.rollout("checkout", "beta-alice") == "2.0"
        assert otel_migration.rollout("checkout", "bob") == "1.0"
        # the application's own evaluation, straight through OpenFeature
        assert api.get_client().get_string_value("banner", "none", EvaluationContext("carol")) == "blue"
    (span,) = harness.spans("pay")
    events = [dict(e.attributes or {}) for e in span.events]
    assert [(e["feature_flag.key"], e["feature_flag.result.variant"]) for e in events] == [
        ("checkout", "2.0"),
        ("checkout", "1.0"),
        ("banner", "blue"),
    ]
    assert {e["feature_flag.provider.name"] for e in events} == {"In-Memory Provider"}
    assert all(len(e["feature_flag.context.id"]) == 16 for e in events)
    assert "alice" not in str(span.to_json()) and "carol" not in str(span.to_json())
    decisions = {
        (p.attributes["feature_flag.key"], p.attributes["feature_flag.result.variant"]): p.value
        for p in harness.points("migration.rollout.decisions")
        if p.attributes["feature_flag.key"] in ("checkout", "banner")  # counts live as long as the process
    }
    assert decisions == {("checkout", "2.0"): 1, ("checkout", "1.0"): 1, ("banner", "blue"): 1}
    assert "checkout" not in FlagFile(flag_file()).rollouts()  # the file plays no part
    with pytest.raises(RuntimeError, match="In-Memory Provider"):
        otel_migration.kill_rollout("checkout")


def test_router_with_the_applications_provider(
    harness: Harness, application_provider: InMemoryProvider
) -> None:
    pay = otel_migration.Router(
        "checkout",
        {"1.0": lambda user: "old", "2.0": lambda user: "new"},
        operation="pay",
        subject=lambda user: user,
    )
    assert [pay(u) for u in ("beta-1", "x", "beta-2")] == ["new", "old", "new"]
    assert [s.attributes["migration.version"] for s in harness.spans("pay")] == ["2.0", "1.0", "2.0"]


def test_guard_kills_the_rollout_in_the_flag_file() -> None:
    # The README's guard: three "worse" latency verdicts in a row kill the rollout in the flag file,
    # i.e. for every process, not just the one whose analytics judged.
    import numpy as np

    from otel_migration._analytics.engine import Guard, MigrationAnalytics
    from otel_migration._core.config import AnalyticsSettings

    from .simulation import record

    name = unique("guarded")
    otel_migration.set_rollout(name, percent=50)
    now = 1_800_000_000.0
    analytics = MigrationAnalytics(AnalyticsSettings(evaluate_every_s=1.0), registry.get, lambda: now)
    analytics.add_guard(Guard(lambda v: otel_migration.kill_rollout(v.migration, v.reason), "latency", 3))
    rng = np.random.default_rng(3)
    for duration in rng.lognormal(-4, 0.2, 300):
        analytics.on_call(record(name, "op", "1.0", float(duration), now - 1))
        analytics.on_call(record(name, "op", "2.0", float(duration) * 1.5, now - 1))
    for _ in range(3):
        analytics.evaluate()
    state = FlagFile(flag_file()).rollouts()[name]
    assert state.killed and state.rollbacks == 1 and "2.0 is slower" in state.kill_reason


def test_a_broken_flag_file_serves_the_control_and_never_raises(harness: Harness) -> None:
    name = unique("broken")
    path = flag_file()
    path.write_text("{ this is not json")
    # configure() with a rollout to seed: logged, not raised (the configuration still commits)
    make_harness(rollouts={name: {"percent": 100}})
    flags.client()  # the provider runs (started now, or already watching the file)
    eventually(lambda: not flags.healthy())  # the watcher found the file broken (or it never loaded)
    assert otel_migration.rollout(name, "alice") == "1.0"  # the provider is in error: the control
    with pytest.raises(ValueError, match="Expecting property name"):
        otel_migration.set_rollout(name, percent=100)  # an explicit change says what is wrong
    path.unlink()
    otel_migration.set_rollout(name, percent=100)
    assert eventually(lambda: otel_migration.rollout(name, "alice") == "2.0") >= 0


@pytest.mark.parametrize("listed", ["jürgen", "tab\there", "back\\slash", "del\x7f", "new\n"])
def test_a_list_entry_flagd_could_not_load_is_refused(listed: str) -> None:
    # flagd substitutes "$evaluators" with re.sub and the rule's json.dumps as the template: a
    # non-ASCII or control character breaks the load of the whole file (every rollout of every
    # process freezes, a kill included), a backslash silently changes the entry. Shown on flagd's
    # own evaluator, then refused before the file is touched.
    from openfeature.contrib.tools.flagd.core import FlagdCore

    rule = {"if": [{"in": [{"var": "targetingKey"}, [listed]]}, "2.0", "1.0"]}
    flag = {"state": "ENABLED", "variants": {"1.0": "1.0", "2.0": "2.0"}, "defaultVariant": "1.0"}
    core = FlagdCore()
    try:
        core.set_flags({"flags": {"f": {**flag, "targeting": {"$ref": "f"}}}, "$evaluators": {"f": rule}})
        served = core.resolve_string_value("f", "1.0", EvaluationContext(targeting_key=listed)).value
    except Exception:
        served = "not loaded"
    assert served != "2.0"

    name = unique("listed")
    otel_migration.set_rollout(name, percent=0, allow=["ok-user", 'quo"te'])
    before = flag_file().read_text()
    with pytest.raises(ValueError, match="flagd's provider would fail to load") as caught:
        otel_migration.set_rollout(name, allow=["ok-user", listed])
    assert repr(listed) in str(caught.value)
    with pytest.raises(ValueError, match="version"):
        registry.update(name, candidate=f"2.0-{listed}")
    assert flag_file().read_text() == before
    otel_migration.kill_rollout(name, reason="still served")  # the file still loads: kills reach everyone
    assert otel_migration.rollout(name, 'quo"te') == "1.0"
    assert decide(name, "ok-user").reason == "disabled"
