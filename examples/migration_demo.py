"""`make demo`: a 1.0 -> 2.0 migration of a billing service, measured end to end.

Users are assigned to a version by the sticky rollout router as it ramps from 10 % to 90 %; both
versions are wrapped from ``otel-migration.toml`` without touching their code. Telemetry goes
where ``OTEL_EXPORTER_OTLP_ENDPOINT`` says or, with no collector configured, to OTLP JSON lines
in a local file. At the end the in-process snapshot is printed: adoption, errors, latency per
version and the statistical verdicts a deploy script could gate on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import otel_migration  # noqa: E402

USERS = 120
REQUESTS = 600


def run() -> None:
    telemetry = otel_migration.configure(config_file=HERE / "otel-migration.toml")

    from billing import legacy
    from billing.next import Billing

    billing = Billing()
    for i in range(REQUESTS):
        percent = 10 + 80 * i / REQUESTS  # the rollout ramps up during the run
        user = f"user-{i * 7919 % USERS}"
        version = otel_migration.rollout("billing", user, percent=percent)
        with otel_migration.subject(user):
            try:
                if version == "2.0":
                    billing.charge(user, 1000 + i)
                    billing.monthly_report(user)
                else:
                    legacy.charge(user, 1000 + i)
                    legacy.monthly_report(user)
            except (TimeoutError, ValueError):
                pass  # the service answers with an error page; the telemetry has recorded it

    otel_migration.force_flush()
    print_summary(telemetry, otel_migration.snapshot())
    otel_migration.shutdown()


def print_summary(telemetry: otel_migration.Telemetry, snapshot: otel_migration.Snapshot) -> None:
    migration = snapshot.migrations[telemetry.settings.migration]
    requests = telemetry.recorder.request_counts()
    print(f'\notel-migration demo: migration "{migration.name}", {REQUESTS} requests from {USERS} users')
    print(f"telemetry sent to: {telemetry.providers.destination}\n")

    adoption = migration.adoption
    print(
        f"adoption: {adoption.ratio_1h:.0%} of users on {', '.join(migration.candidates)} "
        f"(stage: {adoption.stage}{', stalled' if adoption.stalled else ''})"
    )
    for errors in migration.errors:
        categories = ", ".join(f"{n} {c}" for c, n in sorted(errors.categories.items())) or "none"
        rate, error_free = errors.error_rate, errors.error_free_user_rate
        print(
            f"  {errors.version}: {errors.requests} calls, error rate {rate:.1%} ({categories}), "
            f"{error_free:.0%} of users error-free"
        )

    columns = ("calls", 7), ("errors", 8), ("p50 ms", 9), ("p95 ms", 9), ("p99 ms", 9)
    header = f"\n{'operation':<16}{'version':>8}" + "".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * (len(header) - 1))
    for stats in sorted(migration.latency, key=lambda s: (s.operation, s.version)):
        calls = sum(
            n for (_, op, v, _), n in requests.items() if op == stats.operation and v == stats.version
        )
        failed = requests.get((migration.name, stats.operation, stats.version, "error"), 0)
        print(
            f"{stats.operation:<16}{stats.version:>8}{calls:>7}{failed:>8}"
            f"{stats.p50 * 1000:>9.2f}{stats.p95 * 1000:>9.2f}{stats.p99 * 1000:>9.2f}"
        )

    print("\nverdicts (2.0 against 1.0):")
    for verdict in migration.verdicts:
        print(f"  {verdict.operation} {verdict.metric}: {verdict.reason}")
    srm = migration.sample_ratio
    if srm is None:
        print("\nsplit check: not run, the rollout percent changed within the last hour (it ramped)")
    else:
        verdict = "MISMATCH" if srm.mismatch else "as expected"
        observed, expected = srm.observed_share, srm.expected_share
        print(f"\nsplit check: {observed:.0%} on 2.0 for a {expected:.0%} rollout: {verdict}")
    if telemetry.providers.destination.startswith("OTLP JSON"):
        print("\nno collector configured: set OTEL_EXPORTER_OTLP_ENDPOINT to send to one,")
        print("then view the traces in Jaeger (see README: View traces in Jaeger).")


if __name__ == "__main__":
    os.environ.setdefault("OTEL_SERVICE_NAME", "billing-demo")
    run()
