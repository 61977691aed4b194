"""Process-level lifecycle cases run by tests/test_lifecycle.py, one per subprocess (global providers).

    python lifecycle_app.py CASE

Each case configures from OTEL_* (the test points it at a receiver, or the default file), does
its work and prints one JSON line of what it measured for the test to check.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import threading
import time

import otel_migration
from otel_migration._core import runtime


@otel_migration.versioned("2.0", operation="work")
def work() -> int:
    return 1


def report(**values: object) -> None:
    print(json.dumps(values), flush=True)


#: The handlers' shutdown deadline: a handler that keeps it has not hung, whatever it waited for.
HANDLER_SHUTDOWN_MILLIS = 5_000


def signal_shutdown() -> None:
    """SIGTERM arrives while this thread and another are inside snapshot()/force_flush()."""
    otel_migration.configure(migration="lifecycle")
    done = threading.Event()
    results: dict[str, object] = {}

    def on_term(signum: int, frame: object) -> None:
        started = time.monotonic()
        results["ok"] = otel_migration.shutdown(HANDLER_SHUTDOWN_MILLIS)
        results["handler_s"] = round(time.monotonic() - started, 3)
        done.set()

    signal.signal(signal.SIGTERM, on_term)

    def other() -> None:
        while not done.is_set():
            for _ in range(50):
                work()
            otel_migration.snapshot()
            otel_migration.force_flush()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    threading.Timer(random.uniform(0.2, 1.0), os.kill, (os.getpid(), signal.SIGTERM)).start()
    while not done.is_set():
        for _ in range(200):
            work()
        otel_migration.snapshot()
        otel_migration.force_flush()
    thread.join(10)
    report(**results, other_alive=thread.is_alive())


def signal_inside_a_lock() -> None:
    """The SIGTERM handler calling shutdown() runs while this thread holds a lock shutdown needs.

    Python runs a handler between two bytecodes of whatever the main thread was doing, locks held.
    Here it is placed deterministically: inside ``Event.set()`` (its condition's plain Lock held)
    of the SDK's batch span processor (``emit`` sets it once 512 spans wait), or of our recorder
    (``submit`` sets it when 2,048 calls wait), the two that shutdown sets too.
    """
    import signal as signals

    otel_migration.configure(migration="lifecycle")
    results: dict[str, object] = {}

    def on_term(signum: int, frame: object) -> None:
        started = time.monotonic()
        results["ok"] = otel_migration.shutdown(HANDLER_SHUTDOWN_MILLIS)
        results["handler_s"] = round(time.monotonic() - started, 3)

    signals.signal(signals.SIGTERM, on_term)
    work()
    telemetry = runtime.active()
    assert telemetry is not None and telemetry.providers.owned_tracer_provider is not None
    if sys.argv[2] == "recorder":
        # The recorder wakes its worker through a queue.SimpleQueue, whose put() is C code a
        # handler cannot land inside; the handler lands just before it, in submit()'s wake-up.
        recorder = telemetry.recorder
        wake = recorder._wake
        fired_here: list[bool] = []

        class WakeWithTheSignal:
            def put(self, item: None) -> None:
                if not fired_here:
                    fired_here.append(True)
                    signals.raise_signal(signals.SIGTERM)
                    time.sleep(0)  # the pending handler runs here, inside submit()
                wake.put(item)

            def get(self, timeout: float | None = None) -> None:
                wake.get(timeout=timeout)

        recorder._wake = WakeWithTheSignal()  # type: ignore[assignment]
        recorder._wake.put(None)  # what submit() does on this thread
        report(**results, fired=bool(fired_here))
        return
    processor = telemetry.providers.owned_tracer_provider._active_span_processor._span_processors[0]
    event = processor._delegate._batch_processor._worker_awaken  # the LLM enricher's BatchSpanProcessor
    condition = event._cond
    notify_all = condition.notify_all
    fired: list[bool] = []

    def notify_all_with_the_signal() -> None:
        if not fired:
            fired.append(True)
            signals.raise_signal(signals.SIGTERM)
            time.sleep(0)  # a call: the pending handler runs here, the condition's lock held
        notify_all()

    condition.notify_all = notify_all_with_the_signal
    event.set()  # what emit() / submit() do on this thread
    report(**results, fired=bool(fired))


def after_shutdown() -> None:
    """After shutdown() calls pass straight through, even with our providers still installed globally."""
    otel_migration.configure(migration="lifecycle")
    for _ in range(10):
        work()
    telemetry = runtime.active()
    assert telemetry is not None
    otel_migration.shutdown(5_000)
    for _ in range(20_000):
        work()
    report(
        active_after=runtime.active() is not None,
        dropped=telemetry.recorder.dropped,
        queued=telemetry.recorder.queued,
        counted=sum(telemetry.recorder.request_counts().values()),
    )


def shutdown_under_load() -> None:
    """16 threads keep calling while the main thread shuts down."""
    otel_migration.configure(migration="lifecycle")
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            work()

    threads = [threading.Thread(target=call, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    started = time.monotonic()
    ok = otel_migration.shutdown(5_000)
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(10)
    report(ok=ok, shutdown_s=round(elapsed, 3))


def hung_collector() -> None:
    """The collector accepts and never answers: force_flush(2000) and shutdown(2000) are deadlines."""
    otel_migration.configure(migration="lifecycle")
    for _ in range(100):
        work()
    started = time.monotonic()
    flushed = otel_migration.force_flush(2_000)
    flush_s = time.monotonic() - started
    started = time.monotonic()
    shut = otel_migration.shutdown(2_000)
    shutdown_s = time.monotonic() - started
    report(flushed=flushed, flush_s=round(flush_s, 3), shut=shut, shutdown_s=round(shutdown_s, 3))


def exit_with_hung_collector() -> None:
    """No explicit shutdown: the interpreter's exit runs ours, bounded."""
    otel_migration.configure(migration="lifecycle")
    for _ in range(100):
        work()
    report(exiting_at=time.time())


def exit_with_events() -> None:
    """Events (log records) queued, no explicit shutdown: the exit's bounded shutdown ends the logs too."""
    otel_migration.configure(migration="lifecycle")
    telemetry = runtime.active()
    assert telemetry is not None and telemetry.providers.owned_logger_provider is not None
    for i in range(50):
        otel_migration.event("lifecycle.exiting", index=i)
    report(
        exiting_at=time.time(),
        sdk_exit_handler=telemetry.providers.owned_logger_provider._at_exit_handler is not None,
    )


def reconfigure_events() -> None:
    """A second configure() finds our pipeline as the globals: the events keep their LoggerProvider."""
    otel_migration.configure(migration="lifecycle")
    first = runtime.active()
    otel_migration.event("lifecycle.before")
    otel_migration.configure(migration="lifecycle-again")
    second = runtime.active()
    otel_migration.event("lifecycle.after")
    assert first is not None and second is not None
    report(
        kept=second.providers.owned_logger_provider is first.providers.owned_logger_provider is not None,
        flushed=otel_migration.force_flush(10_000),
    )


def pipeline_exit() -> None:
    """The log pipeline as ``build_providers`` makes it, and nothing else: it must not hold up the exit."""
    from otel_migration._core.config import load_settings
    from otel_migration._export.pipeline import build_providers

    providers = build_providers(load_settings(), os.environ)
    assert providers.owned_logger_provider is not None
    logger = providers.owned_logger_provider.get_logger("lifecycle")
    for i in range(50):
        logger.emit(event_name="lifecycle.exiting", attributes={"index": i})
    time.sleep(0.5)  # the batch worker is inside its export to the collector that never answers
    report(exiting_at=time.time())


CASES = {
    "signal-shutdown": signal_shutdown,
    "signal-inside-a-lock": signal_inside_a_lock,
    "after-shutdown": after_shutdown,
    "shutdown-under-load": shutdown_under_load,
    "hung-collector": hung_collector,
    "exit-hung": exit_with_hung_collector,
    "exit-with-events": exit_with_events,
    "pipeline-exit": pipeline_exit,
    "reconfigure-events": reconfigure_events,
}

if __name__ == "__main__":
    # A hang shows where every thread waits (stderr, exit status 1) instead of a bare timeout.
    faulthandler.dump_traceback_later(25, exit=True)
    CASES[sys.argv[1]]()
