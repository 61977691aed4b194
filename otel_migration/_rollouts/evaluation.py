"""One flag evaluation as rollouts report it, and flagd's rules compiled for the hot path.

Through the OpenFeature client a rollout decision costs 35-75 µs: a hook context per hook, four
context merges, json-logic walking the rule, cbor2 encoding the bucket key (6 µs on its own). Yet
everything a decision depends on, besides the targeting key, changes only when flagd's provider
loads a new flag state (its watcher saw the file change, or we wrote it), and every load swaps in
a new flag map. So each flag of the loaded state is compiled once, here, into exactly what flagd
does with it (:func:`compile_flag`), and a decision is a set lookup or two and a murmur3 hash.

Only the shapes this package writes are compiled: a ``fractional`` split of ``[variant, weight]``
pairs, optionally behind ``if`` branches of ``{"in": [{"var": "targetingKey"}, [...]]}``, or no
targeting at all (a killed rollout: the default variant). Anything else (a hand-written rule, a
disabled flag, a variant that is not a string) returns None from :func:`compile_flag`, and the
flag is evaluated through the OpenFeature client as before. Whether the hot path may be taken at
all (our provider, ready, no hook but our recorder) is :class:`~.flags.FlagService`'s decision.

The bucket is flagd's ``fractional``: murmur3 (32 bit, unsigned) of the canonical CBOR of
``[flag key, targeting key]``, scaled into the summed weight. The CBOR of that array is written
here (a two-element array head, then two text strings, shortest length form), byte for byte what
``cbor2.dumps(..., canonical=True)`` gives, without its cost; ``tests/test_rollout_fast.py``
checks it against cbor2 and every decision against flagd's own evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import mmh3
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason

from .flagfile import MANAGED_BY

__all__ = ["CompiledFlag", "Evaluation", "cbor_text", "compile_flag", "reason_of"]

REASON_DISABLED: Final = "disabled"
#: flagd's bound on the summed weight of a ``fractional`` (MaxInt32).
MAX_WEIGHT_SUM: Final = 2_147_483_647
_ARRAY_OF_TWO: Final = b"\x82"


def reason_of(details: FlagEvaluationDetails[Any]) -> str:
    """The ``feature_flag.result.reason`` of an evaluation, in OTel's lower-case values.

    A killed rollout is served as a static control by the provider; it is reported ``disabled``,
    as the kill switch it is.
    """
    metadata = details.flag_metadata
    if metadata and metadata.get("killed") is True and metadata.get("managedBy") == MANAGED_BY:
        return REASON_DISABLED
    if details.error_code is not None:
        return "error"
    reason = details.reason
    if isinstance(reason, Reason):
        return str(reason.value).lower()
    return str(reason or "unknown").lower()


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What an evaluation served and how it is recorded (variant and reason as the hook reports them)."""

    value: str
    variant: str
    reason: str
    error: ErrorCode | None = None

    @classmethod
    def of(cls, details: FlagEvaluationDetails[Any]) -> Evaluation:
        """From the OpenFeature client's details."""
        value = str(details.value)
        variant = details.variant if details.variant is not None else value
        return cls(value, variant, reason_of(details), details.error_code)


def cbor_text(text: str) -> bytes:
    """``text`` as a CBOR text string (major type 3, shortest length form), as cbor2 writes it.

    UnicodeEncodeError for a string UTF-8 cannot encode (a lone surrogate), where cbor2 fails too.
    """
    data = text.encode("utf-8")
    size = len(data)
    if size < 24:
        return bytes((0x60 | size,)) + data
    if size < 0x100:
        return bytes((0x78, size)) + data
    if size < 0x10000:
        return b"\x79" + size.to_bytes(2, "big") + data
    if size < 0x100000000:
        return b"\x7a" + size.to_bytes(4, "big") + data
    return b"\x7b" + size.to_bytes(8, "big") + data


class CompiledFlag:
    """One flag of one loaded flag state: what flagd serves for any targeting key, precomputed."""

    __slots__ = ("_ends", "_lists", "_prefix", "_static", "_total", "key")

    def __init__(
        self,
        key: str,
        *,
        static: Evaluation | None = None,
        lists: tuple[tuple[frozenset[str], Evaluation], ...] = (),
        ends: tuple[tuple[int, Evaluation], ...] = (),
        total: int = 0,
    ) -> None:
        self.key = key
        self._static = static
        self._lists = lists
        self._ends = ends
        self._total = total
        self._prefix = _ARRAY_OF_TWO + cbor_text(key)

    def serve(self, targeting_key: str) -> Evaluation | None:
        """What flagd serves ``targeting_key``; None when only flagd can tell (a key CBOR cannot encode)."""
        if self._static is not None:
            return self._static
        for members, outcome in self._lists:
            if targeting_key in members:
                return outcome
        try:
            encoded = cbor_text(targeting_key)
        except UnicodeEncodeError:
            return None
        bucket = (mmh3.hash(self._prefix + encoded, signed=False) * self._total) >> 32
        for end, outcome in self._ends:
            if bucket < end:
                return outcome
        return None  # unreachable: the bucket is below the summed weight


class _Unhandled(Exception):
    """A flag shape left to flagd's evaluator."""


def compile_flag(flag: Any, flag_set_metadata: Mapping[str, Any]) -> CompiledFlag | None:
    """``flag`` (flagd's parsed ``Flag``, ``$ref`` resolved) compiled; None for a shape left to flagd."""
    try:
        return _compile(flag, flag_set_metadata)
    except (_Unhandled, AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None


def _compile(flag: Any, flag_set_metadata: Mapping[str, Any]) -> CompiledFlag:
    key = flag.key
    variants = flag.variants
    if flag.state != "ENABLED" or not isinstance(key, str) or not isinstance(variants, Mapping):
        raise _Unhandled
    # flagd merges the flag set's metadata under the flag's own (FlagdCore._resolve).
    metadata = {**flag_set_metadata, **(flag.metadata or {})}

    def outcome(variant: object, reason: Reason) -> Evaluation:
        if not isinstance(variant, str) or not isinstance(variants.get(variant), str):
            raise _Unhandled  # flagd raises or type-checks here: its own path reports that
        details = FlagEvaluationDetails(
            flag_key=key, value=variants[variant], variant=variant, reason=reason, flag_metadata=metadata
        )
        return Evaluation.of(details)

    targeting = flag.targeting
    if not targeting:
        # No rule: the default variant, STATIC (a rollout's kill switch takes its rule out of play).
        return CompiledFlag(key, static=outcome(flag.default_variant, Reason.STATIC))
    if not isinstance(targeting, Mapping) or len(targeting) != 1:
        raise _Unhandled
    lists: list[tuple[frozenset[str], Evaluation]] = []
    split = targeting
    if "if" in targeting:
        branches = targeting["if"]
        if not isinstance(branches, list) or len(branches) % 2 != 1:
            raise _Unhandled
        *pairs, split = branches
        for condition, variant in zip(pairs[::2], pairs[1::2], strict=True):
            lists.append((_members(condition), outcome(variant, Reason.TARGETING_MATCH)))
    if not isinstance(split, Mapping) or list(split) != ["fractional"]:
        raise _Unhandled
    fractions = split["fractional"]
    if not isinstance(fractions, list) or not fractions:
        raise _Unhandled
    ends: list[tuple[int, Evaluation]] = []
    total = 0
    for fraction in fractions:
        if not isinstance(fraction, list) or len(fraction) != 2:
            raise _Unhandled  # e.g. a bucketing expression of its own, or a weightless variant
        variant, weight = fraction
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise _Unhandled
        total += max(0, weight)  # flagd clamps negative weights to 0
        ends.append((total, outcome(variant, Reason.TARGETING_MATCH)))
    if not 0 < total <= MAX_WEIGHT_SUM:
        raise _Unhandled
    return CompiledFlag(key, lists=tuple(lists), ends=tuple(ends), total=total)


def _members(condition: object) -> frozenset[str]:
    """The list of ``{"in": [{"var": "targetingKey"}, [...]]}``: strings only."""
    if not isinstance(condition, Mapping) or list(condition) != ["in"]:
        raise _Unhandled
    arguments = condition["in"]
    if not isinstance(arguments, list) or len(arguments) != 2 or arguments[0] != {"var": "targetingKey"}:
        raise _Unhandled
    values = arguments[1]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Unhandled
    return frozenset(values)
