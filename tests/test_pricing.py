"""The price table: shipped entries, lookups of real reported names, overrides, costs to the cent."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_migration import ConfigError
from otel_migration._core.config import normalize_model
from otel_migration._llm.pricing import PriceTable


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


@pytest.mark.parametrize(
    ("reported", "model"),
    [
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),  # Vertex AI
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),  # Bedrock
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # never priced as gpt-4o
        ("GPT-4.1-MINI", "gpt-4.1-mini"),
        ("openai/gpt-5", "gpt-5"),
    ],
)
def test_reported_names_find_their_entry(table: PriceTable, reported: str, model: str) -> None:
    price = table.lookup(reported)
    assert price is not None and price.model == model


@pytest.mark.parametrize("reported", ["llama-3-70b", "gpt-4o-mini-transcribe", "", None, "claude"])
def test_unknown_models_get_no_price(table: PriceTable, reported: str | None) -> None:
    assert table.lookup(reported) is None


def test_seed_tiers_prices(table: PriceTable) -> None:
    # The requirement documents' tiers: haiku 0.80/4.00, sonnet 3/15, opus 15/75 per 1M tokens.
    for model, tier, prices in [
        ("claude-3-5-haiku", "haiku", (0.80, 4.00)),
        ("claude-sonnet-4", "sonnet", (3.0, 15.0)),
        ("claude-opus-4-1", "opus", (15.0, 75.0)),
    ]:
        price = table.lookup(model)
        assert price is not None
        assert (price.tier, price.input, price.output) == (tier, *prices)
    assert all(price.as_of for price in table)


def test_cost_of_a_mixed_workload_to_the_cent(table: PriceTable) -> None:
    # By hand, USD per 1M tokens:
    #   haiku   2,000,000 in  x 0.80 + 500,000 out x 4.00           = 1.60 + 2.00  = 3.60
    #   sonnet  1,000,000 in (300,000 of them cache reads, 100,000 cache writes)
    #           -> 600,000 x 3.00 + 300,000 x 0.30 + 100,000 x 3.75 = 1.80 + 0.09 + 0.375 = 2.265
    #           + 200,000 out x 15.00                               = 3.00  -> 5.265
    #   opus    10,000 in x 15.00 + 4,000 out x 75.00               = 0.15 + 0.30  = 0.45
    #   gpt-4o  1,000,000 in (500,000 cached) -> 500,000 x 2.50 + 500,000 x 1.25 = 1.875
    #           + 100,000 out x 10.00                               = 1.00  -> 2.875
    #   total                                                       = 12.19
    calls = [
        ("claude-3-5-haiku-20241022", 2_000_000, 500_000, 0, 0),
        ("claude-sonnet-4-20250514", 1_000_000, 200_000, 300_000, 100_000),
        ("claude-opus-4-1-20250805", 10_000, 4_000, 0, 0),
        ("gpt-4o-2024-08-06", 1_000_000, 100_000, 500_000, 0),
    ]
    costs = []
    for model, tokens_in, tokens_out, cache_read, cache_write in calls:
        price = table.lookup(model)
        assert price is not None
        costs.append(
            price.cost(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            )
        )
    assert [round(c, 4) for c in costs] == [3.60, 5.265, 0.45, 2.875]
    assert round(sum(costs), 2) == 12.19


def test_user_file_overrides_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."gpt-4o"]\nprovider = "openai"\ntier = "large"\ninput = 2.0\noutput = 8.0\n'
        'cache_read = 1.0\ncache_write = 0.0\nas_of = "2026-11-01"\n\n'
        '[models."llama-3-70b"]\nprovider = "self-hosted"\ntier = "large"\ninput = 0.5\noutput = 0.5\n'
        'cache_read = 0.0\ncache_write = 0.0\nas_of = "2026-11-01"\n'
    )
    table = PriceTable.load(path)
    assert table.lookup("gpt-4o-2024-08-06").input == 2.0  # type: ignore[union-attr]
    assert table.lookup("llama-3-70b").provider == "self-hosted"  # type: ignore[union-attr]
    assert table.lookup("claude-3-haiku").input == 0.25  # type: ignore[union-attr]  # shipped entries stay


_ENTRY = '[models."m"]\nprovider = "p"\ntier = "t"\noutput = 1\ncache_read = 0\ncache_write = 0\n'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (_ENTRY + 'input = -1\nas_of = "2026-01-01"\n', "models['m'].input"),
        (_ENTRY + "input = 1\n", "models['m'].as_of"),
        (_ENTRY + 'input = 1\nas_of = "2026-01-01"\ncurrency = "EUR"\n', "models['m'].currency"),
    ],
)
def test_bad_price_file_is_one_clear_error(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        PriceTable.load(path)
    assert caught.value.field == field


def test_normalize_model() -> None:
    assert normalize_model(" Claude-3-5-Haiku-20241022 ") == "claude-3-5-haiku"
    assert normalize_model("anthropic.claude-3-haiku-20240307-v1:0") == "claude-3-haiku"
