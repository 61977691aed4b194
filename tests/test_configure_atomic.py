"""``configure()`` is all or nothing: a failure at any step leaves the previous configuration as it was.

Each step that can fail gets its own case: settings, targets' modules, the exporters, the price
file, and installing the targets. After the failure the previous telemetry is still in effect, its
rollouts still split as before, its budgets still hold (and no new one is live), its pseudonyms
are unchanged and its targets are still wrapped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

import otel_migration
from otel_migration._core import runtime
from otel_migration._core.subjects import pseudonymize
from otel_migration._setup import BUDGETS
from tests.sample_app import legacy

from .conftest import make_harness

USERS = [f"user-{i}" for i in range(400)]


@pytest.fixture
def configured(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[otel_migration.Telemetry]:
    monkeypatch.chdir(tmp_path)
    harness = make_harness(
        budgets={"budget-a": {"daily_usd": 100.0}},
        rollouts={"billing-atomic": {"percent": 10}},
        subject_key="key-a-0123456789abcdef",
        targets={"tests.sample_app.legacy:charge": {"version": "1.0", "operation": "charge"}},
    )
    yield harness.telemetry
    otel_migration.shutdown()
    harness.tracer_provider.shutdown()
    harness.meter_provider.shutdown()


def _state() -> dict[str, Any]:
    telemetry = runtime.configured()
    return {
        "telemetry": telemetry,
        "settings": telemetry.settings if telemetry else None,
        "candidates": sum(otel_migration.rollout("billing-atomic", user) == "2.0" for user in USERS),
        "budgets": sorted(BUDGETS._specs),
        "pseudonym": pseudonymize("alice"),
        "wrapped": hasattr(sys.modules["tests.sample_app.legacy"].charge, "__wrapped__"),
    }


FAILING_STEPS = {
    "settings": ({"max_queue_size": -1}, {}),
    "target module": ({"targets": {"no_such_module_xyz:f": {"version": "2.0"}}}, {}),
    "exporter": (
        {"exporter": "otlp"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_COMPRESSION": "bogus"},
    ),
    "price file": ({"pricing_file": "/nonexistent/prices.toml"}, {}),
    "target install": ({"targets": {"json:no_such_function": {"version": "2.0"}}}, {}),
}


@pytest.mark.parametrize("step", sorted(FAILING_STEPS))
def test_a_failed_configure_leaves_the_previous_one_exactly_as_it_was(
    configured: otel_migration.Telemetry, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state()
    assert before["telemetry"] is configured and before["wrapped"]
    assert 10 <= before["candidates"] <= 70  # ~10 % of 400 users
    overrides, env = FAILING_STEPS[step]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(otel_migration.ConfigError):
        otel_migration.configure(
            # what the failed configuration would have changed, had it got that far
            budgets={"budget-b": {"daily_usd": 0.01, "hard_stop": True}},
            rollouts={"billing-atomic": {"percent": 90}},
            subject_key="key-b-0123456789abcdef",
            **({} if step == "exporter" else {"tracer_provider": configured.providers.tracer_provider})
            | ({} if step == "exporter" else {"meter_provider": configured.providers.meter_provider}),
            **overrides,
        )
    assert _state() == before
    assert legacy.charge(3) == "legacy:3"  # the previous targets still run, wrapped


def test_the_issue_reproduction(configured: otel_migration.Telemetry) -> None:
    """Budget b (hard stop), 90 % and a missing function: the settings still name a, and a is what is live."""
    with pytest.raises(otel_migration.ConfigError, match="no_such_function"):
        otel_migration.configure(
            tracer_provider=configured.providers.tracer_provider,
            meter_provider=configured.providers.meter_provider,
            budgets={"b": {"daily_usd": 0.000001, "hard_stop": True}},
            rollouts={"billing-atomic": {"percent": 90}},
            targets={"json:no_such_function": {"version": "2.0"}},
        )
    active = runtime.configured()
    assert active is configured
    assert [spec.name for spec in active.settings.budgets] == ["budget-a"]
    assert sorted(BUDGETS._specs) == ["budget-a"]
    share = sum(otel_migration.rollout("billing-atomic", user) == "2.0" for user in USERS) / len(USERS)
    assert share < 0.2
    # budget b would refuse this call at once; a lets it through
    assert (
        otel_migration.record_llm_call(model="claude-3-5-haiku", input_tokens=10, output_tokens=1) is not None
    )


def test_a_successful_configure_takes_effect_whole(configured: otel_migration.Telemetry) -> None:
    before = _state()
    telemetry = otel_migration.configure(
        tracer_provider=configured.providers.tracer_provider,
        meter_provider=configured.providers.meter_provider,
        budgets={"budget-c": {"daily_usd": 50.0}},
        rollouts={"billing-atomic": {"percent": 90}},
        subject_key="key-c-0123456789abcdef",
    )
    after = _state()
    assert after["telemetry"] is telemetry is not configured
    assert after["candidates"] > 300
    assert sorted(BUDGETS._specs) == ["budget-c"]
    assert after["pseudonym"] != before["pseudonym"]
    assert not after["wrapped"]  # the new configuration names no targets
