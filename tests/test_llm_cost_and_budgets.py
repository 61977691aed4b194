"""LLM calls priced to the cent, unknown models unpriced, budgets that fire once and stop hard."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest

import otel_migration
from otel_migration import BudgetEvent, BudgetExceeded, record_llm_call
from otel_migration._core.config import BudgetSpec, parse_budgets
from otel_migration._core.lifecycle import rate_limited
from otel_migration._llm.budgets import Budgets
from otel_migration._llm.metrics import LLMMetrics
from otel_migration._setup import BUDGETS as budgets

from .conftest import Harness, make_harness


@pytest.fixture(autouse=True)
def _no_budgets() -> None:
    budgets.configure(())
    budgets._callbacks.clear()  # callbacks registered by earlier tests


def test_mixed_workload_costs_exactly_what_a_hand_computation_says(harness: Harness) -> None:
    # Hand computation, USD per 1M tokens (see test_pricing for the per-call arithmetic):
    #   haiku 3.60 (1.0, extraction) + sonnet 5.265 (2.0, synthesis) + opus 0.45 (2.0, synthesis)
    #   + gpt-4o 2.875 (no version) = 12.19
    with otel_migration.versioned("1.0", operation="summarize"), otel_migration.phase("extraction"):
        assert record_llm_call(
            model="claude-3-5-haiku-20241022",
            input_tokens=2_000_000,
            output_tokens=500_000,
            provider="anthropic",
        ) == pytest.approx(3.60)
    with otel_migration.versioned("2.0", operation="summarize"), otel_migration.phase("synthesis"):
        record_llm_call(
            model="claude-sonnet-4-20250514",
            input_tokens=1_000_000,
            output_tokens=200_000,
            cache_read_tokens=300_000,
            cache_write_tokens=100_000,
            provider="anthropic",
        )
        record_llm_call(
            model="claude-opus-4-1-20250805", input_tokens=10_000, output_tokens=4_000, provider="anthropic"
        )
    record_llm_call(
        model="gpt-4o-2024-08-06",
        input_tokens=1_000_000,
        output_tokens=100_000,
        cache_read_tokens=500_000,
        provider="openai",
    )
    harness.telemetry.recorder.drain()
    llm = harness.telemetry.get(LLMMetrics)
    assert round(llm.total_cost(), 2) == 12.19
    assert llm.total_cost(version="1.0") == pytest.approx(3.60)
    assert llm.total_cost(version="2.0", phase="synthesis") == pytest.approx(5.715)
    assert llm.total_cost(tier="opus") == pytest.approx(0.45)
    exported = {
        (p.attributes["migration.version"], p.attributes["migration.llm.tier"]): p.value
        for p in harness.points("migration.llm.cost")
    }
    assert exported[("2.0", "sonnet")] == pytest.approx(5.265)
    assert sum(exported.values()) == pytest.approx(12.19)

    spans = {
        s.attributes["gen_ai.request.model"]: s
        for s in harness.spans()
        if "gen_ai.request.model" in s.attributes
    }
    sonnet = spans["claude-sonnet-4-20250514"]
    assert sonnet.attributes["migration.llm.cost"] == pytest.approx(5.265)
    assert sonnet.attributes["migration.llm.tier"] == "sonnet"
    assert (
        sonnet.attributes["migration.version"] == "2.0"
        and sonnet.attributes["migration.phase"] == "synthesis"
    )
    assert sonnet.attributes["gen_ai.usage.cache_read.input_tokens"] == 300_000
    assert sonnet.name == "chat claude-sonnet-4-20250514"
    tokens = {
        (p.attributes["gen_ai.request.model"], p.attributes["gen_ai.token.type"]): p.sum
        for p in harness.points("gen_ai.client.token.usage")
    }
    assert tokens[("claude-3-5-haiku-20241022", "output")] == 500_000


def test_llm_stats_reads_calls_cost_and_quality_per_version_and_tier(harness: Harness) -> None:
    # USD per 1M tokens: sonnet 4 3 in / 15 out, haiku 3.5 0.80 in / 4 out (as in the test above).
    sonnet, haiku = "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"
    with otel_migration.versioned("2.0", operation="summarize"):
        with otel_migration.phase("synthesis"):
            record_llm_call(model=sonnet, input_tokens=1_000_000, output_tokens=100_000)  # 4.50
        record_llm_call(model=sonnet, input_tokens=10, output_tokens=0, error=TimeoutError("slow"))  # failed
        record_llm_call(model="llama-3-70b-local", input_tokens=100, output_tokens=10)  # unpriced
    record_llm_call(
        model=sonnet, input_tokens=200_000, output_tokens=20_000, version="2.0", phase="review"
    )  # 0.90
    record_llm_call(model=haiku, input_tokens=1_000_000, output_tokens=250_000, version="1.0")  # 1.80
    record_llm_call(model=haiku, input_tokens=500_000, output_tokens=0)  # 0.40, outside any versioned call
    for score in (80, 90):
        otel_migration.record_quality(score, version="2.0", tier="sonnet")
    otel_migration.record_action("approved", version="2.0", tier="sonnet")
    otel_migration.record_action("edited", edits=1, version="2.0", tier="sonnet")
    otel_migration.record_quality(50, version="3.0", tier="opus")  # quality without calls

    rows = otel_migration.llm_stats()
    assert [(r.migration, r.version, r.tier, r.calls, r.errors) for r in rows] == [
        ("default", "", "haiku", 1, 0),
        ("default", "1.0", "haiku", 1, 0),
        ("default", "2.0", "sonnet", 3, 1),
        ("default", "2.0", "unknown", 1, 0),
        ("default", "3.0", "opus", 0, 0),
    ]
    assert [r.cost_usd for r in rows] == pytest.approx([0.40, 1.80, 5.40, 0.0, 0.0])
    graded = {r.version: r.quality for r in rows if r.quality is not None}
    assert graded.keys() == {"2.0", "3.0"}
    assert graded["2.0"].mean_score == 85 and graded["2.0"].acceptance_rate == 0.5  # type: ignore[union-attr]
    assert graded["3.0"].mean_score == 50  # type: ignore[union-attr]
    # The figures the metrics export.
    exported = sum(p.value for p in harness.points("migration.llm.cost"))
    assert sum(r.cost_usd for r in rows) == pytest.approx(exported)
    assert sum(r.calls for r in rows) == sum(p.value for p in harness.points("migration.llm.calls"))


def test_unknown_model_is_unpriced_not_free_and_warned_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rate_limited.reset()  # "once" from now: an earlier test may have warned about another model
    for _ in range(3):
        assert record_llm_call(model="llama-3-70b-local", input_tokens=100, output_tokens=10) is None
    harness.telemetry.recorder.drain()
    assert caplog.text.count("no price for LLM model 'llama-3-70b-local'") == 1
    (unpriced,) = harness.points("migration.llm.unpriced")
    assert unpriced.value == 3
    assert harness.telemetry.get(LLMMetrics).total_cost() == 0
    (span, *_) = harness.spans("chat llama-3-70b-local")
    assert "migration.llm.cost" not in span.attributes and span.attributes["migration.llm.tier"] == "unknown"


def test_model_tier_map_overrides_the_table() -> None:
    h = make_harness(model_tiers={"gpt-4o-mini": "nano", "llama-3-70b": "local"})
    record_llm_call(model="gpt-4o-mini-2024-07-18", input_tokens=10, output_tokens=10)
    record_llm_call(model="llama-3-70b", input_tokens=10, output_tokens=10)
    tiers = {s.attributes["gen_ai.request.model"]: s.attributes["migration.llm.tier"] for s in h.spans()}
    assert tiers == {"gpt-4o-mini-2024-07-18": "nano", "llama-3-70b": "local"}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"input_tokens": -1, "output_tokens": 1}, "input_tokens"),
        ({"input_tokens": 10, "output_tokens": 1.5}, "output_tokens"),
        ({"input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 20}, "cache tokens"),
    ],
)
def test_bad_usage_is_a_clear_error(harness: Harness, kwargs: dict[str, float], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        record_llm_call(model="gpt-4o", **kwargs)  # type: ignore[arg-type]
    assert harness.spans() == []


def test_thresholds_fire_once_each_under_many_threads() -> None:
    now = [dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)]
    tracker = Budgets([BudgetSpec("service", daily_usd=10.0)], clock=lambda: now[0])
    events: list[BudgetEvent] = []
    lock = threading.Lock()

    def record(event: BudgetEvent) -> None:
        with lock:
            events.append(event)

    tracker.on_threshold(record)
    barrier = threading.Barrier(16)

    def spend() -> None:
        barrier.wait()
        for _ in range(100):
            tracker.add(0.01)  # 16 threads x 100 x $0.01 = $16 > $10

    threads = [threading.Thread(target=spend) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.threshold_pct for e in events) == [50, 80, 90, 100]
    assert tracker.spend("service", "daily") == pytest.approx(16.0)
    assert [e.spend_usd >= e.limit_usd * e.threshold_pct / 100 for e in events] == [True] * 4
    now[0] += dt.timedelta(days=1)  # a new day: spend and thresholds reset
    tracker.add(6.0)
    assert sorted(e.threshold_pct for e in events) == [50, 50, 80, 90, 100]
    assert tracker.utilization() == [("service", "daily", pytest.approx(0.6))]


def test_hard_stop_refuses_the_next_call_and_nothing_past_100_percent(harness: Harness) -> None:
    budgets.configure(parse_budgets({"service-hard": {"daily_usd": 1.0, "hard_stop": True}}))
    crossed: list[int] = []
    otel_migration.on_budget(lambda e: crossed.append(e.threshold_pct))
    made = 0
    with pytest.raises(BudgetExceeded) as caught:
        for _ in range(100):
            record_llm_call(model="claude-3-5-haiku", input_tokens=100_000, output_tokens=0)  # $0.08 each
            made += 1
    assert made == 13  # $0.96 after 12 calls, the 13th crosses $1.00, the 14th is refused
    assert caught.value.budget == "service-hard" and caught.value.period == "daily"
    assert caught.value.spend_usd == pytest.approx(1.04)
    assert crossed == [50, 80, 90, 100]
    spans_before = len(harness.spans())
    with pytest.raises(BudgetExceeded):
        record_llm_call(model="claude-3-5-haiku", input_tokens=1, output_tokens=1)
    assert len(harness.spans()) == spans_before  # a refused call leaves no span and costs nothing
    (utilization,) = harness.points("migration.llm.budget.utilization")
    assert utilization.value == pytest.approx(1.04)


def test_per_user_budgets_are_separate(harness: Harness) -> None:
    budgets.configure(parse_budgets({"per-user": {"daily_usd": 0.1, "scope": "user", "hard_stop": True}}))
    with otel_migration.subject("heavy"):
        record_llm_call(model="claude-3-5-haiku", input_tokens=200_000, output_tokens=0)  # $0.16
        with pytest.raises(BudgetExceeded) as caught:
            record_llm_call(model="claude-3-5-haiku", input_tokens=10, output_tokens=0)
    assert caught.value.key is not None and caught.value.key != "heavy"  # pseudonymised
    with otel_migration.subject("light"):
        assert record_llm_call(model="claude-3-5-haiku", input_tokens=10, output_tokens=0) is not None


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"b": {"daily_usd": -5}}, "daily_usd"),
        ({"b": {}}, "set daily_usd"),
        ({"b": {"daily_usd": 5, "scope": "team"}}, "scope"),
        ({"b": {"daily_usd": 5, "hard_stop": "yes"}}, "hard_stop"),
        ({"b": {"daily_usd": 5, "alert_at": [1]}}, "unknown key"),
    ],
)
def test_bad_budget_configuration(table: dict[str, object], fragment: str) -> None:
    with pytest.raises(otel_migration.ConfigError, match=fragment):
        otel_migration.load_settings({"budgets": table}, environ={})


def test_a_call_recorded_after_the_fact_names_its_version(harness: Harness) -> None:
    record_llm_call(
        model="claude-3-5-haiku",
        input_tokens=1000,
        output_tokens=100,
        version="2.0",
        migration="assistant",
        phase="synthesis",
    )
    (span,) = harness.spans("chat claude-3-5-haiku")
    assert (
        span.attributes["migration.version"],
        span.attributes["migration.name"],
        span.attributes["migration.phase"],
    ) == ("2.0", "assistant", "synthesis")
    harness.telemetry.recorder.drain()
    assert (
        harness.telemetry.get(LLMMetrics).total_cost(migration="assistant", version="2.0", phase="synthesis")
        > 0
    )
