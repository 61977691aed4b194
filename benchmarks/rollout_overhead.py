"""What choosing a version through OpenFeature costs, against the previous in-process rollout, in one run.

Variants, each timed per call over the same users, interleaved and repeated (best of the repeats,
so load on a shared machine hurts every variant alike):

- ``previous``: the hand-written rollout this replaced (SHA-256 buckets in process memory), loaded
  from git at the commit before the change (``PREVIOUS_COMMIT``);
- ``rollout()``: ``otel_migration.rollout`` now: flagd's provider in file mode, its loaded flag
  state compiled once per load and evaluated on our hot path (no OpenFeature client, no
  json-logic; murmur3 ``fractional`` as flagd computes it), recorded by our recorder directly;
- ``OpenFeature + flagd``: the application evaluating the same flag through the API itself
  (recorded by our hook), i.e. what ``rollout()`` cost before its hot path, and still costs when
  an application hook or provider makes it step aside;
- ``flagd core``: flagd's evaluator alone (no SDK, no hook), to show where the time goes;
- ``in-memory provider``: the OpenFeature client and our hook with the SDK's static in-memory
  provider, i.e. the SDK's share without flagd's rule.

Every variant is measured without a span and inside a recording span (where the hook adds the
``feature_flag.evaluation`` event). Then the propagation: another writer rewrites the flag file
and we time until this process serves the change (flagd's watcher polls every 200 ms).

    .venv/bin/python benchmarks/rollout_overhead.py [--calls 20000] [--repeats 5] [--rewrites 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

ROOT = Path(__file__).resolve().parents[1]
#: main before rollouts became OpenFeature flags.
PREVIOUS_COMMIT = "f39d6ac"
NAME = "checkout"


def _previous_module() -> types.ModuleType:
    """The previous rollout module, from git, with its relative imports made absolute."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{PREVIOUS_COMMIT}:otel_migration/_rollouts/rollout.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source.replace("from .._", "from otel_migration._")
    spec = importlib.util.spec_from_loader("previous_rollout", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, "previous_rollout.py", "exec"), module.__dict__)
    return module


def _per_call_us(function: Callable[[str], object], users: list[str]) -> float:
    start = time.perf_counter()
    for user in users:
        function(user)
    return (time.perf_counter() - start) / len(users) * 1e6


def _propagation(rewrites: int) -> list[float]:
    """Seconds from another writer's rewrite of the flag file to this process serving it."""
    import otel_migration
    from otel_migration._rollouts.flagfile import FlagFile
    from otel_migration._rollouts.rollout import flags

    flag_file = FlagFile(flags.file().path)
    user = "propagation-user"
    latencies = []
    for i in range(rewrites):
        percent = 100.0 if i % 2 == 0 else 0.0
        expected = "2.0" if percent == 100.0 else "1.0"
        time.sleep(0.05 + (i % 7) * 0.031)  # spread the rewrites over the watcher's poll phase
        # FlagFile.edit is what another process's set_rollout does: this process is not told.
        flag_file.edit(lambda current, p=percent: {NAME: replace(current[NAME], percent=p)})
        written = flag_file.path.stat().st_mtime
        deadline = time.monotonic() + 10
        while otel_migration.rollout(NAME, user) != expected:
            assert time.monotonic() < deadline, "the rewrite was never served"
            time.sleep(0.001)
        latencies.append(time.time() - written)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rewrites", type=int, default=20)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="rollout-overhead-")
    os.environ["OTEL_MIGRATION_FLAG_FILE"] = os.path.join(workdir, "otel-migration-flags.json")
    import otel_migration
    from otel_migration._rollouts.rollout import flags

    previous = _previous_module()
    users = [f"user-{i}" for i in range(args.calls)]
    previous.rollout(NAME, users[0], percent=30)
    otel_migration.set_rollout(NAME, percent=30)
    otel_migration.rollout(NAME, users[0])  # starts flagd's file provider
    flagd = flags.provider()
    core = flagd.resolver.evaluator  # type: ignore[attr-defined]
    memory = InMemoryProvider({NAME: InMemoryFlag("1.0", {"1.0": "1.0", "2.0": "2.0"})})
    # Its own domain: swapping the default provider back and forth would shut flagd's down.
    api.set_provider_and_wait(memory, domain="bench")
    client = api.get_client("bench")
    default_client = api.get_client()

    def with_memory(user: str) -> object:
        return client.get_string_value(NAME, "1.0", EvaluationContext(targeting_key=user))

    variants: dict[str, Callable[[str], object]] = {
        "previous": lambda u: previous.rollout(NAME, u),
        "rollout()": lambda u: otel_migration.rollout(NAME, u),
        "OpenFeature + flagd": lambda u: default_client.get_string_value(
            NAME, "1.0", EvaluationContext(targeting_key=u)
        ),
        "flagd core": lambda u: core.resolve_string_value(NAME, "1.0", EvaluationContext(targeting_key=u)),
        "in-memory provider": with_memory,
    }
    tracer = TracerProvider().get_tracer("bench")
    best: dict[tuple[str, bool], float] = {}
    for _ in range(args.repeats):
        for in_span in (False, True):
            for label, function in variants.items():
                if in_span:
                    with tracer.start_as_current_span("request"):
                        took = _per_call_us(function, users)
                else:
                    took = _per_call_us(function, users)
                key = (label, in_span)
                best[key] = min(best.get(key, float("inf")), took)
    assert flags.provider() is flagd and not trace.get_current_span().is_recording()

    print(f"per call, best of {args.repeats} x {args.calls} calls (Python {sys.version.split()[0]})")
    print(f"{'variant':<20} {'no span µs':>11} {'ratio':>7} {'in span µs':>11} {'ratio':>7}")
    for label in variants:
        row = [best[(label, False)], best[(label, True)]]
        ratios = [row[0] / best[("previous", False)], row[1] / best[("previous", True)]]
        print(f"{label:<20} {row[0]:>11.1f} {ratios[0]:>6.1f}x {row[1]:>11.1f} {ratios[1]:>6.1f}x")

    latencies = _propagation(args.rewrites)
    print(
        f"\nrewrite of the flag file -> served here, {len(latencies)} rewrites: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
