"""Every panel query of the shipped Grafana dashboards, run by a real Prometheus over a simulated migration.

The simulated migration is a real application process (this module, run with ``python -m``) using
the real SDK; it exports over OTLP to the real collector, whose ``prometheus`` exporter and own
metrics endpoint are what Prometheus would scrape. After each phase of the migration the test takes
the collector's two expositions as they are, and a loopback endpoint serves them to a real
Prometheus (Debian's ``prometheus``) with explicit timestamps one minute apart, preceded by the same
series at 0 (the value every cumulative series starts from). Counters then hold exactly the
simulated counts over a known window, so ``rate``/``increase`` give exact numbers instead of
scrape-timing-dependent extrapolations, and every panel's query (with ``$service``, ``$migration``,
``$collector``, ``$__rate_interval`` and ``$__range`` substituted) is checked for its label sets and
values against what the simulation did. Each query is also run with a selection that matches
nothing, and must then return nothing: the variables filter every query.

The collector's migration_analytics component (emitting every second here, with the process's
``min_samples`` of 5) merges the process's state into the fleet's series the dashboards read for
percentiles, improvement, distinct users, adoption, stage, error-free users and verdicts: those
panels must show the simulation's truth within the sketches' error (3 x 1.6 %) or the histograms'
(0.55 % of the process's own percentiles), and the planted latency regression of 2.0 as "worse".

A third process, the operations service alone on the operations dashboard, runs a workload whose
resources, tools and agent loops, events and health are known: CPU-bound against sleep-bound calls
(the CPU panel and its ratio within tolerance, the fleet's CPU verdict), kept memory, streams timed
into known buckets, calls blocked in flight while it exports, and a planted health history (rising
errors, a surge, a linear leak) whose score, z-scores and time to limit follow from docs/health.md's
formulas. The health panels read the fleet's figures, which need minutes of history: as
tests/e2e/test_fleet_component.py does, the planted minutes reach the component as the cumulative
state of a second instance of the service, exported over OTLP once per planted minute (the process's
own health monitor gets the same minutes; the memory leak stays the process's own). The service
runs last, early in a minute, and the last expositions are taken in that same minute, so that the
fleet judges the planted surge as the process does.

    python -m tests.e2e.test_dashboards main|edge|ops  # the simulated services (the test runs them)
    python -m tests.e2e.test_dashboards debug DIR     # run it all, keep the expositions in DIR
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otel_migration._llm.pricing import PriceTable

from .stack import ROOT, Process, binaries, free_port, http_get, prometheus_samples, wait_until

pytestmark = pytest.mark.e2e

SERVICE, EDGE, MIGRATION = "dash-shop", "dash-edge", "checkout"
# Seconds slept, each just above a bucket's lower bound (a sleep never ends early), so that a busy
# machine has most of the bucket's width to spare: charge on 1.0 lands in (0.1, 0.25], on 2.0 in
# (0.25, 0.5] (2.0's planted latency regression); summarize on 1.0 in (0.75, 1], on 2.0 (after its
# stream) in (1, 2.5].
CHARGE_SLEEP = {"1.0": 0.11, "2.0": 0.26}
SUMMARIZE_SLEEP = {"1.0": 0.76, "2.0": 1.01}
# Thread CPU each charge burns, the same on both versions: 40 times the call's own CPU (~0.13 ms, whose
# noise alone once made the process judge 2.0 5 % leaner while the fleet's merged histograms did not), so
# that no difference comes near cpu_min_effect and both judge the charge's CPU inconclusive.
CHARGE_CPU_S = 0.005
FIRST_TOKEN_DELAY = 0.33  # time to first token in the (0.32, 0.64] bucket of the GenAI histogram
SONNET, HAIKU, STREAMED = "claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022", "claude-haiku-4-5"
# The stream's usage as the loopback server reports it in Anthropic's meaning (input without the
# cache): 12 uncached and 36 cache-read input tokens, 7 output. The instrumentation counts
# 12 + 36 = 48 input tokens, of which 36 read from the prompt cache.
STREAM_UNCACHED, STREAM_CACHE_READ, STREAM_OUTPUT = 12, 36, 7
STREAM_TOKENS = (STREAM_UNCACHED + STREAM_CACHE_READ, STREAM_OUTPUT, STREAM_CACHE_READ)
BUDGET_USD = 0.05
EDGE_CALLS = 200
MIN_SAMPLES = 5  # the process's and the fleet's: enough for 2.0's 6 successful charges to be judged


# The operations service (resources, streams, tools and agents, events, health): a third process of the
# migration, alone on the operations dashboard, configured for known health figures.
OPS = "dash-ops"
RENDER_CALLS = 6  # per version: at least MIN_SAMPLES, so that the process judges their CPU
RENDER_CPU_S = 0.05  # thread CPU each call of render 1.0 burns (CPU-bound); 2.0 sleeps as long
# Operation "cache": each call of 2.0 allocates and keeps RETAINED_BYTES (measure_memory = true), 1.0 keeps
# nothing (a call of its own: zeroing fresh pages costs CPU, which would blur the sleep-bound render).
CACHE_CALLS, RETAINED_BYTES = 3, 16 << 20
# tracemalloc also counts what other threads (exporters, the aggregator) allocate during a call
RETAINED_NOISE = 4 << 20
# Streams: (seconds before the first item, seconds to exhaustion), each just above a bucket's lower
# bound of DURATION_BUCKETS, as the charge's sleeps; two streams per version, five items each.
STREAMS = {"1.0": (0.11, 0.76), "2.0": (0.011, 0.06)}
STREAM_RUNS, STREAM_ITEMS = 2, 5
# Events: (version, name, count), emitted inside a quick call of operation "sync" each.
EVENTS = (
    ("2.0", "migration.retry.attempted", 3),
    ("2.0", "migration.retry.succeeded", 1),
    ("2.0", "migration.cache.hit", 5),
    ("2.0", "migration.cache.miss", 2),
    ("1.0", "migration.fallback", 2),
    ("1.0", "migration.circuit_breaker.opened", 1),
)
SYNC_TIMEOUTS = 2  # calls of sync 2.0 that time out (the only errors of the real calls)
# Agent loops of operation "assist": 2.0's ask the loopback model (real anthropic SDK), which asks for
# two tools; lookup_order runs, refund raises; a final answer is recorded. 1.0's gives up after one
# recorded turn (loop.fail).
AGENT, AGENT_MODEL, AGENT_USAGE = "support-agent", "claude-haiku-4-5", (300, 40)
AGENT_TOOLS = ("lookup_order", "refund")
AGENT_RUNS = {"2.0": 2, "1.0": 1}
FINAL_TURN = {"2.0": (HAIKU, 400, 60), "1.0": (SONNET, 900, 80)}  # (model, input, output)
IN_FLIGHT = 3  # calls of operation "wait" (2.0) blocked while the process exports
# The operations service starts at most this many seconds into a minute: its workload, the planted
# history's export and the last expositions then all fall in that minute.
OPS_START_BY_S = 20
PLANTED_INSTANCE = "planted-history"  # the service.instance.id the planted minutes are exported under
OPS_ANALYTICS = {  # health inputs with budgets the workload does not simply exhaust
    "min_samples": MIN_SAMPLES,
    "evaluate_every_s": 3600,  # the gauges hold the one evaluation the process makes after planting
    "latency_slo_s": 0.5,  # 1.0's streams are slow calls; CPU-bound calls stay below on a loaded host
    "error_budget": 0.5,
    "latency_budget": 0.5,
}
# Planted history of 1.0 (the last 31 minutes before the real calls' minute, fed to the health monitor as
# finished calls): 30 baseline minutes of 20 calls, k // 3 of them network errors in the k-th (a rising
# error trend), then a surge of 100 calls, 10 failing (a request-rate anomaly), all 20 ms long.
BASELINE_CALLS, SURGE_CALLS, SURGE_ERRORS, PLANTED_S = 20, 100, 10, 0.02
PLANTED_MINUTES = 30
# A planted linear leak: RSS samples every 10 s over the last 10 minutes, 1 MB to 6.9 MB (far below the
# process's real RSS, so a real sample is never a floor), against a limit 3600 s of growth away.
LEAK_SAMPLES, LEAK_STEP_S, LEAK_FROM, LEAK_STEP = 60, 10, 1_000_000, 100_000
LEAK_SLOPE = LEAK_STEP / LEAK_STEP_S
MEMORY_LIMIT = LEAK_FROM + LEAK_STEP * (LEAK_SAMPLES - 1) + 3600 * LEAK_STEP // LEAK_STEP_S


def planted_errors(k: int) -> int:
    return k // 3


@dataclass(frozen=True)
class Phase:
    """One phase of the simulated migration; users are ``u<N>``, failing ones raise."""

    percent: float
    charge: Mapping[str, tuple[range, frozenset[int]]]  # version -> (users, users whose call fails)
    llm: tuple[tuple[str, str, int, int, int], ...]  # (version, model, input, output, cache read)
    stream: bool
    scores: tuple[tuple[str, float], ...]  # (version, quality score)
    actions: tuple[tuple[str, str], ...]
    nps: tuple[tuple[str, int], ...]
    csat: tuple[tuple[str, int], ...]
    confidence: tuple[tuple[str, float], ...]
    upgrades: tuple[str, ...]  # versions
    rollback: bool


PHASES = (
    Phase(
        percent=20,
        charge={"1.0": (range(0, 8), frozenset({0})), "2.0": (range(8, 10), frozenset())},
        llm=(("1.0", SONNET, 2000, 500, 0),),
        stream=False,
        scores=(("1.0", 45.0),),
        actions=(("1.0", "regenerated"),),
        nps=(("1.0", 3),),
        csat=(("1.0", 2),),
        confidence=(("1.0", 0.55),),
        upgrades=(),
        rollback=False,
    ),
    Phase(
        percent=60,
        charge={"1.0": (range(0, 4), frozenset({1})), "2.0": (range(4, 10), frozenset({4, 5}))},
        llm=(("2.0", HAIKU, 1200, 300, 200),),
        stream=True,
        scores=(("2.0", 95.0), ("2.0", 75.0), ("2.0", 60.0)),
        actions=(("2.0", "approved"), ("2.0", "edited"), ("2.0", "abandoned")),
        nps=(("2.0", 10), ("2.0", 9), ("2.0", 7)),
        csat=(("2.0", 5), ("2.0", 4), ("2.0", 2)),
        confidence=(("2.0", 0.8), ("2.0", 0.6)),
        upgrades=("2.0",),
        rollback=True,
    ),
)
TIERS = {SONNET: "sonnet", HAIKU: "haiku", STREAMED: "haiku"}


# -- the simulated services ----------------------------------------------------------------------------
class CardGatewayDown(ConnectionError):
    """A network failure of 1.0's payment gateway."""


def _charge(version: str, user: str, fails: bool) -> None:
    import otel_migration

    with otel_migration.subject(user), otel_migration.versioned(version, operation="charge"):
        _burn(CHARGE_CPU_S)
        time.sleep(CHARGE_SLEEP[version])
        if fails:
            raise CardGatewayDown("gateway down") if version == "1.0" else TimeoutError("gateway timed out")


def _run_phase(phase: Phase, llm_client: Any) -> None:
    import otel_migration

    otel_migration.set_rollout(MIGRATION, percent=phase.percent)
    for version, (users, failing) in phase.charge.items():
        for n in users:
            otel_migration.rollout(MIGRATION, f"u{n}")
            with contextlib.suppress(CardGatewayDown, TimeoutError):
                _charge(version, f"u{n}", n in failing)
    for version, model, tokens_in, tokens_out, cached in phase.llm:
        with otel_migration.subject("u0"), otel_migration.versioned(version, operation="summarize"):
            otel_migration.record_llm_call(
                model=model,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cache_read_tokens=cached,
                provider="anthropic",
            )
            if phase.stream:
                messages = [{"role": "user", "content": "Summarize the order"}]
                with llm_client.messages.stream(model=STREAMED, max_tokens=64, messages=messages) as stream:
                    "".join(stream.text_stream)
            time.sleep(SUMMARIZE_SLEEP[version])
    tier = {"1.0": "sonnet", "2.0": "haiku"}
    for version, score in phase.scores:
        otel_migration.record_quality(score, version=version, migration=MIGRATION, tier=tier[version])
    for version, action in phase.actions:
        otel_migration.record_action(action, version=version, migration=MIGRATION, tier=tier[version])  # type: ignore[arg-type]
    for version, rating in phase.nps:
        otel_migration.record_feedback(rating, version=version, migration=MIGRATION, tier=tier[version])
    for version, rating in phase.csat:
        otel_migration.record_feedback(
            rating, scale="csat", version=version, migration=MIGRATION, tier=tier[version]
        )
    for version, value in phase.confidence:
        otel_migration.record_confidence(value, version=version, migration=MIGRATION, tier=tier[version])
    for version in phase.upgrades:
        otel_migration.record_upgrade(tier[version], "opus", version=version, migration=MIGRATION)
    if phase.rollback:
        otel_migration.kill_rollout(MIGRATION, reason="simulated p95 regression")
        otel_migration.restore_rollout(MIGRATION)


def _facts(telemetry: Any) -> dict[str, Any]:
    """What the process itself reports, for the figures the SDK estimates (HyperLogLog, tests)."""
    import otel_migration

    snap = otel_migration.snapshot().migrations[MIGRATION]
    health = telemetry.health()
    return {
        "ratio_1h": snap.adoption.ratio_1h,
        "ratio_24h": snap.adoption.ratio_24h,
        "stage": snap.adoption.stage,
        "latency": [[s.operation, s.version, s.p50, s.p95, s.p99, s.mean] for s in snap.latency],
        "users_24h": {v.version: v.users_24h for v in snap.adoption.versions},
        "verdicts": [[v.operation, v.metric, v.candidate, v.state] for v in snap.verdicts],
        "improvements": [
            [i.operation, i.version, i.mean_pct, i.p50_pct, i.p95_pct] for i in snap.improvements
        ],
        "dropped": health.calls_dropped,
        "spans_delivered": health.spans_delivered,
        "spans_failed": health.spans_failed,
    }


def _process_usage() -> dict[str, float]:
    """This process's CPU seconds (user + system, the kernel's count psutil reads too) and resident bytes.

    Read before and after an export, they bound what process.cpu.time and process.memory.usage said.
    """
    import psutil

    times = os.times()
    return {"cpu": times.user + times.system, "rss": float(psutil.Process().memory_info().rss)}


def simulate_main() -> None:
    """The migrating service: each phase, then its facts on stdout, then wait for the test's go-ahead."""
    import anthropic

    import otel_migration
    from otel_migration.instrumentation.anthropic import AnthropicInstrumentor
    from tests.llm_server import LLMServer, Usage

    telemetry = otel_migration.configure()
    AnthropicInstrumentor().instrument()
    usage = Usage(
        input_tokens=STREAM_UNCACHED, output_tokens=STREAM_OUTPUT, cache_read_tokens=STREAM_CACHE_READ
    )
    with LLMServer(first_token_delay=FIRST_TOKEN_DELAY, usage=usage) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
        for number, phase in enumerate(PHASES, start=1):
            _run_phase(phase, client)
            facts = _facts(telemetry)
            before = _process_usage()
            otel_migration.force_flush()
            facts["process"] = [before, _process_usage()]
            print(f"PHASE {number} {json.dumps(facts)}", flush=True)
            sys.stdin.readline()
    otel_migration.shutdown()


def simulate_edge() -> None:
    """A second service whose span exports are refused, and whose call queue holds one call."""
    import otel_migration

    telemetry = otel_migration.configure(max_queue_size=1)
    for _ in range(EDGE_CALLS):
        with otel_migration.versioned("2.0", operation="ping"):
            pass
    otel_migration.force_flush()
    facts = _facts(telemetry)
    before = _process_usage()
    otel_migration.force_flush()
    otel_migration.shutdown()  # its export is the last one the collector holds for this process
    facts["process"] = [before, _process_usage()]
    print(f"DONE {json.dumps(facts)}", flush=True)


class RefundDeclined(RuntimeError):
    """The refund tool's failure in the agent loops."""


def _burn(cpu_s: float) -> None:
    """Spin until this thread has spent ``cpu_s`` seconds of CPU (whatever else the machine runs)."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def _stream(first_s: float, total_s: float) -> Iterator[int]:
    time.sleep(first_s)
    yield 0
    for item in range(1, STREAM_ITEMS):
        time.sleep((total_s - first_s) / (STREAM_ITEMS - 1))
        yield item


def _agent_loops(client: Any) -> None:
    import otel_migration

    for version, runs in AGENT_RUNS.items():
        model, tokens_in, tokens_out = FINAL_TURN[version]
        for _ in range(runs):
            with otel_migration.versioned(version, operation="assist"), otel_migration.agent(AGENT) as loop:
                if version == "1.0":
                    otel_migration.record_llm_call(
                        model=model, input_tokens=tokens_in, output_tokens=tokens_out, provider="anthropic"
                    )
                    loop.fail("max_iterations")
                    continue
                messages = [{"role": "user", "content": "Refund order 7"}]
                reply = client.messages.create(model=AGENT_MODEL, max_tokens=64, messages=messages)
                for block in reply.content:
                    if block.type == "tool_use":
                        with (
                            contextlib.suppress(RefundDeclined),
                            otel_migration.tool(block.name, call_id=block.id),
                        ):
                            if block.name == "refund":
                                raise RefundDeclined("refund declined")
                otel_migration.record_llm_call(
                    model=model, input_tokens=tokens_in, output_tokens=tokens_out, provider="anthropic"
                )


def _plant_history(monitor: Any, minute: int) -> None:
    """1.0's last 31 minutes and a linear leak, as the health monitor would have seen them (see above)."""
    from otel_migration import CallRecord, Scope

    def calls(at_minute: int, count: int, errors: int) -> None:
        end_ns = (at_minute * 60 + 30) * 10**9
        for n in range(count):
            failed = n < errors
            monitor.on_call(
                CallRecord(
                    Scope(MIGRATION, "render", "1.0"),
                    "error" if failed else "ok",
                    PLANTED_S,
                    end_ns,
                    "ConnectionError" if failed else None,
                    "network" if failed else None,
                )
            )

    for at_minute, (count, errors) in _planted_minutes(minute).items():
        calls(at_minute, count, errors)
    now = time.time()
    for i in range(LEAK_SAMPLES):
        at = now - LEAK_STEP_S * (LEAK_SAMPLES - 1 - i)
        monitor.sample(rss=LEAK_FROM + LEAK_STEP * i, cpu_share=0.0, at=at)


def _planted_minutes(minute: int) -> dict[int, tuple[int, int]]:
    """1.0's planted minutes before ``minute`` (the real calls' one): minute -> (calls, network errors)."""
    first = minute - PLANTED_MINUTES - 1
    planted = {first + k: (BASELINE_CALLS, planted_errors(k)) for k in range(PLANTED_MINUTES)}
    return planted | {minute - 1: (SURGE_CALLS, SURGE_ERRORS)}


def export_planted_history(otlp_http_port: int, minute: int) -> None:
    """The planted minutes for the collector's component, as a process would have exported them.

    A second instance of the operations service (``PLANTED_INSTANCE``) sends its cumulative state at
    the end of every planted minute: calls by outcome, errors by category and the durations of the
    successful calls (all ``PLANTED_S``) as a scale-6 exponential histogram. Its first export, all
    zero, a minute before the first planted one, starts its streams (docs/fleet.md section 4), so
    each later export's increase lands in the minute it covers.
    """
    import urllib.request

    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    def kv(pairs: dict[str, str]) -> list[common_pb2.KeyValue]:
        return [
            common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v)) for k, v in pairs.items()
        ]

    cumulative = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    call = {"migration.name": MIGRATION, "migration.operation": "render", "migration.version": "1.0"}
    network = call | {"error.type": "ConnectionError", "migration.error.category": "network"}
    index = math.ceil(math.log2(PLANTED_S) * 64) - 1  # the scale-6 bucket of every planted duration
    planted = _planted_minutes(minute)
    first = min(planted)
    start_ns = (first * 60 - 10) * 10**9
    calls = errors = 0
    for at_minute in range(first - 1, minute):
        n, failed = planted.get(at_minute, (0, 0))
        calls, errors = calls + n, errors + failed
        at_ns = (at_minute + 1) * 60 * 10**9

        def counter(name: str, *points: tuple[int, dict[str, str]], at_ns: int = at_ns) -> Any:
            data = [
                metrics_pb2.NumberDataPoint(
                    attributes=kv(attrs), start_time_unix_nano=start_ns, time_unix_nano=at_ns, as_int=value
                )
                for value, attrs in points
            ]
            return metrics_pb2.Metric(
                name=name,
                sum=metrics_pb2.Sum(data_points=data, aggregation_temporality=cumulative, is_monotonic=True),
            )

        ok = calls - errors
        durations = metrics_pb2.ExponentialHistogramDataPoint(
            attributes=kv(call),
            start_time_unix_nano=start_ns,
            time_unix_nano=at_ns,
            count=ok,
            sum=ok * PLANTED_S,
            scale=6,
        )
        if ok:
            durations.positive.offset, durations.positive.bucket_counts[:] = index, [ok]
        metrics = [
            counter(
                "migration.state.calls",
                (ok, call | {"migration.outcome": "ok"}),
                (errors, call | {"migration.outcome": "error"}),
            ),
            counter("migration.errors", (errors, network)),
            metrics_pb2.Metric(
                name="migration.state.duration",
                unit="s",
                exponential_histogram=metrics_pb2.ExponentialHistogram(
                    data_points=[durations], aggregation_temporality=cumulative
                ),
            ),
        ]
        resource = resource_pb2.Resource(
            attributes=kv({"service.name": OPS, "service.instance.id": PLANTED_INSTANCE})
        )
        body = metrics_service_pb2.ExportMetricsServiceRequest(
            resource_metrics=[
                metrics_pb2.ResourceMetrics(
                    resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(metrics=metrics)]
                )
            ]
        ).SerializeToString()
        request = urllib.request.Request(
            f"http://127.0.0.1:{otlp_http_port}/v1/metrics",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def simulate_ops() -> None:
    """The operations service: CPU- and sleep-bound calls, streams, agent loops with tools, events, calls
    in flight, planted health history; exports with the calls of operation "wait" still running."""
    import anthropic

    import otel_migration
    from otel_migration._analytics.health import HealthMonitor
    from otel_migration.instrumentation.anthropic import AnthropicInstrumentor
    from tests.llm_server import LLMServer, ToolCall, Usage

    # The real calls and the planted history's last minute must be one minute apart, and the test
    # reads the fleet's figures in the same minute: start early in a minute (the workload takes a few
    # seconds).
    if time.time() % 60 > OPS_START_BY_S:
        time.sleep(60.5 - time.time() % 60)
    started = int(time.time() // 60)
    telemetry = otel_migration.configure(
        migration=MIGRATION,
        measure_memory=True,
        memory_limit_bytes=MEMORY_LIMIT,
        analytics=OPS_ANALYTICS,
    )
    AnthropicInstrumentor().instrument()
    kept: list[bytearray] = []
    for _ in range(RENDER_CALLS):
        with otel_migration.versioned("1.0", operation="render"):
            _burn(RENDER_CPU_S)
        with otel_migration.versioned("2.0", operation="render"):
            time.sleep(RENDER_CPU_S)
    for _ in range(CACHE_CALLS):
        with otel_migration.versioned("1.0", operation="cache"):
            pass
        with otel_migration.versioned("2.0", operation="cache"):
            kept.append(bytearray(RETAINED_BYTES))
    for version, (first_s, total_s) in STREAMS.items():
        stream = otel_migration.versioned(version, operation="stream")(_stream)
        for _ in range(STREAM_RUNS):
            assert list(stream(first_s, total_s)) == list(range(STREAM_ITEMS))
    for version, name, count in EVENTS:
        with otel_migration.versioned(version, operation="sync"):
            for _ in range(count):
                otel_migration.event(name)
    for _ in range(SYNC_TIMEOUTS):
        with contextlib.suppress(TimeoutError), otel_migration.versioned("2.0", operation="sync"):
            raise TimeoutError("upstream timed out")
    usage = Usage(input_tokens=AGENT_USAGE[0], output_tokens=AGENT_USAGE[1])
    tools = tuple(ToolCall(name, {"order": 7}) for name in AGENT_TOOLS)
    with LLMServer(text="", tool_calls=tools, usage=usage) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
        _agent_loops(client)
    otel_migration.force_flush()  # every finished call aggregated, the queue empty

    minute = int(time.time() // 60)
    assert minute == started, "the workload crossed a minute: the planted history would be off"
    monitor = telemetry.get(HealthMonitor)
    _plant_history(monitor, minute)
    monitor.evaluate()
    snap = otel_migration.snapshot().migrations[MIGRATION]

    gate, entered = threading.Event(), threading.Semaphore(0)

    def wait() -> None:
        with otel_migration.versioned("2.0", operation="wait"):
            entered.release()
            gate.wait(60)

    waiting = [threading.Thread(target=wait) for _ in range(IN_FLIGHT)]
    for thread in waiting:
        thread.start()
    for _ in waiting:
        entered.acquire()
    otel_migration.force_flush()
    facts = {
        "verdicts": [[v.operation, v.metric, v.candidate, v.state] for v in snap.verdicts],
        "retained": len(kept) * RETAINED_BYTES,
        "minute": minute,
    }
    print(f"DONE {json.dumps(facts)}", flush=True)
    otel_migration.shutdown()
    gate.set()
    for thread in waiting:
        thread.join(10)


# -- running it through the real collector -------------------------------------------------------------
@dataclass
class Simulation:
    """The collector's expositions after each phase (its prometheus exporter, its own metrics)."""

    app: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    edge: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, Any] = field(default_factory=dict)
    backend_spans: int = 0  # spans the trace backend stored (phase 1; it refuses phase 2's)


def _total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in prometheus_samples(text, name)
        if all(found.get(k) == v for k, v in labels.items())
    )


def _fleet(text: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(found.items())): value
        for found, value in prometheus_samples(text, name)
        if found.get("job") == SERVICE and all(found.get(k) == v for k, v in labels.items())
    }


def _fleet_settled(url: str, requests: int) -> bool:
    """The fleet's figures include the phase's calls and its users' sketches (the same flush sent both;
    two evaluations a little more than an emit interval apart must agree)."""
    before = http_get(url)[1]
    if _total(before, "migration_fleet_requests", job=SERVICE, migration_window="1h") != requests:
        return False
    time.sleep(1.5)
    after = http_get(url)[1]
    return all(
        _fleet(before, name) == _fleet(after, name)
        for name in ("migration_fleet_requests", "migration_fleet_adoption_users", "migration_fleet_verdict")
    )


def _ops_health_settled(url: str) -> bool:
    """The fleet has judged the operations' planted minutes (1.0's request rate has a z-score), and two
    evaluations a little more than an emit interval apart agree."""
    names = ("migration_fleet_health_score", "migration_fleet_anomaly_score", "migration_fleet_error_trend")

    def health() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        text = http_get(url)[1]
        return {
            name: {
                tuple(sorted(found.items())): value
                for found, value in prometheus_samples(text, name)
                if found.get("job") == OPS
            }
            for name in names
        }

    before = health()
    judged = any(
        dict(key).get("migration_version") == "1.0" and dict(key).get("migration_metric") == "request_rate"
        for key in before["migration_fleet_anomaly_score"]
    )
    time.sleep(1.5)
    return judged and health() == before


def _expected_requests(phases: tuple[Phase, ...]) -> int:
    return sum(len(users) for p in phases for users, _ in p.charge.values()) + sum(len(p.llm) for p in phases)


def run_simulation(workdir: Path) -> Simulation:
    from tests.otlp_receiver import OTLPReceiver

    otelcol, _ = binaries()
    taken: set[int] = set()
    ports = {name: free_port(taken) for name in ("grpc", "http", "health", "prometheus", "own")}
    sim = Simulation()
    with OTLPReceiver("grpc") as backend, OTLPReceiver("grpc") as refusing, OTLPReceiver("grpc") as aside:
        refusing.behaviour = "reject"
        env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{ports['prometheus']}",
            "OTELCOL_SELF_METRICS_PORT": str(ports["own"]),
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{backend.port}",  # stands in for Jaeger
            "OTELCOL_FLEET_EMIT_INTERVAL": "1s",
            "OTELCOL_FLEET_HEALTH_DELAY": "0s",  # the fleet judges the last minute, as the process
        }
        config = ROOT / "collector_config"
        # The fleet judges with the process's min_samples (its otel-migration.toml below) and the
        # operations' health budgets (OPS_ANALYTICS; no other service's health is checked).
        fleet_config = workdir / "fleet.yaml"
        fleet_config.write_text(
            "connectors:\n  migration_analytics:\n"
            f"    min_samples: {MIN_SAMPLES}\n"
            f"    error_budget: {OPS_ANALYTICS['error_budget']}\n"
            f"    latency_budget: {OPS_ANALYTICS['latency_budget']}\n"
            f"    latency_slo: {int(OPS_ANALYTICS['latency_slo_s'] * 1000)}ms\n"
        )
        args = [str(otelcol), f"--config={config / 'otelcol.yaml'}", f"--config={config / 'llm-cost.yaml'}"]
        args.append(f"--config={fleet_config}")
        collector = Process("collector", args, env, workdir / "collector.log")
        collector.start()
        try:
            wait_until(
                lambda: http_get(f"http://127.0.0.1:{ports['health']}/")[0] == 200,
                60,
                "the collector",
                collector,
            )
            app_url = f"http://127.0.0.1:{ports['prometheus']}/metrics"
            own_url = f"http://127.0.0.1:{ports['own']}/metrics"
            base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
            base |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['grpc']}"}
            base |= {
                "OTEL_METRIC_EXPORT_INTERVAL": "600000",
                "OTEL_MIGRATION_SUBJECT_KEY": "dashboards-simulation",
                # The rollout state (and its rollback count) is the run's own, not the checkout's
                # default otel-migration-flags.json left by the previous run.
                "OTEL_MIGRATION_FLAG_FILE": str(workdir / "flags.json"),
            }

            edge_env = base | {
                "OTEL_SERVICE_NAME": EDGE,
                "OTEL_MIGRATION_NAME": MIGRATION,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{refusing.port}",
            }
            edge = subprocess.run(
                [sys.executable, "-m", "tests.e2e.test_dashboards", "edge"],
                env=edge_env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert edge.returncode == 0, edge.stderr
            sim.edge = json.loads(edge.stdout.split("DONE ", 1)[1])
            failed = sim.edge["spans_failed"]
            wait_until(
                lambda: (
                    _total(http_get(app_url)[1], "migration_telemetry_spans_failed_total", job=EDGE) == failed
                ),
                30,
                "the edge service's failed spans on the collector",
            )

            def run_ops() -> int:
                """The operations service and its planted history at the component; its minute."""
                # Its spans go straight to a receiver of their own, so that the collector's span counts
                # stay the main service's. No process.* metrics: the fleet's saturation input stays
                # "no harm", as the process's planted CPU share of 0.
                ops_env = base | {
                    "OTEL_SERVICE_NAME": OPS,
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{aside.port}",
                    "ANTHROPIC_OPEN_TELEMETRY": "false",
                    "OTEL_MIGRATION_PROCESS_METRICS": "false",
                }
                ops = subprocess.run(
                    [sys.executable, "-m", "tests.e2e.test_dashboards", "ops"],
                    env=ops_env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
                assert ops.returncode == 0, ops.stderr
                sim.ops = json.loads(ops.stdout.split("DONE ", 1)[1])
                minute: int = sim.ops["minute"]
                export_planted_history(ports["http"], minute)
                wait_until(
                    lambda: (
                        _total(
                            http_get(app_url)[1],
                            "migration_calls_in_flight",
                            job=OPS,
                            migration_operation="wait",
                        )
                        == IN_FLIGHT
                    ),
                    30,
                    "the operations service's calls in flight on the collector",
                )
                wait_until(lambda: _ops_health_settled(app_url), 30, "the fleet's health of the operations")
                return minute

            config_file = workdir / "otel-migration.toml"
            config_file.write_text(
                f'migration = "{MIGRATION}"\n[analytics]\nmin_samples = {MIN_SAMPLES}\n'
                f"[budgets.llm-daily]\ndaily_usd = {BUDGET_USD}\n"
            )
            main_env = base | {"OTEL_SERVICE_NAME": SERVICE, "OTEL_MIGRATION_CONFIG": str(config_file)}
            main_env |= {"ANTHROPIC_OPEN_TELEMETRY": "false"}
            with (
                (workdir / "main.log").open("w") as stderr,
                subprocess.Popen(
                    [sys.executable, "-m", "tests.e2e.test_dashboards", "main"],
                    env=main_env,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                ) as main,
            ):
                assert main.stdin is not None and main.stdout is not None
                lines: queue.Queue[str] = queue.Queue()
                reader = threading.Thread(
                    target=lambda: [lines.put(x) for x in iter(main.stdout.readline, "")]
                )
                reader.start()
                for number in range(1, len(PHASES) + 1):
                    try:
                        line = lines.get(timeout=120)
                    except queue.Empty:
                        main.kill()
                        raise
                    log = (workdir / "main.log").read_text()
                    assert line.startswith(f"PHASE {number} "), line + log
                    sim.facts.append(json.loads(line.split(" ", 2)[2]))
                    requests = _expected_requests(PHASES[:number])

                    def settled(requests: int = requests) -> bool:
                        app, own = http_get(app_url)[1], http_get(own_url)[1]
                        accepted = _total(own, "otelcol_receiver_accepted_spans")
                        done = _total(own, "otelcol_exporter_sent_spans") + _total(
                            own, "otelcol_exporter_send_failed_spans"
                        )
                        return _total(app, "migration_requests_total", job=SERVICE) == requests and (
                            accepted > 0 and done == accepted
                        )

                    wait_until(settled, 60, f"phase {number} in the collector")
                    wait_until(
                        lambda requests=requests: _fleet_settled(app_url, requests),
                        60,
                        f"phase {number} in the fleet's figures",
                    )
                    ops_minute = run_ops() if number == len(PHASES) else None
                    sim.app.append(http_get(app_url)[1])
                    sim.own.append(http_get(own_url)[1])
                    if ops_minute is not None:
                        # The fleet judges the minute before the current one: the planted surge.
                        assert time.time() // 60 == ops_minute, "the operations' minute ended: rerun"
                    if number == 1:
                        sim.backend_spans = len(backend.spans())
                        backend.behaviour = "reject"  # phase 2: the trace backend refuses everything
                    main.stdin.write("next\n")
                    main.stdin.flush()
                assert main.wait(60) == 0, (workdir / "main.log").read_text()
                reader.join(10)
        finally:
            collector.stop()
    return sim


def _debug() -> None:
    """python -m tests.e2e.test_dashboards debug DIR: run the simulation and keep what it produced."""
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    sim = run_simulation(out)
    for number, (app, own) in enumerate(zip(sim.app, sim.own, strict=True), start=1):
        (out / f"app-{number}.txt").write_text(app)
        (out / f"own-{number}.txt").write_text(own)
    (out / "facts.json").write_text(
        json.dumps({"facts": sim.facts, "edge": sim.edge, "backend": sim.backend_spans})
    )


# -- replaying the expositions to Prometheus at known times --------------------------------------------
_CUMULATIVE = ("counter", "histogram", "summary")


def _families(text: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def _family(sample: str, types: Mapping[str, str]) -> str:
    name = sample.split("{", 1)[0].split(" ", 1)[0]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name.removesuffix(suffix)) in ("histogram", "summary"):
            return name.removesuffix(suffix)
    return name


def at_zero(text: str) -> str:
    """The cumulative series of an exposition at 0 (gauges left out): how each series started."""
    types, lines = _families(text), []
    for line in text.splitlines():
        if line.startswith("#"):
            lines.append(line)
        elif line.strip() and types.get(_family(line, types)) in _CUMULATIVE:
            lines.append(f"{line.rsplit(' ', 1)[0]} 0")
    return "\n".join(lines) + "\n"


def stamped(text: str, millis: int) -> str:
    """Every sample of an exposition with an explicit timestamp."""
    lines = [
        line if line.startswith("#") or not line.strip() else f"{line} {millis}" for line in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


class Replay:
    """Serves /app and /own, one snapshot at a time, moving on once Prometheus has scraped both."""

    def __init__(self, snapshots: Mapping[str, list[str]]) -> None:
        self.snapshots = snapshots
        self.index = 0
        self.scraped: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.strip("/")
                with replay.lock:
                    if path not in replay.snapshots:
                        self.send_error(404)
                        return
                    body = replay.snapshots[path][replay.index].encode()
                    replay.scraped.add((path, replay.index))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def play(self, timeout: float) -> None:
        """Serve every snapshot in turn, each until both paths were scraped."""
        count = len(next(iter(self.snapshots.values())))
        for index in range(count):
            with self.lock:
                self.index = index
            wait_until(
                lambda index=index: all((p, index) in self.scraped for p in self.snapshots),
                timeout,
                f"Prometheus to scrape snapshot {index}",
            )

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


COLLECTOR_JOB = "otelcol"  # the scrape job of the collector's own metrics
PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: otel-collector
    honor_labels: true   # job = the service name the collector's exporter writes
    metrics_path: /app
    static_configs: [{{targets: ["{target}"]}}]
  - job_name: {collector_job}
    metrics_path: /own
    static_configs: [{{targets: ["{target}"]}}]
"""


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        status, body = http_get(f"{self.url}/api/v1/query?{params}", timeout=30)
        assert status == 200, f"{expr}\n{body}"
        data = json.loads(body)["data"]
        assert data["resultType"] == "vector", expr
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        status, body = http_get(f"{self.url}/api/v1/query_range?{params}", timeout=30)
        assert status == 200, f"{expr}\n{body}"
        return list(json.loads(body)["data"]["result"])


@contextlib.contextmanager
def prometheus_over(workdir: Path, replay: Replay) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install the Debian package 'prometheus' (make test does)"
    config = workdir / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(target=replay.address, collector_job=COLLECTOR_JOB))
    port = free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = Process("prometheus", args, {}, workdir / "prometheus.log")
    process.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, 60, "Prometheus", process)
        yield Prometheus(url)
    finally:
        process.stop()


# -- what every panel must show ------------------------------------------------------------------------
@dataclass(frozen=True)
class Within:
    """An expected value known to a bound (an estimate): ``low <= value <= high``."""

    low: float
    high: float


def near(value: float, relative: float) -> Within:
    return Within(value * (1 - relative), value * (1 + relative))


Labels = frozenset[tuple[str, str]]
Expected = dict[Labels, float | Within]
WINDOW_S = 180  # $__range and $__rate_interval: from the zero sample's minute to the last phase's
CPU_TICK_S = 0.01  # the kernel counts a process's CPU time in clock ticks (USER_HZ = 100)
POSITIVE = math.inf  # stands for "any value above 0": a collector figure the simulation does not fix
SKETCH_ERROR = 3 * 1.04 / math.sqrt(4096)  # 3 standard errors of a precision-12 HyperLogLog (3 x 1.6 %)
HISTOGRAM_ERROR = 0.0055  # a percentile from a scale-6 exponential histogram (docs/fleet.md)
STAGES = (("replaced", 0.95), ("adopted", 0.5), ("low", 0.01), ("not_started", 0.0))

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5)
DURATION_BUCKETS += (7.5, 10, 30, 60, 120, math.inf)


def labels(**found: str) -> Labels:
    return frozenset(found.items())


def _by_version(counts: Mapping[str, float], scale: float = 1.0) -> Expected:
    return {labels(migration_version=v): n * scale for v, n in counts.items()}


def expectations(sim: Simulation) -> dict[tuple[str, str, str], Expected]:
    """(dashboard, panel title, refId) -> the series and values the query must return at the last phase."""
    prices = PriceTable.load()
    requests: dict[str, int] = {}
    errors: dict[tuple[str, str], int] = {}
    durations: dict[tuple[str, str], list[float]] = {}  # (operation, version) -> bucket upper bounds
    for phase in PHASES:
        for version, (users, failing) in phase.charge.items():
            requests[version] = requests.get(version, 0) + len(users)
            category = "network" if version == "1.0" else "timeout"
            errors[(version, category)] = errors.get((version, category), 0) + len(failing)
            durations.setdefault(("charge", version), []).extend(
                [0.25 if version == "1.0" else 0.5] * len(users)
            )
        for version, *_ in phase.llm:
            requests[version] = requests.get(version, 0) + 1
            durations.setdefault(("summarize", version), []).append(1.0 if version == "1.0" else 2.5)
    cost: dict[tuple[str, str, str], float] = {}  # (model, version, tier)
    tokens = {"input": 0, "output": 0}
    cached: dict[tuple[str, str], list[int]] = {}  # (model, version) -> [cache-read, input] tokens
    calls = [(v, m, i, o, c) for p in PHASES for v, m, i, o, c in p.llm]
    calls += [("2.0", STREAMED, *STREAM_TOKENS) for p in PHASES if p.stream]
    operation_tokens = {
        v: dict.fromkeys(("input", "output", "cache_read", "cache_write"), 0) for v in ("1.0", "2.0")
    }
    for version, model, tokens_in, tokens_out, cached_in in calls:
        counted = operation_tokens[version]
        counted["input"] += tokens_in
        counted["output"] += tokens_out
        counted["cache_read"] += cached_in
        price = prices.lookup(model)
        assert price is not None, model
        key = (model, version, TIERS[model])
        cost[key] = cost.get(key, 0.0) + price.cost(
            input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=cached_in
        )
        tokens["input"] += tokens_in
        tokens["output"] += tokens_out
        read_and_input = cached.setdefault((model, version), [0, 0])
        read_and_input[0] += cached_in
        read_and_input[1] += tokens_in

    def per(pairs: Iterable[tuple[tuple[str, ...], float]], *names: str, scale: float = 1.0) -> Expected:
        """Values summed per label set (several keys can share one)."""
        found: Expected = {}
        for key, value in pairs:
            label = labels(**dict(zip(names, key, strict=True)))
            found[label] = found.get(label, 0.0) + value * scale
        return found

    def listed(pairs: list[tuple[str, Any]]) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for version, value in pairs:
            found.setdefault(version, []).append(value)
        return found

    scores = listed([pair for p in PHASES for pair in p.scores])
    nps = listed([pair for p in PHASES for pair in p.nps])
    csat = listed([pair for p in PHASES for pair in p.csat])
    confidence = listed([pair for p in PHASES for pair in p.confidence])
    actions = [pair for p in PHASES for pair in p.actions]
    upgrades = [v for p in PHASES for v in p.upgrades]
    tier = {"1.0": "sonnet", "2.0": "haiku"}
    last = sim.facts[-1]
    process_cpu = {op: state for op, metric, _, state in last["verdicts"] if metric == "cpu"}
    assert process_cpu["charge"] == "inconclusive", process_cpu
    heat = {  # cumulative calls per bucket of migration.duration (docs/telemetry.md's bucket advice)
        labels(le=_le(bound)): sum(upper <= bound for uppers in durations.values() for upper in uppers)
        for bound in DURATION_BUCKETS
    }
    # The fleet's percentiles: the process's own (the same successful calls) within the merged
    # exponential histogram's 0.55 %; the improvement follows from them.
    latency = {
        (op, v): dict(zip(("p50", "p95", "p99", "mean"), xs, strict=True)) for op, v, *xs in last["latency"]
    }

    def percentile(stat: str) -> Expected:
        return {
            labels(migration_operation=op, migration_version=v): near(x[stat], HISTOGRAM_ERROR)
            for (op, v), x in latency.items()
        }

    def improvement(op: str, candidate: str, stat: str) -> Within:
        control = next(v for o, v, *_ in last["latency"] if o == op and v != candidate)
        c, k = latency[(op, control)][stat], latency[(op, candidate)][stat]
        e = HISTOGRAM_ERROR if stat != "mean" else 1e-9
        return Within(100 * (1 - k * (1 + e) / (c * (1 - e))), 100 * (1 - k * (1 - e) / (c * (1 + e))))

    successes: dict[tuple[str, str], int] = {}  # (operation, version) -> successful calls
    for phase in PHASES:
        for version, (ids, failing) in phase.charge.items():
            successes[("charge", version)] = successes.get(("charge", version), 0) + len(ids) - len(failing)
        for version, *_ in phase.llm:
            successes[("summarize", version)] = successes.get(("summarize", version), 0) + 1
    assert successes[("charge", "2.0")] >= MIN_SAMPLES, "2.0's charge latency must be judged"

    # Truth of the sketches: the distinct users of each version, and those who met an error.
    users: dict[str, set[str]] = {}
    failed: dict[str, set[str]] = {}
    for phase in PHASES:
        for version, (ids, failing) in phase.charge.items():
            users.setdefault(version, set()).update(f"u{n}" for n in ids)
            failed.setdefault(version, set()).update(f"u{n}" for n in failing)
        for version, *_ in phase.llm:
            users.setdefault(version, set()).add("u0")
    everyone = set().union(*users.values())
    adoption = sum(1 for u in everyone if any(u in users[v] for v in users if v != "1.0")) / len(everyone)
    # The component's default stage thresholds (those of AnalyticsSettings): 0.01, 0.5 and 0.95.
    stage = next(name for name, low in STAGES if adoption >= low)

    total_cost = sum(cost.values())
    spans_main = sum(len(users) for p in PHASES for users, _ in p.charge.values())
    spans_main += sum(2 * len(p.llm) + p.stream for p in PHASES)  # summarize, its LLM call, the stream
    phase_1_spans = sum(len(users) for users, _ in PHASES[0].charge.values()) + 2 * len(PHASES[0].llm)
    m, llm, pipe = "migration.json", "llm.json", "pipeline-health.json"
    return {
        (m, "Usage split by version", "A"): _by_version(requests),
        (m, "Requests per version", "A"): _by_version(requests, 1 / WINDOW_S),
        (m, "Error rate per version", "A"): {
            labels(migration_version=v): sum(n for (ev, _), n in errors.items() if ev == v) / requests[v]
            for v in requests
        },
        (m, "Latency heatmap", "A"): heat,
        **{
            (m, "Latency p50 / p95 / p99 per version and operation", ref): percentile(stat)
            for ref, stat in (("A", "p50"), ("B", "p95"), ("C", "p99"))
        },
        (m, "Improvement of the candidate", "A"): {
            labels(migration_operation=op, migration_version=v, migration_statistic=stat): improvement(
                op, v, stat
            )
            for op, v, *_ in last["improvements"]
            if min(successes[(op, "1.0")], successes[(op, v)]) >= MIN_SAMPLES  # as the fleet requires
            for stat in ("mean", "p50", "p95")
        },
        (m, "Adoption (24 h)", "A"): {labels(migration_name=MIGRATION): near(adoption, SKETCH_ERROR)},
        (m, "Adoption ratio over time", "A"): {
            labels(migration_name=MIGRATION, migration_window=w): near(adoption, SKETCH_ERROR)
            for w in ("1h", "24h")
        },
        # The gauge exports the HyperLogLog estimate rounded to whole users.
        (m, "Unique users per version (24 h)", "A"): {
            labels(migration_version=v): Within(
                round(len(ids) * (1 - SKETCH_ERROR)), round(len(ids) * (1 + SKETCH_ERROR))
            )
            for v, ids in users.items()
        },
        (m, "Adoption stage", "A"): {labels(migration_name=MIGRATION, migration_adoption_stage=stage): 1},
        (m, "Error-free users (24 h)", "A"): {
            labels(migration_version=v): Within(
                1 - len(failed[v]) * (1 + SKETCH_ERROR) / (len(ids) * (1 - SKETCH_ERROR)),
                1 - len(failed[v]) * (1 - SKETCH_ERROR) / (len(ids) * (1 + SKETCH_ERROR)),
            )
            for v, ids in users.items()
        },
        (m, "Processes in the fleet figures", "A"): {labels(job=SERVICE): 1},
        (m, "Rollout percent", "A"): {labels(migration_name=MIGRATION): PHASES[-1].percent},
        (m, "Rollbacks", "A"): {labels(migration_name=MIGRATION): sum(p.rollback for p in PHASES)},
        (m, "Rollbacks", "B"): {labels(migration_name=MIGRATION): 0},
        # Not tested yet: the fleet tests the users' split once one percent has held for an hour.
        (m, "Rollbacks", "C"): {},
        # The fleet judges what the process judges: 2.0's charge latency is worse; CPU (measured by
        # default; both versions burn the same) inconclusive, as the process decided it on the same
        # calls; the rest undecided.
        (m, "Verdicts", "A"): {
            labels(
                migration_name=MIGRATION, migration_operation=op, migration_version=v, migration_metric=metric
            ): -1 if (op, metric) == ("charge", "latency") else 0
            for op, metric, v, state in last["verdicts"]
        },
        (m, "Error categories", "A"): per(errors.items(), "migration_version", "migration_error_category"),
        (llm, "Cost by tier", "A"): per((((t,), c) for (_, _, t), c in cost.items()), "migration_llm_tier"),
        (llm, "Cost by model and version", "A"): per(
            (((model, v), c) for (model, v, _), c in cost.items()),
            "gen_ai_request_model",
            "migration_version",
        ),
        (llm, "Daily spend against budget", "A"): {
            labels(job=SERVICE, migration_budget="llm-daily"): total_cost / BUDGET_USD
        },
        (llm, "Cost per hour by version", "A"): per(
            (((v,), c) for (_, v, _), c in cost.items()), "migration_version", scale=3600 / WINDOW_S
        ),
        (llm, "Tokens per second", "A"): {
            labels(gen_ai_token_type=t): n / WINDOW_S for t, n in tokens.items()
        },
        # Sonnet 1.0: 0 of 2000; Haiku 2.0: 200 of 1200; the stream (Anthropic's usage, normalised by
        # the instrumentation): 36 of 12 + 36.
        (llm, "Prompt-cache hit rate", "A"): {
            labels(gen_ai_request_model=model, migration_version=v): read / total
            for (model, v), (read, total) in cached.items()
        },
        (llm, "Time to first token", "A"): {labels(gen_ai_request_model=STREAMED): 0.32 + 0.32 * 0.5},
        (llm, "Time to first token", "B"): {labels(gen_ai_request_model=STREAMED): 0.32 + 0.32 * 0.95},
        (llm, "Calls per tier", "A"): per(
            (((TIERS[model], "ok"), 1) for _, model, *_ in calls),
            "migration_llm_tier",
            "migration_outcome",
        ),
        (llm, "Quality score bands", "A"): {
            labels(migration_version=v): sum(s < 50 for s in ss) for v, ss in scores.items()
        },
        (llm, "Quality score bands", "B"): {
            labels(migration_version=v): sum(50 <= s < 70 for s in ss) for v, ss in scores.items()
        },
        (llm, "Quality score bands", "C"): {
            labels(migration_version=v): sum(70 <= s < 90 for s in ss) for v, ss in scores.items()
        },
        (llm, "Quality score bands", "D"): {
            labels(migration_version=v): sum(s >= 90 for s in ss) for v, ss in scores.items()
        },
        (llm, "Mean quality score by version", "A"): {
            labels(migration_version=v): sum(ss) / len(ss) for v, ss in scores.items()
        },
        (llm, "User actions", "A"): per(
            ((pair, 1) for pair in actions),
            "migration_version",
            "migration_quality_action",
        ),
        (llm, "NPS by version", "A"): {
            labels(migration_version=v): 100 * (sum(r >= 9 for r in rs) - sum(r <= 6 for r in rs)) / len(rs)
            for v, rs in nps.items()
        },
        (llm, "CSAT by version", "A"): {
            labels(migration_version=v): sum(r >= 4 for r in rs) / len(rs) for v, rs in csat.items()
        },
        (llm, "Mean confidence", "A"): {
            labels(migration_version=v, migration_llm_tier=tier[v]): sum(cs) / len(cs)
            for v, cs in confidence.items()
        },
        (llm, "Model upgrades", "A"): {
            labels(migration_version=v, migration_llm_tier=tier[v]): upgrades.count(v) for v in set(upgrades)
        },
        (pipe, "Dropped calls", "A"): {
            labels(job=EDGE, reason="queue_full"): sim.edge["dropped"],
            labels(job=SERVICE, reason="queue_full"): 0,
        },
        (pipe, "Failed span exports (SDK)", "A"): {
            labels(job=EDGE, exporter="OTLPSpanExporter"): EDGE_CALLS,
            labels(job=SERVICE, exporter="OTLPSpanExporter"): 0,
        },
        (pipe, "Failed span exports (SDK)", "B"): {
            labels(job=EDGE, error_type="_InactiveRpcError"): EDGE_CALLS
        },
        (pipe, "SDK span queue", "A"): {labels(job=EDGE): 0, labels(job=SERVICE): 0},
        (pipe, "SDK span queue", "B"): {labels(job=EDGE): 2048, labels(job=SERVICE): 2048},
        (pipe, "Collector: received", "A"): {labels(receiver="otlp"): spans_main / WINDOW_S},
        (pipe, "Collector: received", "B"): {labels(receiver="otlp"): 0},
        (pipe, "Collector: received", "C"): {labels(receiver="otlp"): POSITIVE},
        (pipe, "Collector: received", "D"): {labels(receiver="otlp"): 0},
        (pipe, "Collector: received", "E"): {labels(receiver="otlp"): 0},
        (pipe, "Collector: exported", "A"): {labels(exporter="otlp_grpc/jaeger"): phase_1_spans / WINDOW_S},
        (pipe, "Collector: exported", "B"): {
            labels(exporter="otlp_grpc/jaeger"): (spans_main - phase_1_spans) / WINDOW_S
        },
        (pipe, "Collector: exported", "C"): {labels(exporter="prometheus"): POSITIVE},
        (pipe, "Collector: export queue", "A"): {labels(exporter="otlp_grpc/jaeger"): 0},
        (pipe, "Collector: export queue", "B"): {labels(exporter="otlp_grpc/jaeger"): 50000},
        (pipe, "Collector: memory", "A"): {labels(job=COLLECTOR_JOB): POSITIVE},
        (pipe, "Call queue (SDK)", "A"): {labels(job=EDGE): 0, labels(job=SERVICE): 0},
        # What psutil read at the export, bounded by what each process read just before and after it.
        (pipe, "Service processes: CPU", "A"): {
            labels(job=job): Within(before["cpu"] / WINDOW_S, (after["cpu"] + CPU_TICK_S) / WINDOW_S)
            for job, (before, after) in ((EDGE, sim.edge["process"]), (SERVICE, last["process"]))
        },
        (pipe, "Service processes: memory", "A"): {
            labels(job=job): Within(0.9 * min(rss), 1.1 * max(rss))
            for job, rss in (
                (EDGE, [usage["rss"] for usage in sim.edge["process"]]),
                (SERVICE, [usage["rss"] for usage in last["process"]]),
            )
        },
        (llm, "Tokens by version and operation", "A"): {
            labels(migration_version=v, migration_operation="summarize", gen_ai_token_type=kind): n
            for v, kinds in operation_tokens.items()
            for kind, n in kinds.items()
        },
    } | ops_expectations(sim)


VERDICT_VALUES = {"better": 1, "worse": -1, "inconclusive": 0, "no_data": 0}


def _bucket_quantile(value: float, quantile: float) -> float:
    """What histogram_quantile gives when every observation lies in the bucket of ``value``."""
    upper = next(bound for bound in DURATION_BUCKETS if value <= bound)
    lower = max([0.0, *(bound for bound in DURATION_BUCKETS if bound < value)])
    return lower + (upper - lower) * quantile


def _robust_z(baseline: list[float], value: float, floor: float) -> float:
    """docs/health.md: (x - median) / max(1.4826 * MAD, floor)."""
    ordered = sorted(baseline)
    median = statistics.median(ordered)
    mad = statistics.median(abs(x - median) for x in ordered)
    return (value - median) / max(1.4826 * mad, floor)


def _health(calls: int, errors: int, slow: int) -> dict[str, float]:
    """docs/health.md's formula over 5 minutes as the fleet computes it, with no saturation and no
    telemetry loss (as planted): its slow share is of the successful calls (the state's durations)."""
    settings = OPS_ANALYTICS
    return {
        "errors": 1 - min(1.0, errors / calls / settings["error_budget"]),
        "latency": 1 - min(1.0, slow / (calls - errors) / settings["latency_budget"]),
        "saturation": 1.0,
        "telemetry_loss": 1.0,
    }


def ops_expectations(sim: Simulation) -> dict[tuple[str, str, str], Expected]:
    """The operations dashboard, from the operations service's known workload (simulate_ops)."""
    o = "operations.json"
    finished = [(op, v) for op in ("render", "cache", "stream", "sync", "assist") for v in ("1.0", "2.0")]

    def calls(**values: float | Within) -> Expected:
        """Every finished (operation, version): the value given as ``<op>_<version>``, else ``other``."""
        return {
            labels(migration_operation=op, migration_version=v): values.get(
                f"{op}_{v.replace('.', '_')}", values["other"]
            )
            for op, v in finished
        }

    # Real calls per version (all in the minute after the planted history): (calls, errors, slow).
    slo = OPS_ANALYTICS["latency_slo_s"]
    real = {
        v: [
            RENDER_CALLS + CACHE_CALLS + STREAM_RUNS + sum(1 for ev, *_ in EVENTS if ev == v) + AGENT_RUNS[v],
            0,
            STREAM_RUNS if STREAMS[v][1] > slo else 0,
        ]
        for v in ("1.0", "2.0")
    }
    real["2.0"][0] += SYNC_TIMEOUTS
    real["2.0"][1] += SYNC_TIMEOUTS
    # 1.0's 5-minute window also holds the last three baseline minutes and the surge.
    last_baseline = range(PLANTED_MINUTES - 3, PLANTED_MINUTES)
    window = {
        "1.0": (
            real["1.0"][0] + 3 * BASELINE_CALLS + SURGE_CALLS,
            real["1.0"][1] + sum(planted_errors(k) for k in last_baseline) + SURGE_ERRORS,
            real["1.0"][2],
        ),
        "2.0": tuple(real["2.0"]),
    }
    factors = {v: _health(*counts) for v, counts in window.items()}
    weights = {"errors": 0.40, "latency": 0.30, "saturation": 0.15, "telemetry_loss": 0.15}
    baseline_rates = [planted_errors(k) / BASELINE_CALLS for k in range(PLANTED_MINUTES)]
    rate_median = statistics.median(baseline_rates)
    p = min(max(rate_median, 1 / SURGE_CALLS), 0.5)
    error_z = _robust_z(baseline_rates, SURGE_ERRORS / SURGE_CALLS, math.sqrt(p * (1 - p) / SURGE_CALLS))
    # The fleet's CPU verdicts: where either version measured CPU, as the process judges them (the
    # operations the process judged), and render's 2.0, which sleeps where 1.0 burns, leaner.
    cpu_verdicts = {(op, v): state for op, metric, v, state in sim.ops["verdicts"] if metric == "cpu"}
    assert cpu_verdicts[("render", "2.0")] == "better", cpu_verdicts  # the process judges it too
    retained = CACHE_CALLS * RETAINED_BYTES
    agent_tokens = {
        "2.0": {
            "input": AGENT_USAGE[0] + FINAL_TURN["2.0"][1],
            "output": AGENT_USAGE[1] + FINAL_TURN["2.0"][2],
        },
        "1.0": {"input": FINAL_TURN["1.0"][1], "output": FINAL_TURN["1.0"][2]},
    }
    stream_quantiles: dict[tuple[str, str], Expected] = {
        (title, ref): {
            labels(migration_operation="stream", migration_version=v): _bucket_quantile(
                STREAMS[v][which], quantile
            )
            for v in STREAMS
        }
        for title, which in (("Stream: time to first item", 0), ("Stream: duration", 1))
        for ref, quantile in (("A", 0.5), ("B", 0.95))
    }
    events: dict[tuple[str, str], int] = {}
    for v, name, count in EVENTS:
        events[(name, v)] = events.get((name, v), 0) + count
    return {
        # CPU-bound: at least the CPU it burns; sleep-bound: under a tenth of that (the ratio the issue asks).
        (o, "CPU time per call", "A"): calls(
            render_1_0=Within(RENDER_CPU_S, 1.2 * RENDER_CPU_S),
            render_2_0=Within(0.0, RENDER_CPU_S / 10),
            other=Within(0.0, 1.0),
        ),
        # A CPU-bound call's share of the wall clock is the share of a core the host gave it (under a load
        # of 8 on 2 cores, 0.44 was seen): at least a tenth; a sleep-bound one's stays under a tenth.
        (o, "CPU share of wall time", "A"): calls(
            render_1_0=Within(0.1, 1.01), render_2_0=Within(0.0, 0.1), other=Within(0.0, 1.01)
        ),
        (o, "CPU verdict", "A"): {
            labels(migration_operation=op, migration_version=v): 1 if op == "render" else 0
            for op, v in cpu_verdicts
        },
        (o, "Memory retained by calls (opt-in)", "A"): calls(
            cache_2_0=Within(retained - RETAINED_NOISE, retained + RETAINED_NOISE),
            other=Within(-RETAINED_NOISE, RETAINED_NOISE),
        ),
        (o, "Calls in flight", "A"): calls(other=0)
        | {labels(migration_operation="wait", migration_version="2.0"): IN_FLIGHT},
        (o, "Calls in flight", "B"): {
            labels(gen_ai_request_model=model, migration_version=v): 0
            for v, model in (
                ("2.0", AGENT_MODEL),
                ("2.0", FINAL_TURN["2.0"][0]),
                ("1.0", FINAL_TURN["1.0"][0]),
            )
        },
        **{(o, title, ref): values for (title, ref), values in stream_quantiles.items()},
        (o, "Tool runs", "A"): {
            labels(gen_ai_tool_name=name, migration_version="2.0", migration_outcome=outcome): AGENT_RUNS[
                "2.0"
            ]
            for name, outcome in zip(AGENT_TOOLS, ("ok", "error"), strict=True)
        },
        (o, "Tool calls the model asked for", "A"): {
            labels(
                gen_ai_tool_name=name, gen_ai_request_model=AGENT_MODEL, migration_version="2.0"
            ): AGENT_RUNS["2.0"]
            for name in AGENT_TOOLS
        },
        (o, "Agent loops", "A"): {
            labels(gen_ai_agent_name=AGENT, migration_version="2.0", migration_outcome="ok"): AGENT_RUNS[
                "2.0"
            ],
            labels(gen_ai_agent_name=AGENT, migration_version="1.0", migration_outcome="error"): AGENT_RUNS[
                "1.0"
            ],
        },
        (o, "Model turns per agent loop", "A"): {
            labels(gen_ai_agent_name=AGENT, migration_version="2.0"): 2,
            labels(gen_ai_agent_name=AGENT, migration_version="1.0"): 1,
        },
        (o, "Tool calls per agent loop", "A"): {
            labels(gen_ai_agent_name=AGENT, migration_version=v, migration_tool_source=source): (
                len(AGENT_TOOLS) if v == "2.0" else 0
            )
            for v in AGENT_RUNS
            for source in ("executed", "requested")
        },
        (o, "Tokens per agent loop", "A"): {
            labels(gen_ai_agent_name=AGENT, migration_version=v, gen_ai_token_type=kind): n
            for v, kinds in agent_tokens.items()
            for kind, n in kinds.items()
        },
        (o, "Events by name and version", "A"): {
            labels(migration_event_name=name, migration_version=v): n for (name, v), n in events.items()
        },
        (o, "Events per second", "A"): {
            labels(migration_event_name=name, migration_version=v): n / WINDOW_S
            for (name, v), n in events.items()
        },
        (o, "Health score", "A"): {
            labels(migration_version=v): 100 * sum(weights[k] * f[k] for k in weights)
            for v, f in factors.items()
        },
        (o, "Health inputs", "A"): {
            labels(migration_version=v, migration_health_input=k): value
            for v, f in factors.items()
            for k, value in f.items()
        },
        # 1.0's planted network errors rise minute after minute; 2.0's timeouts have no history yet.
        (o, "Error trend", "A"): {
            labels(migration_version="1.0", migration_error_category="network"): 1,
            labels(migration_version="2.0", migration_error_category="timeout"): 0,
        },
        # 1.0's planted surge is an anomaly of the request rate only; 2.0 has no complete minute yet.
        (o, "Anomalies", "A"): {
            labels(migration_version=v, migration_metric=metric): int((v, metric) == ("1.0", "request_rate"))
            for v in ("1.0", "2.0")
            for metric in ("request_rate", "error_rate", "latency")
        },
        (o, "Anomaly z-score", "A"): {
            labels(migration_version="1.0", migration_metric="request_rate"): (SURGE_CALLS - BASELINE_CALLS)
            / math.sqrt(BASELINE_CALLS),
            labels(migration_version="1.0", migration_metric="error_rate"): error_z,
            labels(migration_version="1.0", migration_metric="latency"): 0,
        },
        (o, "Memory leak", "A"): {labels(job=OPS): 1},
        (o, "Memory floor growth", "A"): {labels(job=OPS): LEAK_SLOPE},
        (o, "Time to memory limit", "A"): {labels(job=OPS): 3600},
    }


def _le(bound: float) -> str:
    """A bucket bound as the exporter writes it (Go's strconv.FormatFloat 'g' with shortest precision)."""
    return "+Inf" if bound == math.inf else repr(float(bound)).removesuffix(".0")


def targets() -> Iterator[tuple[str, str, str, str]]:
    """(dashboard, panel title, refId, expr) of every query of the committed dashboards."""
    for path in sorted((ROOT / "collector_config" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["refId"], target["expr"]


def substitute(expr: str, *, service: str, migration: str, collector: str) -> str:
    """The query Grafana sends for that selection (multi-value regex selections as Grafana writes them)."""
    window = f"{WINDOW_S}s"
    for name, value in (
        ("$__rate_interval", window),
        ("$__range", window),
        ("$service", service),
        ("$migration", migration),
        ("$collector", collector),
    ):
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def _selection(dashboard: str) -> dict[str, str]:
    service = {"pipeline-health.json": f"({SERVICE}|{EDGE})", "operations.json": OPS}.get(dashboard, SERVICE)
    return {"service": service, "migration": MIGRATION, "collector": COLLECTOR_JOB}


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    return run_simulation(tmp_path_factory.mktemp("simulation"))


@pytest.fixture(scope="module")
def prometheus(
    simulation: Simulation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, list[float]]]:
    last = (int(time.time()) - 60) * 1000
    times = [last - 60_000 * (len(simulation.app) - i) for i in range(len(simulation.app) + 1)]
    snapshots = {
        name: [stamped(at_zero(texts[-1]), times[0])]
        + [stamped(text, t) for text, t in zip(texts, times[1:], strict=True)]
        for name, texts in (("app", simulation.app), ("own", simulation.own))
    }
    with Replay(snapshots) as replay, prometheus_over(tmp_path_factory.mktemp("prometheus"), replay) as prom:
        replay.play(timeout=60)
        at = [t / 1000 for t in times]

        def ingested() -> bool:
            newest = [
                prom.query(f"max(timestamp({name}))", at[-1])
                for name in ("migration_requests_total", "otelcol_process_uptime")
            ]
            return all(found and float(found[0]["value"][1]) == at[-1] for found in newest)

        wait_until(ingested, 30, "the last snapshot in Prometheus")
        yield prom, at


def _result(found: list[dict[str, Any]]) -> Expected:
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in found}


def test_every_panel_query_returns_the_simulated_figures(
    simulation: Simulation, prometheus: tuple[Prometheus, list[float]]
) -> None:
    prom, at = prometheus
    expected = expectations(simulation)
    seen, problems = set(), []
    for dashboard, title, ref, expr in targets():
        key = (dashboard, title, ref)
        seen.add(key)
        if key not in expected:
            problems.append(f"{key}: no expectation for this query")
            continue
        got = _result(prom.query(substitute(expr, **_selection(dashboard)), at[-1]))
        want = expected[key]
        if set(got) != set(want):
            problems.append(f"{key}: series {sorted(map(sorted, got))} != {sorted(map(sorted, want))}")
            continue
        for series, value in want.items():
            if isinstance(value, Within):
                matches = value.low - 1e-12 <= got[series] <= value.high + 1e-12
            elif value == POSITIVE:
                matches = got[series] > 0
            else:
                matches = got[series] == pytest.approx(value, rel=1e-9, abs=1e-12)
            if not matches:
                problems.append(f"{key} {sorted(series)}: {got[series]!r} != {value!r}")
    assert not problems, "\n".join(problems)
    assert seen == set(expected), f"expectations without a query: {set(expected) - seen}"


def test_the_variables_filter_every_query(
    simulation: Simulation, prometheus: tuple[Prometheus, list[float]]
) -> None:
    prom, at = prometheus
    expected = expectations(simulation)
    for dashboard, title, ref, expr in targets():
        selection = _selection(dashboard)
        uses = [name for name in ("service", "migration", "collector") if f"${name}" in expr]
        assert uses in (["service", "migration"], ["collector"]), (title, ref, expr)
        # A query the simulation cannot feed (expected empty) is checked for that in the test above.
        assert prom.query(substitute(expr, **selection), at[-1]) or expected[(dashboard, title, ref)] == {}
        for name in uses:
            other = selection | {name: "no-such-" + name}
            assert prom.query(substitute(expr, **other), at[-1]) == [], (title, ref, name)


def test_adoption_over_time_follows_the_phases(
    simulation: Simulation, prometheus: tuple[Prometheus, list[float]]
) -> None:
    """The ratio panel over time: each phase's value at its minute, as the fleet merged it."""
    prom, at = prometheus
    (expr,) = [e for _, title, _, e in targets() if title == "Adoption ratio over time"]
    found = prom.query_range(substitute(expr, **_selection("migration.json")), at[1], at[-1], 60)
    series = {r["metric"]["migration_window"]: [float(v) for _, v in r["values"]] for r in found}
    # Truth: 2 of 10 users on 2.0, then 7 of 10 (merged HyperLogLog sketches: within 3 x 1.6 %).
    assert set(series) == {"1h", "24h"}
    for window, values in series.items():
        assert values == [pytest.approx(t, rel=SKETCH_ERROR) for t in (0.2, 0.7)], (window, values)
    # The process's own estimates agree.
    assert [round(f["ratio_24h"], 2) for f in simulation.facts] == [0.2, 0.7]
    assert {v: round(n) for v, n in simulation.facts[-1]["users_24h"].items()} == {"1.0": 8, "2.0": 7}


# -- a picture of each dashboard (no Grafana here): its grid, titles and the figures Prometheus returned --
def _legend(fmt: str, metric: Mapping[str, str]) -> str:
    if not fmt or fmt == "__auto":
        return ", ".join(f"{k}={v}" for k, v in sorted(metric.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m[1], ""), fmt)


def overview_html(model: Mapping[str, Any], prom: Prometheus, at: float, selection: Mapping[str, str]) -> str:
    import html

    boxes = []
    for panel in model["panels"]:
        grid = panel["gridPos"]
        rows = []
        for target in panel.get("targets", []):
            for found in prom.query(substitute(target["expr"], **selection), at):
                legend = html.escape(_legend(target.get("legendFormat", ""), found["metric"]))
                rows.append(
                    f"<tr class='value'><td>{legend}</td><td>{float(found['value'][1]):.6g}</td></tr>"
                )
        body = html.escape(panel["options"]["content"]) if panel["type"] == "text" else "".join(rows)
        if panel["type"] == "row":  # a heading over the panels below it
            boxes.append(
                f"<header data-type='row' style='grid-column:1/span 24;grid-row:{grid['y'] + 1}'>"
                f"{html.escape(panel['title'])}</header>"
            )
            continue
        boxes.append(
            f"<section data-type='{panel['type']}' style='grid-column:{grid['x'] + 1}/span {grid['w']};"
            f"grid-row:{grid['y'] + 1}/span {grid['h']}'><h2>{html.escape(panel['title'])} "
            f"<small>{panel['type']}</small></h2><table>{body}</table></section>"
        )
    style = (
        "body{font:13px sans-serif;background:#111217;color:#ccccdc;margin:12px}"
        "main{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:30px;gap:6px}"
        "section{background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:6px;overflow:hidden}"
        "h2{font-size:13px;margin:0 0 4px}small{color:#8e8e8e;font-weight:normal}"
        "td{padding:0 8px 0 0}td+td{color:#73bf69;text-align:right}"
        "header{font-size:15px;font-weight:bold;border-bottom:1px solid #2c3235;align-self:end}"
    )
    title = html.escape(model["title"])
    head = f"<!doctype html><title>{title}</title><style>{style}</style><h1>{title}</h1>"
    return f"{head}<main>{''.join(boxes)}</main>"


def test_overview_pictures(prometheus: tuple[Prometheus, list[float]]) -> None:
    """Each dashboard's layout with the simulated figures, as PNGs to look at (test-output/screenshots)."""
    from tests.browser import chromium_page

    prom, at = prometheus
    for path in sorted((ROOT / "collector_config" / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        page_file = ROOT / "test-output" / f"dashboard-{path.stem}.html"
        page_file.parent.mkdir(parents=True, exist_ok=True)
        page_file.write_text(overview_html(model, prom, at[-1], _selection(path.name)))
        with chromium_page(width=1600, height=900) as page:
            page.page.goto(page_file.as_uri())
            empty = page.page.eval_on_selector_all(
                "section:not([data-type=text])", "els => els.filter(e => !e.querySelector('.value')).length"
            )
            page.screenshot(f"dashboard-{path.stem}")
            assert not page.errors
            assert empty == 0, f"{path.name}: {empty} panels without a figure"


if __name__ == "__main__":
    {"main": simulate_main, "edge": simulate_edge, "ops": simulate_ops, "debug": _debug}[sys.argv[1]]()
