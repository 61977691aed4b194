"""Time windows of the analytics: ring buffers of fixed-width buckets, each with counts and sketches.

A window is ``count`` buckets of ``width_s`` seconds (12 x 5 minutes = the last hour, 24 x 1 hour =
the last day); a bucket is reused when its time comes round again, so memory stays fixed however
long the process runs. Recent samples (durations, costs, scores) are kept in bounded rings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._core.batch import split_by
from .sketch import HyperLogLog

__all__ = ["OperationState", "Ring", "VersionState", "Window"]


class Window:
    """A ring of fixed-width time buckets: requests, errors, users and users with errors per bucket."""

    def __init__(self, width_s: int, count: int) -> None:
        self.width, self.count = width_s, count
        self.ids = np.full(count, -1, dtype=np.int64)
        self.requests = np.zeros(count, dtype=np.int64)
        self.errors = np.zeros(count, dtype=np.int64)
        # Sketches are allocated on first use: operation-level windows never hold users.
        self.users: list[HyperLogLog | None] = [None] * count
        self.error_users: list[HyperLogLog | None] = [None] * count
        self.sessions: list[HyperLogLog | None] = [None] * count
        self.categories: list[dict[str, int]] = [{} for _ in range(count)]

    def add_group(
        self,
        buckets: npt.NDArray[np.int64],
        *,
        errors: npt.NDArray[np.bool_] | None = None,
        categories: Sequence[str | None] | None = None,
        users: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None,
        sessions: tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None = None,
    ) -> None:
        """Add calls: ``buckets[i]`` is call i's bucket (``time // width``); a bucket older than the window
        is ignored (it already rolled past).

        ``errors`` marks the calls that count as errors (with ``categories[i]`` their category);
        ``users`` and ``sessions`` are (rows, hashes) of the calls that carry one.
        """
        for bucket, rows in split_by(buckets):
            slot = self._slot(bucket)
            if slot is None:
                continue
            self.requests[slot] += int(rows.sum())
            error_rows = rows & errors if errors is not None else None
            if error_rows is not None and categories is not None:
                self.errors[slot] += int(error_rows.sum())
                counts = self.categories[slot]
                for row in np.flatnonzero(error_rows).tolist():
                    category = categories[row]
                    if category is not None:
                        counts[category] = counts.get(category, 0) + 1
            if users is not None and users[0].size:
                in_bucket = rows[users[0]]
                self._sketch(self.users, slot).add_many(users[1][in_bucket])
                if error_rows is not None:
                    with_error = in_bucket & error_rows[users[0]]
                    if with_error.any():
                        self._sketch(self.error_users, slot).add_many(users[1][with_error])
            if sessions is not None and sessions[0].size:
                self._sketch(self.sessions, slot).add_many(sessions[1][rows[sessions[0]]])

    def _slot(self, bucket: int) -> int | None:
        """The slot of ``bucket``, reset when it held an older bucket; None when the bucket is too old."""
        slot = bucket % self.count
        if self.ids[slot] != bucket:
            if self.ids[slot] > bucket:
                return None
            self.ids[slot] = bucket
            self.requests[slot] = self.errors[slot] = 0
            for sketches in (self.users, self.error_users, self.sessions):
                sketch = sketches[slot]
                if sketch is not None:
                    sketch.clear()
            self.categories[slot] = {}
        return slot

    @staticmethod
    def _sketch(sketches: list[HyperLogLog | None], slot: int) -> HyperLogLog:
        sketch = sketches[slot]
        if sketch is None:
            sketch = sketches[slot] = HyperLogLog()
        return sketch

    def live(self, now: float) -> npt.NDArray[np.bool_]:
        """Slots whose bucket lies within the window ending now."""
        current = int(now // self.width)
        return (self.ids > current - self.count) & (self.ids <= current)

    def current_slot(self, now: float) -> int | None:
        bucket = int(now // self.width)
        slot = bucket % self.count
        return slot if self.ids[slot] == bucket else None

    def totals(self, now: float) -> tuple[int, int]:
        live = self.live(now)
        return int(self.requests[live].sum()), int(self.errors[live].sum())

    def user_sketch(self, now: float, *, errors_only: bool = False, sessions: bool = False) -> HyperLogLog:
        sketches = self.sessions if sessions else self.error_users if errors_only else self.users
        return HyperLogLog.union(
            s for s, ok in zip(sketches, self.live(now), strict=True) if ok and s is not None
        )

    def category_counts(self, now: float, *, exclude_slot: int | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for slot in np.flatnonzero(self.live(now)):
            if slot == exclude_slot:
                continue
            for category, n in self.categories[slot].items():
                counts[category] = counts.get(category, 0) + n
        return counts


class Ring:
    """The most recent ``capacity`` durations."""

    def __init__(self, capacity: int) -> None:
        self.values = np.empty(capacity, dtype=np.float64)
        self.size = 0
        self.next = 0

    def add(self, value: float) -> None:
        self.values[self.next] = value
        self.next = (self.next + 1) % self.values.size
        self.size = min(self.size + 1, self.values.size)

    def add_many(self, values: npt.NDArray[np.float64]) -> None:
        """Add ``values`` in order, as :meth:`add` on each (only the last ``capacity`` can stay)."""
        capacity = self.values.size
        if values.size >= capacity:
            self.values[:] = values[-capacity:]
            self.next, self.size = 0, capacity
            return
        end = self.next + values.size
        if end <= capacity:
            self.values[self.next : end] = values
        else:
            split = capacity - self.next
            self.values[self.next :] = values[:split]
            self.values[: end - capacity] = values[split:]
        self.next = end % capacity
        self.size = min(self.size + values.size, capacity)

    def samples(self) -> npt.NDArray[np.float64]:
        return self.values[: self.size].copy()


@dataclass
class VersionState:
    short: Window
    long: Window


@dataclass
class OperationState:
    window: Window
    latency: Ring
    #: Thread CPU seconds of recent successful calls, when measured (the ``cpu`` verdict).
    cpu: Ring | None = None
