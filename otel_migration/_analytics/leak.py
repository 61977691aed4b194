"""Memory-leak detection and time-to-limit prediction from the process's memory over time.

Method: the samples of the last hour (RSS every ``evaluate_every_s``) are cut into 12 equal spans
and each span's *minimum* is kept: the floor memory returns to after a garbage collection or an
allocator release. A Theil-Sen slope with Sen's 95 % interval (:func:`mann_kendall`) is fitted to
those floors. A leak is a floor that rises: the interval's lower bound above zero *and* the growth
it implies over the window at least ``min_growth`` (1 MiB, or 1 % of the floor if larger), so that
a few pages of fragmentation are not a leak.

Why the floors: a healthy process under a collector draws a sawtooth, rising between collections
and dropping at each. A regression over raw samples sees a steep rise in every partial tooth and a
trend whenever the window starts or ends mid-tooth; the floors of a sawtooth stay flat while a
leak raises them. Limit: a tooth longer than a span (5 minutes of the hour) is not flattened; such
a process looks like one with a slow leak until its collection comes, and then recovers.

Time to limit: (limit - latest sample) / slope, from the slope's estimate (``time_to_limit_s``) and
from its upper bound (``earliest_s``, the pessimistic end); the limit is the configured one, else
the cgroup's ``memory.max``, else the machine's memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from .statistics import mann_kendall

__all__ = ["LeakReport", "detect_leak", "memory_limit"]

SPANS: Final = 12
MIN_SAMPLES: Final = 24
MIN_GROWTH_BYTES: Final = 1 << 20
MIN_GROWTH_SHARE: Final = 0.01


@dataclass(frozen=True, slots=True)
class LeakReport:
    """The floor's growth (bytes/s, with its 95 % interval), the verdict, and the time to the limit."""

    leaking: bool
    slope: float
    low: float
    high: float
    p_value: float
    time_to_limit_s: float | None
    earliest_s: float | None


def detect_leak(
    times: npt.ArrayLike, rss: npt.ArrayLike, *, limit_bytes: float | None = None, spans: int = SPANS
) -> LeakReport | None:
    """Judge the memory samples ``rss`` (bytes) taken at ``times`` (seconds); None: too few samples."""
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(rss, dtype=np.float64)
    if t.size < max(MIN_SAMPLES, 2 * spans) or t.size != x.size:
        return None
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    edges = np.linspace(t[0], t[-1], spans + 1)
    floor_t, floor_x = [], []
    for k in range(spans):
        inside = (t >= edges[k]) & ((t < edges[k + 1]) if k < spans - 1 else (t <= edges[k + 1]))
        if np.any(inside):
            lowest = int(np.argmin(np.where(inside, x, np.inf)))
            floor_t.append(t[lowest])
            floor_x.append(x[lowest])
    if len(floor_t) < 3:
        return None
    trend = mann_kendall(floor_t, floor_x)
    window = float(t[-1] - t[0])
    floor = float(np.median(floor_x))
    min_growth = max(MIN_GROWTH_BYTES, MIN_GROWTH_SHARE * floor)
    leaking = trend.low > 0 and trend.low * window >= min_growth
    ttl = earliest = None
    if leaking and limit_bytes is not None:
        headroom = max(float(limit_bytes) - float(x[-1]), 0.0)
        ttl = headroom / trend.slope if trend.slope > 0 else None
        earliest = headroom / trend.high if trend.high > 0 else None
    return LeakReport(leaking, trend.slope, trend.low, trend.high, trend.p_value, ttl, earliest)


def memory_limit(configured: int | None = None) -> float | None:
    """The memory the process may use: configured, else its cgroup's limit, else the machine's memory."""
    if configured:
        return float(configured)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            return float(text)
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    total = float(pages * page_size)
    return total if math.isfinite(total) and total > 0 else None
