"""The token price table: shipped with the package, overridable, never fetched from the network.

Fetching prices at start-up (as some LLM observability SDKs do) blocks air-gapped hosts and makes
cost depend on a third party's uptime; pricing an unknown model at 0 makes it look free. Here the
table is a TOML file in the package (``prices.toml``, each entry with an "as of" date), a user file
may replace or add entries, and a model that matches nothing gets no price at all: the caller
counts it as unpriced.

Model names as APIs report them carry snapshot dates and platform decorations
(``claude-3-5-haiku-20241022``, ``gpt-4o-2024-08-06``, ``claude-3-5-haiku@20241022`` on Vertex,
``us.anthropic.claude-3-5-haiku-20241022-v1:0`` on Bedrock); lookup strips those and then matches
exactly, never by prefix (``gpt-4o`` must not price ``gpt-4o-mini``).
"""

from __future__ import annotations

import math
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from .._core.config import normalize_model
from .._core.errors import ConfigError

__all__ = ["ModelPrice", "PriceTable"]

_PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write")
_LOOKUP_CACHE_LIMIT: Final = 4096


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1 million tokens for one model."""

    model: str
    provider: str
    tier: str
    input: float
    output: float
    cache_read: float
    cache_write: float
    as_of: str
    aliases: tuple[str, ...] = ()

    def cost(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Cost in USD. ``input_tokens`` counts every input token, cached ones included, as the
        GenAI semantic conventions define ``gen_ai.usage.input_tokens``; cache reads and writes are
        billed at their own prices and the rest at the input price."""
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        micro_usd = (
            uncached * self.input
            + output_tokens * self.output
            + cache_read_tokens * self.cache_read
            + cache_write_tokens * self.cache_write
        )
        return micro_usd / 1_000_000


def _parse_entry(model: str, entry: Any, source: str) -> ModelPrice:
    field = f"models[{model!r}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(field, entry, "expected a table of prices", source=source)
    unknown = set(entry) - {*_PRICE_FIELDS, "provider", "tier", "as_of", "aliases"}
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"{field}.{name}", entry[name], "unknown key", source=source)
    prices = {}
    for name in _PRICE_FIELDS:
        value = entry.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigError(
                f"{field}.{name}", value, "required, USD per 1M tokens, finite and >= 0", source=source
            )
        prices[name] = float(value)
    texts = {}
    for name in ("provider", "tier", "as_of"):
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{field}.{name}", value, "required, a non-empty string", source=source)
        texts[name] = value
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ConfigError(f"{field}.aliases", aliases, "expected a list of model names", source=source)
    return ModelPrice(
        model=model,
        provider=texts["provider"],
        tier=texts["tier"],
        input=prices["input"],
        output=prices["output"],
        cache_read=prices["cache_read"],
        cache_write=prices["cache_write"],
        as_of=texts["as_of"],
        aliases=tuple(aliases),
    )


def _read_table(text: str, source: str) -> dict[str, ModelPrice]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("pricing_file", source, f"not valid TOML: {exc}", source=source) from None
    models = document.get("models")
    if not isinstance(models, Mapping) or set(document) - {"models"}:
        raise ConfigError("pricing_file", source, 'expected only [models."<name>"] tables', source=source)
    return {str(model): _parse_entry(str(model), entry, source) for model, entry in models.items()}


class PriceTable:
    """Model name -> :class:`ModelPrice`, with lookups tolerant of dates and platform prefixes."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        self._index: dict[str, ModelPrice] = {}
        for price in self._prices.values():
            for name in (price.model, *price.aliases):
                self._index[normalize_model(name)] = price
        self._cache: dict[str, ModelPrice | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, override_file: str | Path | None = None) -> PriceTable:
        """The shipped table, with entries of ``override_file`` replacing or adding models."""
        shipped = resources.files(__package__ or "otel_migration").joinpath("prices.toml").read_text()
        prices = _read_table(shipped, "otel_migration/_llm/prices.toml")
        if override_file is not None:
            path = Path(override_file)
            if not path.is_file():
                raise ConfigError("pricing_file", str(path), "no such file")
            prices.update(_read_table(path.read_text(), str(path)))
        return cls(prices)

    def lookup(self, model: str | None) -> ModelPrice | None:
        """The price of a reported model name, or None when the table has no such model."""
        if not model:
            return None
        cached = self._cache.get(model, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        price = self._index.get(normalize_model(model))
        with self._lock:
            if len(self._cache) < _LOOKUP_CACHE_LIMIT:
                self._cache[model] = price
        return price

    def __iter__(self) -> Iterator[ModelPrice]:
        return iter(sorted(self._prices.values(), key=lambda p: (p.provider, p.model)))

    def __len__(self) -> int:
        return len(self._prices)
