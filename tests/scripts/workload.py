"""A workload run in a subprocess by the export tests: configure() from OTEL_* and emit known calls.

    python workload.py [--calls N] [--fork]

With ``--fork`` the process forks after configuring, like a pre-fork server: the child serves the
"child" operation and the parent the "parent" operation, each flushing before it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import otel_migration


@otel_migration.versioned("1.0", operation="charge")
def charge_v1(amount: int) -> int:
    return amount


@otel_migration.versioned("2.0", operation="charge")
def charge_v2(amount: int) -> int:
    if amount == 13:
        raise TimeoutError("gateway timed out")
    with otel_migration.phase("synthesis"):
        return amount * 2


def serve(operation: str, calls: int) -> None:
    for _i in range(calls):
        with otel_migration.versioned("2.0", operation=operation):
            pass
    print(f"{operation} served {calls}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--fork", action="store_true")
    args = parser.parse_args()
    otel_migration.configure(migration="workload")

    if args.fork:
        pid = os.fork()
        if pid == 0:
            serve("child", args.calls)
            otel_migration.shutdown()
            os._exit(0)
        serve("parent", args.calls)
        _, status = os.waitpid(pid, 0)
        otel_migration.shutdown()
        sys.exit(os.waitstatus_to_exitcode(status))

    for i in range(args.calls):
        charge_v1(i)
        with contextlib.suppress(TimeoutError):
            charge_v2(i)
    otel_migration.shutdown()


if __name__ == "__main__":
    main()
