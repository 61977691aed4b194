"""Limits on what callers hand us: types checked at the call, names bounded and cleaned, values capped.

Names (migration, operation, version, phase, model, provider) become span names, attribute values
and metric label values. Three things keep a bad one from ever reaching an export:

- **Types** are checked where the public function is called: a ``TypeError`` naming the argument,
  at the caller's line, rather than a failure at every later collection.
- **Length and encoding**: a name is cut to :data:`MAX_NAME_LENGTH` characters and a lone UTF-16
  surrogate (which no encoder can write as UTF-8) becomes U+FFFD, so a 1 MB string from user input
  or one broken character cannot make an export request exceed a collector's limit or fail to encode.
- **Cardinality**: like the SDK's cardinality limit, each kind of name admits a bounded number of
  distinct values per process (:data:`CAPS`); past the cap a new value is reported as
  :data:`OVERFLOW` (``"_other"``) and one warning says so. Calls under it are still counted, so
  counters stay exact in total, and every aggregate keyed by these names stays bounded (memory
  and collection time), whatever the input.

Limits: the caps hold per process and are never reset (a value admitted once stays admitted), so a
long-lived process that cycles through many short-lived names ends up reporting new ones as
``"_other"``. A forked child inherits its parent's admitted values.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import Final

__all__ = [
    "CAPS",
    "MAX_NAME_LENGTH",
    "MAX_TOKENS",
    "OVERFLOW",
    "admit",
    "check_finite",
    "check_name",
    "clean",
    "reset",
]

_logger = logging.getLogger("otel_migration")

#: Longest name we export, in characters (span names, attribute and label values).
MAX_NAME_LENGTH: Final = 256
#: The value reported in place of a name past its kind's cap.
OVERFLOW: Final = "_other"
#: Most tokens one LLM call may report: a thousand times the largest context window there is.
#: ``record_llm_call`` refuses more; usage read from an SDK response is clamped to it.
MAX_TOKENS: Final = 1_000_000_000

MAX_MIGRATIONS: Final = 50
MAX_OPERATIONS: Final = 500
MAX_VERSIONS: Final = 50
MAX_PHASES: Final = 100
MAX_MODELS: Final = 200
MAX_PROVIDERS: Final = 50
MAX_LLM_OPERATIONS: Final = 50
#: Distinct values admitted per kind of name and process.
CAPS: Final = {
    "migration": MAX_MIGRATIONS,
    "operation": MAX_OPERATIONS,
    "version": MAX_VERSIONS,
    "phase": MAX_PHASES,
    "model": MAX_MODELS,
    "provider": MAX_PROVIDERS,
    "llm_operation": MAX_LLM_OPERATIONS,
}

_SURROGATES: Final = re.compile("[\ud800-\udfff]")


def clean(value: str) -> str:
    """``value`` cut to :data:`MAX_NAME_LENGTH` characters, lone surrogates replaced by U+FFFD."""
    if len(value) > MAX_NAME_LENGTH:
        value = value[:MAX_NAME_LENGTH]
    if not value.isascii():
        value = _SURROGATES.sub("\ufffd", value)
    return value


def check_name(value: object, argument: str, function: str) -> str:
    """A non-empty string, cleaned; ``TypeError``/``ValueError`` naming ``argument`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(
            f"{function}(): {argument} must be a string, got {type(value).__name__} {value!r:.80}"
        )
    if not value.strip():
        raise ValueError(f"{function}(): {argument} must be a non-empty string, got {value!r}")
    return clean(value)


def check_finite(value: object, argument: str, function: str, *, minimum: float = 0.0) -> float:
    """A finite real number >= ``minimum``; ``TypeError``/``ValueError`` naming ``argument`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{function}(): {argument} must be a number, got {type(value).__name__} {value!r:.80}"
        )
    number = float(value)
    if not math.isfinite(number) or number < minimum:
        raise ValueError(f"{function}(): {argument} must be a finite number >= {minimum:g}, got {value!r}")
    return number


class _Admitted:
    """The distinct values of one kind of name admitted so far; a set read without a lock."""

    __slots__ = ("cap", "kind", "values", "warned")

    def __init__(self, kind: str, cap: int) -> None:
        self.kind = kind
        self.cap = cap
        self.values: set[str] = set()
        self.warned = False


_lock: Final = threading.Lock()
_admitted: dict[str, _Admitted] = {}


def _reset() -> None:
    _admitted.clear()
    _admitted.update({kind: _Admitted(kind, cap) for kind, cap in CAPS.items()})


_reset()


def admit(kind: str, value: str) -> str:
    """``value`` if it is admitted (or fits under the cap of ``kind``), else :data:`OVERFLOW`.

    ``value`` must be cleaned already. The common case, a value seen before, is one set lookup.
    """
    admitted = _admitted[kind]
    if value in admitted.values:
        return value
    with _lock:
        if value in admitted.values:
            return value
        if len(admitted.values) < admitted.cap:
            admitted.values.add(value)
            return value
        first = not admitted.warned
        admitted.warned = True
    if first:
        _logger.warning(
            "otel-migration: more than %d distinct %s names in this process; new ones are reported as %r "
            "(calls under them are still counted). Names should come from code, not from user input.",
            admitted.cap,
            kind,
            OVERFLOW,
        )
    return OVERFLOW


def reset() -> None:
    """Forget every admitted value (for tests: the caps are meant to last as long as the process)."""
    with _lock:
        _reset()
