"""Calls made while the collector is down, then a flush once it is back (driven by the test over stdin).

Prints "exported-while-down" after the first flush, waits for a line on stdin, then shuts down.
"""

from __future__ import annotations

import sys
import time

import otel_migration


def main() -> None:
    otel_migration.configure(migration="outage")
    started = time.monotonic()
    for _ in range(25):
        with otel_migration.versioned("2.0", operation="during_outage"):
            pass
    calls_took = time.monotonic() - started
    otel_migration.force_flush(timeout_millis=5_000)  # the span export fails: the collector is down
    print(f"exported-while-down calls_took={calls_took:.3f}", flush=True)
    sys.stdin.readline()  # the test brings the collector back
    otel_migration.shutdown()  # the final metric export carries the SDK's count of lost spans


if __name__ == "__main__":
    main()
