"""`make demo`: a 1.0 -> 2.0 migration of a billing service, measured end to end.

Users are assigned to a version by a stable hash of their id (sticky as the rollout ramps from
10 % to 90 %); both versions are wrapped from ``otel-migration.toml`` without touching their code.
Telemetry goes where ``OTEL_EXPORTER_OTLP_ENDPOINT`` says, or, with no collector configured, to
OTLP JSON lines in a local file. At the end a short summary is printed.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import otel_migration  # noqa: E402
from otel_migration import CallRecord  # noqa: E402

USERS = 120
REQUESTS = 600


class DurationLog:
    """Keeps every duration in memory for the summary: fine for a demo of a few hundred calls."""

    def __init__(self) -> None:
        self.durations: dict[tuple[str, str], list[float]] = defaultdict(list)

    def on_call(self, record: CallRecord) -> None:
        if record.kind == "call":
            self.durations[(record.operation, record.version)].append(record.duration_s)


def on_new_version(user_id: str, percent: float) -> bool:
    """Sticky assignment: a user's bucket never changes, so raising the percent only adds users."""
    bucket = int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:4], "big") % 10_000
    return bucket < percent * 100


def run() -> None:
    telemetry = otel_migration.configure(config_file=HERE / "otel-migration.toml")
    log = DurationLog()
    telemetry.recorder.add_listener(log)

    from billing import legacy
    from billing.next import Billing

    billing = Billing()
    for i in range(REQUESTS):
        percent = 10 + 80 * i / REQUESTS  # the rollout ramps up during the run
        user = f"user-{i * 7919 % USERS}"
        try:
            if on_new_version(user, percent):
                billing.charge(user, 1000 + i)
                billing.monthly_report(user)
            else:
                legacy.charge(user, 1000 + i)
                legacy.monthly_report(user)
        except (TimeoutError, ValueError):
            pass  # the service answers with an error page; the telemetry has recorded it

    otel_migration.force_flush()
    requests = telemetry.recorder.request_counts()
    errors = telemetry.recorder.error_counts()
    print_summary(telemetry, requests, errors, log)
    otel_migration.shutdown()


def print_summary(
    telemetry: otel_migration.Telemetry,
    requests: dict[tuple[str, str, str, str], int],
    errors: dict[tuple[str, str, str, str, str], int],
    log: DurationLog,
) -> None:
    by_version: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (_, operation, version, outcome), count in requests.items():
        by_version[(operation, version)][outcome] += count
    migration = telemetry.settings.migration
    print(f'\notel-migration demo: migration "{migration}", {REQUESTS} requests from {USERS} users')
    print(f"telemetry sent to: {telemetry.providers.destination}\n")
    columns = ("requests", 10), ("errors", 8), ("error %", 9), ("p50 ms", 9), ("p95 ms", 9)
    header = f"{'operation':<16}{'version':>8}" + "".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    for (operation, version), outcomes in sorted(by_version.items()):
        total = sum(outcomes.values())
        failed = outcomes.get("error", 0)
        durations = np.array(log.durations[(operation, version)]) * 1000
        p50, p95 = np.percentile(durations, [50, 95]) if durations.size else (float("nan"),) * 2
        rate = 100 * failed / total
        print(f"{operation:<16}{version:>8}{total:>10}{failed:>8}{rate:>8.1f}%{p50:>9.2f}{p95:>9.2f}")
    print("\nerrors by type:")
    for (_, operation, version, err_type, category), count in sorted(errors.items()):
        print(f"  {operation} {version}: {count} x {err_type} ({category})")
    calls = sum(requests.values())
    new = sum(c for (_, _, v, _), c in requests.items() if v == "2.0")
    print(f"\nshare of calls on 2.0: {100 * new / calls:.0f} %")
    if telemetry.providers.destination.startswith("OTLP JSON"):
        print("no collector configured: set OTEL_EXPORTER_OTLP_ENDPOINT to send to one,")
        print("then view the traces in Jaeger (see collector_config/).")


if __name__ == "__main__":
    os.environ.setdefault("OTEL_SERVICE_NAME", "billing-demo")
    run()
