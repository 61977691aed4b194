"""One shape for every observable instrument's callback: read under the owner's lock, then observe.

Cumulative counts and gauges that our own aggregation keeps are reported through observable
instruments. Each callback takes a consistent copy of the state (under the lock the aggregator
writes under) and turns ``(value, attributes)`` pairs into observations; a failing read is the
SDK's to log, never the caller's problem.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

__all__ = ["Measured", "items_under", "observer"]

K = TypeVar("K")
V = TypeVar("V")

#: What a read function returns: values with their attributes.
Measured = Iterable[tuple[float, Mapping[str, AttributeValue]]]


def observer(read: Callable[[], Measured]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An instrument callback observing whatever ``read()`` returns at collection time."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(attributes)) for value, attributes in read()]

    return callback


def items_under(lock: threading.Lock | threading.RLock, mapping: Mapping[K, V]) -> list[tuple[K, V]]:
    """A consistent copy of ``mapping``'s items, taken under the lock its writers hold."""
    with lock:
        return list(mapping.items())
