"""The collector's LLM-cost rules are generated from the price table: one source of truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_migration._cli import main
from otel_migration._llm.collector_rules import _model_pattern, cost_statements
from otel_migration._llm.pricing import ModelPrice, PriceTable

COMMITTED = Path(__file__).resolve().parents[1] / "collector_config" / "llm-cost.yaml"


def test_committed_file_equals_the_generated_one(tmp_path: Path) -> None:
    generated = tmp_path / "llm-cost.yaml"
    assert main(["collector-config", "--output", str(generated)]) == 0
    assert COMMITTED.read_text() == generated.read_text(), (
        "collector_config/llm-cost.yaml is stale: run `make collector-config`"
    )


def test_every_priced_model_has_a_tier_and_a_cost_statement() -> None:
    table = PriceTable.load()
    statements = cost_statements(table)
    for price in table:
        pattern = f'IsMatch(span.cache["model"], "{_model_pattern(price)}")'
        matching = [s.split(",")[0] for s in statements if pattern in s]
        tier, cost = 'set(span.attributes["migration.llm.tier"]', 'set(span.attributes["migration.llm.cost"]'
        assert matching == [tier, cost], price.model
    assert all("\\" not in s for s in statements)  # no escapes for OTTL string literals to get wrong
    assert all("e-" not in s.split(" where ")[0] for s in statements)  # plain decimals, no exponents


def test_token_counts_are_doubles_and_prices_per_token() -> None:
    haiku = ModelPrice("claude-3-5-haiku", "anthropic", "haiku", 0.80, 4.00, 0.08, 1.00, "2024-11-04")
    cost = [
        s
        for s in cost_statements(PriceTable({"claude-3-5-haiku": haiku}))
        if s.startswith('set(span.attributes["migration.llm.cost"]')
    ]
    assert len(cost) == 1
    assert 'span.cache["input"] * 0.0000008 + span.cache["output"] * 0.000004' in cost[0]
    assert 'Double(span.attributes["gen_ai.usage.input_tokens"])' in "\n".join(
        cost_statements(PriceTable({"claude-3-5-haiku": haiku}))
    )


def test_bad_pricing_file_is_a_clear_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collector-config", "--pricing-file", str(tmp_path / "missing.toml")]) == 2
    assert "pricing_file" in capsys.readouterr().err
