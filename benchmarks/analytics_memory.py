"""Memory of the migration analytics against the number of distinct users.

    python benchmarks/analytics_memory.py [--users 1000000]

Feeds finished calls from N distinct users (two versions, one operation) into the analytics and
prints the memory it holds (tracemalloc) and the process's resident size at checkpoints, with the
unique-user estimate against the exact count. The analytics keep sketches, counters and rings,
never per-user state, so the memory should not grow with the users.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from otel_migration import CallRecord
from otel_migration._analytics.engine import MigrationAnalytics
from otel_migration._core.config import AnalyticsSettings
from otel_migration._core.context import Scope
from otel_migration._core.subjects import pseudonymize
from otel_migration._rollouts.rollout import registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    now = time.time()
    analytics = MigrationAnalytics(AnalyticsSettings(), registry.get, lambda: now)
    tracemalloc.start()
    checkpoints = {int(args.users * f) for f in (0.001, 0.01, 0.1, 0.5, 1.0)}
    started = time.perf_counter()
    print(f"{'users':>10} {'held MiB':>9} {'peak MiB':>9} {'RSS MiB':>8} {'estimate':>10} {'error':>7}")
    for i in range(1, args.users + 1):
        version = "2.0" if i % 3 else "1.0"
        analytics.on_call(
            CallRecord(
                Scope("bench", "op", version, subject=pseudonymize(f"user-{i}")),
                "ok",
                0.01,
                int((now - 1) * 1e9),
            )
        )
        if i in checkpoints:
            held, peak = tracemalloc.get_traced_memory()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            users = sum(v.users_1h for v in analytics.evaluate().migrations["bench"].adoption.versions)
            print(
                f"{i:>10} {held / 2**20:>9.1f} {peak / 2**20:>9.1f} {rss:>8.1f} {users:>10.0f} "
                f"{(users - i) / i:>+7.2%}"
            )
    print(f"\n{args.users} users in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
