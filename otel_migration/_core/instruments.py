"""One shape for every observable instrument's callback: read under the owner's lock, then observe.

Cumulative counts and gauges that our own aggregation keeps are reported through observable
instruments. Each callback takes a consistent copy of the state (under the lock the aggregator
writes under) and turns ``(value, attributes)`` pairs into observations; a failing read is the
SDK's to log, never the caller's problem. The two shapes every feature's instruments take, an
observable instrument over a read function and a histogram with bucket advice, are created here
(:func:`observables`, :func:`histogram`), so a feature's instruments read as one table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.util.types import AttributeValue

__all__ = ["Measured", "Observable", "histogram", "items_under", "observables", "observer"]

K = TypeVar("K")
V = TypeVar("V")

#: What a read function returns: values with their attributes.
Measured = Iterable[tuple[float, Mapping[str, AttributeValue]]]
#: One observable instrument: its name, the read function behind its callback, its unit and description.
Observable = tuple[str, Callable[[], Measured], str, str]


def observer(read: Callable[[], Measured]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An instrument callback observing whatever ``read()`` returns at collection time."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(attributes)) for value, attributes in read()]

    return callback


def items_under(lock: threading.Lock | threading.RLock, mapping: Mapping[K, V]) -> list[tuple[K, V]]:
    """A consistent copy of ``mapping``'s items, taken under the lock its writers hold."""
    with lock:
        return list(mapping.items())


def observables(create: Callable[..., object], *instruments: Observable) -> None:
    """Create each instrument with ``create`` (``meter.create_observable_counter``, ``_gauge`` or
    ``_up_down_counter``), its callback observing what its read function returns (:func:`observer`)."""
    for name, read, unit, description in instruments:
        create(name, [observer(read)], unit=unit, description=description)


def histogram(meter: Meter, name: str, unit: str, description: str, buckets: Sequence[float]) -> Histogram:
    """A histogram with the bucket boundaries it advises the SDK to use (every histogram of ours has some)."""
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
    )
