"""Calls in flight, counted per key on the call path and read by an observable up-down counter.

Why not the SDK's synchronous ``UpDownCounter.add(+1)`` / ``add(-1)``? With opentelemetry-sdk 1.45
``add(+1)`` then ``add(-1)`` with three attributes cost 10.8 µs together (attribute cleaning,
hashing, a lock); here a call appends to and pops from a list, and the collection reads the
counts once per export (``benchmarks/call_overhead.py``). The exported instrument is the same
kind of point, a non-monotonic sum.

Limits: after ``os.fork`` the child starts from zero (the parent's other threads do not exist
there); a count never goes below zero, so a call that started before the fork and ends in the child
cannot make it negative.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["InFlightCounts", "exit_slot"]

Key = tuple[str, ...]


class InFlightCounts:
    """How many calls are running now, per key (e.g. migration, operation, version).

    Each key has a list holding one marker per call in flight: ``list.append`` and ``list.pop``
    are atomic, so entering and leaving take no lock (only a new key does), and the count is the
    list's length. A caller that enters the same key on every call keeps the list from
    :meth:`slot` and appends and pops itself, skipping even the dictionary lookup.
    """

    __slots__ = ("__weakref__", "_lock", "_slots")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Key, list[None]] = {}
        weak = weakref.ref(self)

        def reset_in_child() -> None:
            me = weak()
            if me is not None:
                me._reset()

        os.register_at_fork(after_in_child=reset_in_child)

    def slot(self, key: Key) -> list[None]:
        """The list whose length is ``key``'s count: append on entry, pop on exit (if not empty)."""
        found = self._slots.get(key)
        if found is None:
            with self._lock:
                found = self._slots.setdefault(key, [])
        return found

    def enter(self, key: Key) -> None:
        self.slot(key).append(None)

    def exit(self, key: Key) -> None:
        exit_slot(self.slot(key))

    def items(self) -> list[tuple[Key, int]]:
        """The counts now; keys stay once seen, so a finished series reads 0."""
        with self._lock:
            slots = list(self._slots.items())
        return [(key, len(markers)) for key, markers in slots]

    def total(self) -> int:
        with self._lock:
            slots = list(self._slots.values())
        return sum(len(markers) for markers in slots)

    def _reset(self) -> None:
        # Emptied in place: callers keep their slots (the lists), and the parent's calls are not ours.
        self._lock = threading.Lock()
        for markers in self._slots.values():
            markers.clear()


def exit_slot(markers: list[None]) -> None:
    """Leave one call of ``markers``' key; never below zero (a call that began before a fork)."""
    try:  # noqa: SIM105 - contextlib.suppress costs a context manager on every call
        markers.pop()
    except IndexError:  # emptied by a fork, or by a concurrent exit in between: stays at zero
        pass
