"""One process of a fleet: serves a range of users with the real SDK and logs its ground truth.

    python fleet_app.py FIRST_USER LAST_USER TRUTH_FILE

Users whose id is divisible by 4 get version 2.0, which takes 50 % longer than 1.0 (a planted
latency regression), spending a third of it on the CPU where 1.0 only sleeps (a planted CPU
regression); every 10th call of 2.0 fails. Each call's user, version, outcome and duration
(as the caller measured it) goes to TRUTH_FILE as a JSON line. Every process is configured with the
same ``subject_key``, as docs/fleet.md requires, so a user has one pseudonym across the fleet.
"""

from __future__ import annotations

import json
import sys
import time

import otel_migration


class Declined(RuntimeError):
    pass


@otel_migration.versioned("1.0", operation="quote")
def quote_v1(user: int) -> int:
    time.sleep(0.002)
    return user


def _spin(seconds: float) -> None:
    """Burn this thread's CPU for ``seconds`` of its own CPU clock."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@otel_migration.versioned("2.0", operation="quote")
def quote_v2(user: int) -> int:
    _spin(0.001)
    time.sleep(0.002)
    if user % 10 == 0:
        raise Declined(str(user))
    return user


def main() -> None:
    first, last, truth_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    otel_migration.configure(migration="fleet-e2e", subject_key="fleet-e2e-shared-key")
    with open(truth_path, "w") as truth:
        for user in range(first, last):
            version, call = ("2.0", quote_v2) if user % 4 == 0 else ("1.0", quote_v1)
            outcome = "ok"
            started = time.perf_counter()
            with otel_migration.subject(f"user-{user}"):
                try:
                    call(user)
                except Declined:
                    outcome = "error"
            duration = time.perf_counter() - started
            truth.write(
                json.dumps({"user": user, "version": version, "outcome": outcome, "s": duration}) + "\n"
            )
    otel_migration.shutdown()


if __name__ == "__main__":
    main()
