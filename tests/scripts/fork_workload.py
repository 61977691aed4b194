"""A pre-fork server in miniature, run by tests/test_fork.py: the parent may work, then forks workers.

    python fork_workload.py --parent-calls 100 --parent-llm 50 --children 3 --child-calls 1000

The parent makes its versioned calls, LLM calls, rollout decisions, experiment runs and quality
scores *before* forking (so every child inherits them in memory), then forks the children, which
make versioned calls only. Each process shuts down (flushing its own metrics) before it exits.
Exporting goes where OTEL_* says.
"""

from __future__ import annotations

import argparse
import os
import sys

import otel_migration


def parent_work(calls: int, llm_calls: int) -> None:
    for _ in range(calls):
        with otel_migration.versioned("2.0", operation="parent"):
            pass
    for _ in range(llm_calls):
        otel_migration.record_llm_call(
            model="gpt-4o-mini", input_tokens=10, output_tokens=5, provider="openai", version="2.0"
        )
    if calls:
        for user in range(100):
            otel_migration.rollout("forkflag", user, percent=50)
        for _ in range(5):
            otel_migration.experiment("forkexp", control=lambda: 1, candidate=lambda: 1)
        for _ in range(10):
            otel_migration.record_quality(80, version="2.0", migration="fork")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parent-calls", type=int, default=0)
    parser.add_argument("--parent-llm", type=int, default=0)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--child-calls", type=int, default=1000)
    args = parser.parse_args()
    otel_migration.configure(migration="fork")
    parent_work(args.parent_calls, args.parent_llm)
    if args.parent_calls:  # everything aggregated (and exported once) before the workers fork
        otel_migration.force_flush()

    children = []
    for _ in range(args.children):
        pid = os.fork()
        if pid == 0:
            for _ in range(args.child_calls):
                with otel_migration.versioned("2.0", operation="child"):
                    pass
            ok = otel_migration.shutdown(10_000)
            os._exit(0 if ok else 3)
        children.append(pid)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    ok = otel_migration.shutdown(10_000)
    print(f"parent pid {os.getpid()} children {children} ok={ok}", flush=True)
    sys.exit(status or (0 if ok else 3))


if __name__ == "__main__":
    main()
