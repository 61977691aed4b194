"""`make demo`: a 1.0 -> 2.0 migration of a billing service, measured end to end.

Users are assigned to a version by the sticky rollout router as it ramps from 10 % to 90 %; both
versions are wrapped from ``otel-migration.toml`` without touching their code. Each report ends
with an LLM summary (1.0 on a haiku-tier model, 2.0 on a sonnet-tier one, reported through
``record_llm_call`` as no API key is needed for a demo) and the user's verdict on it. Telemetry goes
where ``OTEL_EXPORTER_OTLP_ENDPOINT`` says or, with no collector configured, to OTLP JSON lines
in a local file. At the end the in-process snapshot is printed: adoption, errors, latency per
version and the statistical verdicts a deploy script could gate on, and the HTML report (with its
JSON and CSV) is written from snapshots taken along the ramp.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import otel_migration  # noqa: E402

USERS = 120
REQUESTS = 600


def run() -> None:
    # A daily LLM budget for the summaries: the report shows how much of it the run used.
    # The rollout's flag file (shared by every process of a host): a fresh one, so each demo ramps anew.
    flag_file = Path(tempfile.mkdtemp(prefix="otel-migration-demo-")) / "otel-migration-flags.json"
    telemetry = otel_migration.configure(
        config_file=HERE / "otel-migration.toml",
        budgets={"summaries": {"daily_usd": 5.0}},
        flag_file=str(flag_file),
    )

    from billing import legacy
    from billing.next import Billing

    billing = Billing()
    rng = random.Random(7)
    snapshots = []  # along the ramp: the report's adoption over time
    for i in range(REQUESTS):
        if i % 50 == 0:  # the rollout ramps up during the run, as `otel-migration rollout set` would
            otel_migration.set_rollout("billing", percent=round(10 + 80 * i / REQUESTS))
        user = f"user-{i * 7919 % USERS}"
        version = otel_migration.rollout("billing", user)
        with otel_migration.subject(user):
            try:
                if version == "2.0":
                    billing.charge(user, 1000 + i)
                    billing.monthly_report(user)
                else:
                    legacy.charge(user, 1000 + i)
                    legacy.monthly_report(user)
                summarize(version, rng)
            except (TimeoutError, ValueError):
                pass  # the service answers with an error page; the telemetry has recorded it
        if i % 50 == 49:
            snapshots.append(otel_migration.snapshot())

    otel_migration.force_flush()
    print_summary(telemetry, otel_migration.snapshot())
    write_report(snapshots)
    otel_migration.shutdown()


def write_report(snapshots: list[otel_migration.Snapshot]) -> None:
    """The HTML report (plus JSON and CSV), from this process: it opens in a browser without a server."""
    try:
        path = otel_migration.report(
            "otel-migration-report.html", source=snapshots, title="Billing 1.0 -> 2.0"
        )
    except ImportError as exc:  # installed without the report extra
        print(f"\nno report: {exc}")
        return
    beside = f"{path.with_suffix('.json').name}, {path.with_suffix('.csv').name}"
    print(f"\nreport: {path.resolve().as_uri()}  (and {beside})")


def summarize(version: str, rng: random.Random) -> None:
    """The report's LLM summary and what the user thought of it (simulated: no API key needed)."""
    model, tier, quality = (
        ("claude-3-5-haiku-20241022", "haiku", 72)
        if version == "1.0"
        else ("claude-sonnet-4-20250514", "sonnet", 86)
    )
    # Reported after the fact (outside the versioned report), so the version is given explicitly.
    otel_migration.record_llm_call(
        model=model,
        provider="anthropic",
        input_tokens=rng.randint(900, 1300),
        output_tokens=rng.randint(150, 260),
        duration_s=rng.uniform(0.4, 0.9),
        version=version,
        phase="synthesis",
    )
    otel_migration.record_quality(min(100, max(0, rng.gauss(quality, 8))), version=version, tier=tier)
    action = rng.choices(["approved", "edited", "regenerated"], [quality, 100 - quality, 12])[0]
    otel_migration.record_action(action, version=version, tier=tier)  # type: ignore[arg-type]
    if rng.random() < 0.3:
        rating = min(10, max(0, round(rng.gauss(quality / 10, 2))))
        otel_migration.record_feedback(rating, version=version, tier=tier)


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

    print("\nLLM summaries:")
    for llm in otel_migration.llm_stats():
        per_call = llm.cost_usd / max(llm.calls, 1)
        line = (
            f"  {llm.version} ({llm.tier}): {llm.calls} calls, ${llm.cost_usd:.4f} (${per_call:.5f} a call)"
        )
        quality = llm.quality
        if quality is not None and quality.mean_score is not None:
            accepted = f"{quality.acceptance_rate:.0%}" if quality.acceptance_rate is not None else "n/a"
            nps = f"{quality.nps:+.0f}" if quality.nps is not None else "n/a"
            line += f", quality {quality.mean_score:.0f}/100, accepted {accepted}, NPS {nps}"
        print(line)

    print("\nverdicts (2.0 against 1.0):")
    for verdict in migration.verdicts:
        where = "all operations" if verdict.operation == "*" else verdict.operation
        print(f"  {where}, {verdict.metric}: {verdict.reason}")
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
