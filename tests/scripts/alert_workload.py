"""A workload that makes the real SDK export every metric the alert rules read.

    python alert_workload.py MIGRATION ANTHROPIC_BASE_URL

Run by ``tests/e2e/test_alert_names.py`` against the real collector (``OTEL_*`` from the test): both
versions of a rolled-out migration for 200 users, each call inside ``subject()`` (2.0 twice as slow,
with a burst of timeouts, and one cancelled call), quality scores and NPS answers, LLM calls through
the real ``anthropic`` SDK to the loopback server of ``tests/llm_server.py`` (priced, one of them
streamed, against a daily budget), then the kill switch, lifted again, and a planted memory leak. The
analytics are evaluated before exit so that their gauges are exported.

The same calls reach the collector's migration_analytics component as mergeable state (docs/fleet.md),
so the fleet's figures the rules read exist too: distinct users per version from the sketches (the
adoption ratio), and enough successful calls of each version (about 100 and 80, above the
component's ``min_samples`` of 30) for the p95 improvement and a latency verdict ("worse").
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from unittest import mock

import anthropic
import psutil  # type: ignore[import-untyped]

import otel_migration
from otel_migration._analytics.health import HealthMonitor
from otel_migration.instrumentation.anthropic import AnthropicInstrumentor

USERS = 200
MESSAGES = [{"role": "user", "content": "Summarise the ticket in one line."}]


def main() -> None:
    migration, base_url = sys.argv[1], sys.argv[2]
    telemetry = otel_migration.configure(
        migration=migration,
        budgets={f"{migration}-budget": {"daily_usd": 0.05}},
        # Small enough for the users to reach every in-process verdict and the spike check.
        analytics={"min_samples": 10, "spike_min_errors": 3, "evaluate_every_s": 1},
    )
    # The sample-ratio check wants a split that has held for the last hour: this one is dated two
    # hours back (the rollout reads the clock when its percent changes).
    now = time.time()
    with mock.patch("time.time", lambda: now - 7200):
        otel_migration.set_rollout(migration, percent=50)
    AnthropicInstrumentor().instrument()
    client = anthropic.Anthropic(base_url=base_url, api_key="test", max_retries=0)

    def search(version: str, user: int) -> None:
        with otel_migration.versioned(version, operation="search"):
            time.sleep(0.002 if version == "1.0" else 0.004)
            if version == "2.0" and user % 5 == 0:
                raise TimeoutError("index timed out")
            otel_migration.record_quality(70 + user % 30)
            otel_migration.record_feedback(user % 11)

    for user in range(USERS):
        with otel_migration.subject(f"user-{user}"):
            version = otel_migration.rollout(migration, f"user-{user}")
            with contextlib.suppress(TimeoutError):
                search(version, user)

    # A cancelled call: counted as a request with outcome "cancelled", never as an error.
    async def cancelled() -> None:
        with otel_migration.versioned("2.0", operation="search"):
            raise asyncio.CancelledError

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(cancelled())

    with otel_migration.versioned("2.0", operation="summarize"), otel_migration.phase("synthesis"):
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as stream:
            "".join(stream.text_stream)
    with otel_migration.versioned("1.0", operation="summarize"), otel_migration.phase("synthesis"):
        client.messages.create(model="claude-sonnet-4-0", max_tokens=64, messages=MESSAGES)

    # The kill switch and back: the rollback stays counted, the sample-ratio check resumes.
    otel_migration.kill_rollout(migration, "alert names test")
    otel_migration.restore_rollout(migration)
    # A planted memory leak (1 MB every 10 s over the last 10 minutes, up to the real RSS now) so that
    # the leak flag and the time to its limit are exported: the monitor is the one configure() built.
    monitor = telemetry.get(HealthMonitor)
    rss = float(psutil.Process().memory_info().rss)
    for i in range(60):
        monitor.sample(rss=rss - 1e6 * (60 - i), at=now - 600 + 10 * i)
    time.sleep(1.5)  # one more background evaluation sees the rollback and every call
    otel_migration.snapshot()
    otel_migration.shutdown()


if __name__ == "__main__":
    main()
