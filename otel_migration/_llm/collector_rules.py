"""OTTL statements that price LLM spans inside the OpenTelemetry Collector, generated from our table.

Services in other languages do not run this SDK, yet their LLM spans carry the same
``gen_ai.usage.*`` tokens and model names. A ``transform`` processor can price them with the same
rules, so the collector config is *generated* from :mod:`otel_migration._llm.pricing`'s table rather
than written by hand: one source of truth, and a test fails when the committed file drifts.

OTTL does not mix integer and float arithmetic, so token counts are wrapped in ``Double()``; the
``span.cache`` map holds the normalised counts (absent cache counts become 0.0) for the per-model
statements. A span that already has a cost (priced by this SDK in process) is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .._core import semconv as sc
from .._core.config import normalize_model
from .pricing import ModelPrice, PriceTable

__all__ = ["PROCESSOR_NAME", "cost_statements", "render_cost_config"]

PROCESSOR_NAME = "transform/llm_cost"

_MODEL = 'span.cache["model"]'


def _attr(name: str) -> str:
    return f'span.attributes["{name}"]'


def _literal(name: str) -> str:
    """A model name as an RE2 literal without backslashes (OTTL strings would have to escape them)."""
    if not all(ch.isalnum() or ch in "-_.:" for ch in name):
        raise ValueError(f"model name {name!r} has characters the collector rules cannot match")
    return name.replace(".", "[.]")


def _model_pattern(price: ModelPrice) -> str:
    """An RE2 pattern matching what :func:`normalize_model` maps onto this entry."""
    names = sorted({normalize_model(n) for n in (price.model, *price.aliases)})
    alternatives = "|".join(_literal(n) for n in names)
    # Bedrock "us.anthropic.NAME-v1:0", gateways "provider/NAME", snapshot dates "-20241022",
    # "@20241022" (Vertex) and "-2024-08-06".
    return (
        "^(?:[a-z]{2}[.])?(?:anthropic[.])?(?:.*/)?(?:" + alternatives + ")"
        r"(?:[-@][0-9]{8}|-[0-9]{4}-[0-9]{2}-[0-9]{2})?(?:-v[0-9]+(?::[0-9]+)?)?$"
    )


def _per_token(price_per_million: float) -> str:
    """USD per token as an OTTL float literal in plain notation (0.0000008, never 8e-07 or 0)."""
    text = format(Decimal(repr(price_per_million)) / Decimal(1_000_000), "f")
    return text if "." in text else text + ".0"


def cost_statements(table: PriceTable) -> list[str]:
    """The transform processor's span statements, in order."""
    usage_in, usage_out = _attr(sc.GEN_AI_USAGE_INPUT_TOKENS), _attr(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
    cache_read, cache_write = (
        _attr(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        _attr(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
    )
    response_model, request_model = _attr(sc.GEN_AI_RESPONSE_MODEL), _attr(sc.GEN_AI_REQUEST_MODEL)
    cost = _attr(sc.LLM_COST)
    statements = [
        f"set({_MODEL}, ToLowerCase({response_model})) where {response_model} != nil",
        f"set({_MODEL}, ToLowerCase({request_model})) where {_MODEL} == nil and {request_model} != nil",
        'set(span.cache["cache_read"], 0.0)',
        f'set(span.cache["cache_read"], Double({cache_read})) where {cache_read} != nil',
        'set(span.cache["cache_write"], 0.0)',
        f'set(span.cache["cache_write"], Double({cache_write})) where {cache_write} != nil',
        f'set(span.cache["input"], Double({usage_in}) - span.cache["cache_read"] - span.cache["cache_write"])'
        f" where {usage_in} != nil",
        f'set(span.cache["output"], Double({usage_out})) where {usage_out} != nil',
    ]
    priced = f'{cost} == nil and span.cache["input"] != nil and span.cache["output"] != nil'
    for price in table:
        match = f'{priced} and IsMatch({_MODEL}, "{_model_pattern(price)}")'
        formula = " + ".join(
            f'span.cache["{key}"] * {_per_token(value)}'
            for key, value in (
                ("input", price.input),
                ("output", price.output),
                ("cache_read", price.cache_read),
                ("cache_write", price.cache_write),
            )
        )
        statements.append(f'set({_attr(sc.LLM_TIER)}, "{price.tier}") where {match}')
        statements.append(f"set({cost}, {formula}) where {match}")
    return statements


def _yaml_single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def render_cost_config(table: PriceTable, *, header: Iterable[str] = ()) -> str:
    """A collector config fragment defining the ``transform/llm_cost`` processor.

    Pass it as a second ``--config`` after the main file: the collector merges the two.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    lines += [
        "processors:",
        f"  {PROCESSOR_NAME}:",
        "    error_mode: ignore",
        "    trace_statements:",
        "      - statements:",
    ]
    lines += [f"          - {_yaml_single_quoted(statement)}" for statement in cost_statements(table)]
    return "\n".join(lines) + "\n"
