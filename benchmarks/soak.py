"""Soak: threads, asyncio tasks and forked children for minutes, with bad inputs mixed in.

    python benchmarks/soak.py [--seconds 600] [--threads 16] [--tasks 200] [--fork-every 30]

A driver starts a real OTLP receiver (``--protocol``, gRPC by default, loopback) and runs the
workload in a subprocess exporting to it every 5 s: ``--threads`` threads and ``--tasks``
asyncio tasks make versioned calls (some failing, some with LLM calls inside), one call in 200
is a random bad input
(wrong types, NaN, a lone surrogate, a 100 kB operation, ...) whatever the validation does with
it, and every ``--fork-every`` seconds the workload forks a child that makes calls of its own and
exits. At the end it shuts down with a deadline. The driver checks:

- RSS flat: the workload's resident memory after warm-up (the first fifth) grows by less than
  ``--rss-slack-mb``;
- exact: calls and LLM calls the receiver got (the last point of each series, summed over the
  instances) plus what ``migration.telemetry.dropped`` reports equal what was made (a bad input
  the package accepted counts as made);
- the shutdown returned within its deadline.

It prints the figures and exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHUTDOWN_MILLIS = 10_000
OPERATIONS = [f"soak-{i}" for i in range(12)]
BAD_SHARE = 1 / 200  # of calls that are a random bad input (--bad-share)


# -- the workload (a subprocess) -------------------------------------------------------------------
class Made:
    """What one thread or task made: versioned calls and LLM calls the package accepted."""

    __slots__ = ("calls", "llm")

    def __init__(self) -> None:
        self.calls = 0
        self.llm = 0


def _bad_inputs(om: Any) -> list[tuple[str, Callable[[], None]]]:
    """Calls with bad arguments, each returning normally only if the package accepted it."""

    def versioned_with(version: Any, operation: Any) -> Callable[[], None]:
        def run() -> None:
            with om.versioned(version, operation=operation):
                pass

        return run

    def llm(**kwargs: Any) -> Callable[[], None]:
        base = {"model": "gpt-4o-mini", "input_tokens": 1, "output_tokens": 1, "version": "2.0"}
        return lambda: om.record_llm_call(**{**base, **kwargs})

    return [
        ("calls", versioned_with(123, "soak-bad")),
        ("calls", versioned_with("2.0", 123)),
        ("calls", versioned_with("2.0", "bad\ud800")),
        ("calls", versioned_with("2.0", "x" * 100_000)),
        ("calls", versioned_with(None, None)),
        ("llm", llm(duration_s=math.nan)),
        ("llm", llm(model=123)),
        ("llm", llm(input_tokens=-5, output_tokens=10**30)),
        ("llm", llm(input_tokens=math.inf)),
        ("none", lambda: om.rollout("soak-flag", object(), percent=math.nan)),
        ("none", lambda: om.record_quality(math.nan, version="2.0")),
    ]


def _one_call(om: Any, made: Made, rng: random.Random, bad: list[tuple[str, Callable[[], None]]]) -> None:
    if rng.random() < BAD_SHARE:
        kind, run = rng.choice(bad)
        try:
            run()
        except Exception:
            return  # refused at the call: not made
        if kind == "calls":
            made.calls += 1
        elif kind == "llm":
            made.llm += 1
        return
    operation = rng.choice(OPERATIONS)
    version = rng.choice(("1.0", "2.0"))
    with contextlib.suppress(ValueError), om.subject(f"user-{rng.randrange(5000)}"):
        made.calls += 1
        with om.versioned(version, operation=operation):
            if rng.random() < 0.05:
                made.llm += 1
                om.record_llm_call(model="gpt-4o-mini", input_tokens=120, output_tokens=40, duration_s=0.01)
            if rng.random() < 0.02:
                raise ValueError("soak failure")


def _thread(om: Any, made: Made, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    bad = _bad_inputs(om)
    while not stop.is_set():
        _one_call(om, made, rng, bad)
        time.sleep(0.002)


async def _task(om: Any, made: Made, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    bad = _bad_inputs(om)
    while not stop.is_set():
        _one_call(om, made, rng, bad)
        await asyncio.sleep(0.02)


def _child(om: Any, out: Path, calls: int, seed: int) -> None:
    import faulthandler

    # A child forked from a busy process is where a lock held at fork would show: say where it hangs.
    faulthandler.dump_traceback_later(5, exit=False)
    made = Made()
    rng = random.Random(seed)
    bad = _bad_inputs(om)
    for _ in range(calls):
        _one_call(om, made, rng, bad)
    ok = om.shutdown(SHUTDOWN_MILLIS)
    (out / f"child-{os.getpid()}.json").write_text(
        json.dumps({"calls": made.calls, "llm": made.llm, "ok": ok})
    )


def workload(seconds: float, threads: int, tasks: int, fork_every: float, out: Path) -> None:
    import otel_migration as om

    om.configure(migration="soak")
    stop = threading.Event()
    made = [Made() for _ in range(threads + tasks)]
    workers = [threading.Thread(target=_thread, args=(om, made[i], stop, i)) for i in range(threads)]

    async def run_tasks() -> None:
        await asyncio.gather(*(_task(om, made[threads + i], stop, 1000 + i) for i in range(tasks)))

    workers.append(threading.Thread(target=asyncio.run, args=(run_tasks(),)))
    for worker in workers:
        worker.start()
    children: list[int] = []
    started = time.monotonic()
    next_fork = started + fork_every
    while time.monotonic() - started < seconds:
        time.sleep(0.2)
        if time.monotonic() >= next_fork:
            next_fork += fork_every
            pid = os.fork()
            if pid == 0:
                try:
                    _child(om, out, 2_000, len(children))
                finally:
                    os._exit(0)
            children.append(pid)
    stop.set()
    for worker in workers:
        worker.join()
    for pid in children:
        os.waitpid(pid, 0)
    begun = time.monotonic()
    ok = om.shutdown(SHUTDOWN_MILLIS)
    shutdown_s = time.monotonic() - begun
    print(
        json.dumps(
            {
                "calls": sum(m.calls for m in made),
                "llm": sum(m.llm for m in made),
                "children": len(children),
                "shutdown_ok": ok,
                "shutdown_s": shutdown_s,
            }
        ),
        flush=True,
    )


# -- the driver -----------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _received(receiver: Any) -> dict[str, float]:
    totals = {"calls": 0.0, "llm": 0.0, "dropped": 0.0}
    for point in receiver.latest_metrics():
        if point.name == "migration.requests":
            totals["calls"] += point.value or 0
        elif point.name == "migration.llm.calls":
            totals["llm"] += point.value or 0
        elif point.name == "migration.telemetry.dropped":
            totals["dropped"] += point.value or 0
    return totals


def drive(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.otlp_receiver import OTLPReceiver

    with OTLPReceiver(args.protocol) as receiver, tempfile.TemporaryDirectory() as out:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env = {
            **clean,
            **receiver.env(),
            "OTEL_SERVICE_NAME": "soak",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        }
        command = [sys.executable, __file__, "--worker", "--out", out]
        command += ["--seconds", str(args.seconds), "--threads", str(args.threads)]
        command += ["--tasks", str(args.tasks), "--fork-every", str(args.fork_every)]
        command += ["--bad-share", str(args.bad_share)]
        log = Path(out) / "workload.log"  # a file, not a pipe: a full pipe would block the workload
        with log.open("w") as stderr_file:
            proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr_file, text=True)
        rss: list[tuple[float, float]] = []
        started = time.monotonic()
        while proc.poll() is None:
            value = _rss_mb(proc.pid)
            if value is not None:
                rss.append((time.monotonic() - started, value))
            time.sleep(min(5.0, max(0.5, args.seconds / 60)))
        stdout, _ = proc.communicate()
        stderr = log.read_text(errors="replace")
        if args.log is not None:
            args.log.write_text(stderr)
        if proc.returncode != 0:
            print(stderr[-4000:], file=sys.stderr)
            print(f"workload failed with exit status {proc.returncode}")
            return 1
        parent = json.loads(stdout.strip().splitlines()[-1])
        children = [json.loads(p.read_text()) for p in Path(out).glob("child-*.json")]
        made_calls = parent["calls"] + sum(c["calls"] for c in children)
        made_llm = parent["llm"] + sum(c["llm"] for c in children)
        time.sleep(1)  # the last exports are in (each process shut down, flushing, before exiting)
        got = _received(receiver)

    warm = [v for t, v in rss if t >= args.seconds / 5]
    growth = (max(warm) - warm[0]) if warm else 0.0
    exact = got["calls"] + got["llm"] + got["dropped"] == made_calls + made_llm
    in_time = parent["shutdown_s"] <= SHUTDOWN_MILLIS / 1000 + 0.5
    flat = growth < args.rss_slack_mb
    print(
        f"duration {args.seconds:g} s, {args.threads} threads + {args.tasks} tasks, {len(children)} children"
    )
    print(
        f"made: {made_calls:,} calls + {made_llm:,} LLM calls; received {got['calls']:,.0f} + "
        f"{got['llm']:,.0f}; reported dropped {got['dropped']:,.0f} -> {'exact' if exact else 'MISMATCH'}"
    )
    first = f"{warm[0]:.1f}" if warm else "?"
    print(f"RSS after warm-up {first} MB, max {max(warm, default=0):.1f} MB, growth {growth:.1f} MB")
    deadline_s = SHUTDOWN_MILLIS / 1000
    print(f"shutdown {parent['shutdown_s']:.2f} s (deadline {deadline_s:g} s), ok={parent['shutdown_ok']}")
    if stderr.strip():
        lines = stderr.strip().splitlines()
        print(f"workload stderr: {len(lines)} lines; last: {lines[-1][:200]}")
    summary = {
        "made_calls": made_calls,
        "made_llm": made_llm,
        **{f"received_{k}": v for k, v in got.items()},
        "exact": exact,
        "rss_growth_mb": growth,
        "shutdown_s": parent["shutdown_s"],
        "in_time": in_time,
        "children": len(children),
    }
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0 if exact and in_time and flat else 1


def _set_bad_share(share: float) -> None:
    global BAD_SHARE
    BAD_SHARE = share


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--fork-every", type=float, default=30.0)
    parser.add_argument("--rss-slack-mb", type=float, default=30.0)
    parser.add_argument("--protocol", choices=["grpc", "http/protobuf"], default="grpc")
    parser.add_argument("--bad-share", type=float, default=BAD_SHARE, help="share of bad inputs (0: none)")
    parser.add_argument("--log", type=Path, help="keep the workload's stderr in this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _set_bad_share(args.bad_share)
        workload(args.seconds, args.threads, args.tasks, args.fork_every, args.out)
        return
    sys.exit(drive(args))


if __name__ == "__main__":
    main()
