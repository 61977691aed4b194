"""Process lifecycle: a shutdown that is re-entrant, final and bounded; flushes bounded; SIGTERM flushes.

The process-wide cases run ``scripts/lifecycle_app.py`` in a subprocess (global providers can be
installed once per process); each asserts what the issue reproduced: a hang, a lazy re-attach
counting every later call as dropped, deadlines that were no deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import otel_migration

from .conftest import Harness
from .otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "scripts" / "lifecycle_app.py"
SIGTERM_APP = ROOT / "tests" / "scripts" / "sigterm_app.py"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**clean, "OTEL_METRIC_EXPORT_INTERVAL": "600000", **(extra or {})}


def _run(
    case: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 60, *args: str
) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(APP), case, *args],
        env=_env(env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- 1. re-entrant, signal-safe shutdown ----------------------------------------------------------
def test_shutdown_from_a_sigterm_handler_never_hangs(tmp_path: Path) -> None:
    """SIGTERM lands while the main thread and another are in snapshot()/force_flush() (6 of 10 hung).

    The handler's shutdown has a 5 s deadline and must keep it. It used the default 30 s, the
    same as this test's timeout: a handler landing inside a lock its shutdown needs waits the
    whole deadline (see the next test), and then the run failed by the timeout, once in 4 runs.
    """
    for _ in range(8):
        found = _run("signal-shutdown", tmp_path, timeout=30)  # a hang: stacks on stderr after 25 s
        assert found["other_alive"] is False
        assert found["handler_s"] < 5 + 2


@pytest.mark.parametrize("inside", ["sdk", "recorder"])
def test_a_handler_landing_inside_a_lock_keeps_the_shutdown_deadline(inside: str, tmp_path: Path) -> None:
    """The handler runs inside ``Event.set()`` of the SDK's span queue, or in our recorder's wake-up.

    The SDK's: the shutdown's helper waits for the lock the interrupted thread holds until the
    deadline (bounded; what made the test above flaky). Our recorder's: ``shutdown`` calls its
    ``stop()`` on the handler's own thread, which wakes the worker too; with a threading.Event
    that was a deadlock, with no deadline; its queue.SimpleQueue takes no lock a handler can hold.
    """
    found = _run("signal-inside-a-lock", tmp_path, None, 30, inside)
    assert found["fired"] is True
    assert found["handler_s"] < 5 + 2


def test_a_drain_re_entered_on_its_own_thread_returns_at_once(harness: Harness) -> None:
    """What a signal handler does: it runs between two bytecodes of a drain holding the lock."""
    re_entered: list[bool] = []

    class Handler:
        def on_call(self, record: object) -> None:
            if not re_entered:
                re_entered.append(harness.telemetry.recorder.drain())
                otel_migration.force_flush(1_000)

    harness.telemetry.recorder.add_listener(Handler())  # type: ignore[arg-type]
    for _ in range(3):
        with otel_migration.versioned("2.0", operation="op"):
            pass
    assert harness.telemetry.recorder.drain() is True
    assert re_entered == [False]
    assert harness.value("migration.requests", migration_operation="op") == 3


def test_shutdown_re_entered_while_a_snapshot_evaluates(harness: Harness) -> None:
    outcomes: list[bool] = []

    class Handler:
        def on_call(self, record: object) -> None:
            if not outcomes:
                outcomes.append(otel_migration.shutdown(2_000))

    harness.telemetry.recorder.add_listener(Handler())  # type: ignore[arg-type]
    with otel_migration.versioned("2.0", operation="op"):
        pass
    otel_migration.snapshot()
    assert len(outcomes) == 1
    assert otel_migration.shutdown() is True  # already off: a second call returns at once


# -- 5. shutdown is final and bounded; flushes are bounded ----------------------------------------
def test_after_shutdown_calls_pass_straight_through(tmp_path: Path) -> None:
    """Our providers stay installed globally: no lazy re-attach to them, nothing counted as dropped."""
    found = _run("after-shutdown", tmp_path)
    assert found == {"active_after": False, "dropped": 0, "queued": 0, "counted": 10}


def test_after_shutdown_in_process(harness: Harness) -> None:
    otel_migration.shutdown()
    with otel_migration.versioned("2.0", operation="later"):
        pass
    assert harness.spans("later") == []
    assert harness.telemetry.recorder.queued == 0
    assert harness.telemetry.recorder.dropped == 0


def test_shutdown_with_16_threads_calling_keeps_its_deadline(tmp_path: Path) -> None:
    found = _run("shutdown-under-load", tmp_path)
    assert found["shutdown_s"] < 5 + 2  # shutdown(5_000); took 57 s before


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_that_never_answers_cannot_stretch_flush_or_shutdown(
    protocol: str, tmp_path: Path
) -> None:
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        receiver.behaviour = "hang"
        found = _run("hung-collector", tmp_path, receiver.env())
        exit_started = time.time()
        exiting = _run("exit-hung", tmp_path, receiver.env())
        exited = time.time()
    assert found["flushed"] is False  # honest: the flush did not get through in time
    assert found["flush_s"] < 2 + 1.5  # force_flush(2000): 20-62 s before
    assert found["shutdown_s"] < 2 + 1.5
    assert exiting["exiting_at"] > exit_started
    assert exited - exiting["exiting_at"] < 5 + 3  # the exit shutdown's 5 s deadline; 43 s before


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_log_pipeline_keeps_the_exit_deadline_too(protocol: str, tmp_path: Path) -> None:
    """Log records (events) queued for a collector that never answers: the exit is ours, bounded.

    The LoggerProvider we build registered the SDK's ``atexit`` shutdown, which waits for the
    batch worker and the exporter with no deadline (10.8 s measured here over gRPC, the exporter's
    timeout). Like the tracer and meter providers, it now has none: the set-up's bounded exit
    shutdown ends it, and when the collector answers, that shutdown delivers every record.
    """
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        receiver.behaviour = "hang"
        alone = _run("pipeline-exit", tmp_path, receiver.env())
        alone_exited = time.time()
        exiting = _run("exit-with-events", tmp_path, receiver.env())
        exited = time.time()
    assert alone_exited - alone["exiting_at"] < 3  # nothing of the SDK's waits at exit any more
    assert exiting["sdk_exit_handler"] is False
    assert exited - exiting["exiting_at"] < 5 + 3  # the exit shutdown's 5 s deadline
    with OTLPReceiver(protocol) as receiver:  # type: ignore[arg-type]
        _run("exit-with-events", tmp_path, receiver.env())
        delivered = receiver.wait_for_logs(50, event_name="lifecycle.exiting")
    assert sorted(r.attributes["index"] for r in delivered) == list(range(50))


def test_a_second_configure_keeps_the_log_pipeline(tmp_path: Path) -> None:
    """configure() again (a gunicorn worker's post_worker_init): events still reach the collector.

    It found our tracer and meter providers as the globals and kept them, but not the
    LoggerProvider: the events after it went nowhere, and the previous configuration's shutdown
    shut the LoggerProvider down.
    """
    with OTLPReceiver("grpc") as receiver:
        found = _run("reconfigure-events", tmp_path, receiver.env())
        delivered = receiver.wait_for_logs(lambda logs: {r.event_name for r in logs} >= {"lifecycle.after"})
    assert found == {"kept": True, "flushed": True}
    assert [r.event_name for r in delivered if r.event_name] == ["lifecycle.before", "lifecycle.after"]


# -- 4. SIGTERM flushes, then does what the previous handler would have done ----------------------
@pytest.mark.parametrize("previous", ["default", "python"])
def test_sigterm_flushes_then_defers_to_the_previous_handler(previous: str, tmp_path: Path) -> None:
    with OTLPReceiver("grpc") as receiver:
        proc = subprocess.Popen(
            [sys.executable, str(SIGTERM_APP), previous, "500"],
            env=_env(receiver.env()),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        points = receiver.wait_for_metrics(lambda m: any(p.name == "migration.requests" for p in m))
        requests = sum(p.value or 0 for p in receiver.latest_metrics("migration.requests"))
    assert requests == 500  # the last interval was not lost (the export interval is 10 minutes)
    assert points
    if previous == "default":
        assert proc.returncode == -signal.SIGTERM, err  # died by the signal, as without us
    else:
        assert proc.returncode == 0, err
        assert "app handler ran" in out


# -- 12. exact under saturation: what the aggregator cannot take is counted -----------------------
def test_every_call_is_counted_or_counted_as_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """8 threads against a queue of 50: made == counted + dropped, to the call."""
    import threading

    from .conftest import make_harness

    monkeypatch.chdir(tmp_path)
    h = make_harness(max_queue_size=50)
    made = [0] * 8

    def caller(index: int) -> None:
        for _ in range(2_000):
            with otel_migration.versioned("2.0", operation="busy"):
                pass
            made[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = h.value("migration.requests", migration_operation="busy")
    dropped = sum(p.value for p in h.points("migration.telemetry.dropped"))
    otel_migration.shutdown()
    assert sum(made) == 16_000
    assert dropped > 0  # the queue did overflow
    assert counted + dropped == 16_000


SOAK_20_S = ["--seconds", "20", "--fork-every", "4", "--protocol", "http/protobuf"]


def test_callers_help_a_starved_aggregator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An aggregator thread that never gets to run (busy threads starve it of the GIL): past half
    the queue the callers aggregate chunks themselves, so little or nothing is dropped.

    On a pipeline exporting through our metric exporter (batch histograms, as ``configure()``
    builds it): aggregating a call there costs a fraction of making one.
    """
    import io
    import threading

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from otel_migration._core.recorder import CallRecorder

    def starved(self: CallRecorder) -> None:
        while not self._stopped:
            time.sleep(0.01)

    monkeypatch.setattr(CallRecorder, "_run", starved)
    monkeypatch.chdir(tmp_path)
    reader = PeriodicExportingMetricReader(
        otel_migration.metric_exporter(ConsoleMetricExporter(out=io.StringIO())),
        export_interval_millis=3_600_000,
    )
    telemetry = otel_migration.configure(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        max_queue_size=4_096,
    )
    recorder = telemetry.recorder
    queued: list[int] = []

    def caller() -> None:
        for _ in range(4_000):
            with otel_migration.versioned("2.0", operation="starved"):
                sum(range(300))  # a little work, as a real call has
            queued.append(recorder.queue_depth)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = sum(recorder.request_counts().values())
    dropped = recorder.dropped
    otel_migration.shutdown()
    print(f"starved aggregator: counted {counted}, dropped {dropped}, deepest queue {max(queued)}")
    assert counted + dropped == 16_000
    # Without callers helping, exactly the 4,096 the queue holds would be counted and 11,904 (74 %)
    # dropped. With them: none dropped on an idle host; under a loaded test run (other threads
    # and processes taking the GIL and the cores) the one draining thread gets less, and a third
    # to a half were seen dropped. Either way callers counted well past what the queue holds.
    assert counted >= 4_096 + 2_048


# -- the soak, short: threads + asyncio tasks + forked children + bad inputs -----------------------
@pytest.mark.slow
def test_soak_20_seconds(tmp_path: Path) -> None:
    """``benchmarks/soak.py`` for 20 s: versioned calls exact at a real receiver, RSS flat, shutdown in time.

    The full check (LLM calls too) is the soak's exit status; here the versioned calls are checked
    on their own, since a bad ``record_llm_call`` argument accepted and lost is issue 10's item 7.
    Over HTTP: gRPC core is not fork-safe (a child forked while the parent's exporter is mid-RPC
    can hang in it; see README, "Deployment: pre-fork servers").
    """
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), *SOAK_20_S],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("SUMMARY "))
    summary = json.loads(line.removeprefix("SUMMARY "))
    assert summary["children"] >= 3
    assert summary["made_calls"] > 10_000
    assert summary["received_dropped"] == 0  # far below the aggregator's ceiling
    assert summary["received_calls"] == summary["made_calls"], result.stdout
    assert summary["in_time"], result.stdout
    assert summary["rss_growth_mb"] < 30, result.stdout
