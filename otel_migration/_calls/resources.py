"""What a versioned call costs the process: CPU time, memory (opt-in), calls in flight, stream timing.

CPU is the thread CPU time (``time.thread_time_ns``) the call's own thread spends *in the call*:

- a plain function: from entry to return, callees included (nested versioned calls count in their
  caller too, as their durations do);
- a generator: the sum over its steps, not the time the consumer holds it between items;
- a coroutine or an async generator: the sum over its *steps*. Between two steps the event loop runs
  other tasks on the same thread, so the thread's CPU from start to end would charge them to this
  call; :func:`stepped` drives the awaitable one ``send``/``throw`` at a time and reads the clock
  around each. CPU spent in worker threads the call waits on (``run_in_executor``, ``to_thread``) is
  not the call's thread and is not counted: it shows in the process's ``process.cpu.time``.

Cost: ``thread_time_ns`` is a system call (``CLOCK_THREAD_CPUTIME_ID`` has no vDSO fast path), about
0.5 µs here, twice per call or per coroutine step: ``benchmarks/call_overhead.py`` measured a
versioned sync call at 25.8 µs without and 28.9 µs with it on a shared 2-core machine (noisy: the
difference varies from 1.5 to 3 µs between runs). ``measure_cpu = false`` turns it off.

Memory (``measure_memory = true``, off by default) is the net change of ``tracemalloc``'s traced
memory between the start and the end of the call: what the call allocated and still holds, plus
whatever other threads allocated meanwhile (tracemalloc cannot tell threads apart). Tracing makes
every allocation of the process slower: in the benchmark a function building 50 strings went from
2.7 µs to 30 µs, and a versioned call from 26 µs to about 120 µs (the span's own allocations are
traced too). That is why it is opt-in. When it is on, tracemalloc is started once and
never stopped by us (the application may use it too).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Awaitable, Generator
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.batch import CallBatch
from .._core.histograms import HistogramSet
from .._core.inflight import InFlightCounts
from .._core.instruments import Measured, observer
from .._core.records import Record
from .._core.runtime import Telemetry

__all__ = ["CpuMeter", "ResourceMetrics", "UsagePlan", "stepped", "traced_memory", "usage_plan"]

T = TypeVar("T")
_thread_time_ns: Final = time.thread_time_ns


class UsagePlan(NamedTuple):
    """What a configuration measures per versioned call; looked up once per telemetry, not per call."""

    cpu: bool
    memory: bool
    in_flight: InFlightCounts | None


def usage_plan(telemetry: Telemetry) -> UsagePlan:
    """The measurements of ``telemetry``'s versioned calls (read once per spec and telemetry)."""
    settings = telemetry.settings
    metrics = telemetry.find(ResourceMetrics)
    plan = UsagePlan(
        settings.measure_cpu, settings.measure_memory, metrics.in_flight if metrics is not None else None
    )
    if plan.memory and not tracemalloc.is_tracing():
        tracemalloc.start()
    return plan


def traced_memory() -> int:
    """Bytes tracemalloc traces now, or -1 when it is not tracing."""
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else -1


class CpuMeter(Protocol):
    """What :func:`stepped` adds each step's CPU to (a versioned call in flight)."""

    cpu_ns: int


class _Stepped:
    """An awaitable that runs another one step by step and adds each step's thread CPU to a call."""

    __slots__ = ("_awaitable", "_usage")

    def __init__(self, awaitable: Awaitable[Any], usage: CpuMeter) -> None:
        self._awaitable = awaitable
        self._usage = usage

    def __await__(self) -> Generator[Any, Any, Any]:
        iterator = self._awaitable.__await__()
        usage = self._usage
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            started = _thread_time_ns()
            try:
                signal = iterator.send(to_send) if to_throw is None else iterator.throw(to_throw)
            except StopIteration as stop:
                usage.cpu_ns += _thread_time_ns() - started
                return stop.value
            except BaseException:
                usage.cpu_ns += _thread_time_ns() - started
                raise
            usage.cpu_ns += _thread_time_ns() - started
            to_send, to_throw = None, None
            try:
                to_send = yield signal
            except GeneratorExit:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                raise
            except BaseException as exc:
                to_throw = exc


def stepped(awaitable: Awaitable[T], usage: CpuMeter) -> Awaitable[T]:
    """``awaitable`` run step by step, each step's thread CPU added to ``usage.cpu_ns``."""
    return _Stepped(awaitable, usage)


_KEY_NAMES: Final = (sc.MIGRATION_NAME, sc.MIGRATION_OPERATION, sc.MIGRATION_VERSION)


class ResourceMetrics:
    """A call listener and the instruments of this module: CPU, memory, in flight, stream timing."""

    def __init__(self, meter: Meter, histograms: HistogramSet | None = None) -> None:
        histograms = histograms or HistogramSet(meter, owned=False)
        self.in_flight = InFlightCounts()
        self._memory: dict[tuple[str, str, str], int] = {}
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}
        self._cpu = histograms.explicit(
            sc.METRIC_CPU_TIME,
            "s",
            "Thread CPU time of versioned calls (coroutines: of their steps).",
            sc.CPU_BUCKETS,
        )
        self._first_item = histograms.explicit(
            sc.METRIC_STREAM_TIME_TO_FIRST_ITEM,
            "s",
            "Streamed versioned calls (generators): time to the first item.",
            sc.DURATION_BUCKETS,
        )
        self._stream_duration = histograms.explicit(
            sc.METRIC_STREAM_DURATION,
            "s",
            "Streamed versioned calls (generators): time to exhaustion.",
            sc.DURATION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            sc.METRIC_CALLS_IN_FLIGHT,
            [observer(self._read_in_flight)],
            unit="{call}",
            description="Versioned calls running now.",
        )
        meter.create_observable_up_down_counter(
            sc.METRIC_MEMORY_RETAINED,
            [observer(self._read_memory)],
            unit="By",
            description="Net bytes allocated and still held at the end of versioned calls (opt-in).",
        )

    def _attrs(self, key: tuple[str, ...], outcome: str | None = None) -> dict[str, str]:
        full = key if outcome is None else (*key, outcome)
        attrs = self._attributes.get(full)
        if attrs is None:
            attrs = dict(zip(_KEY_NAMES, key, strict=True))
            if outcome is not None:
                attrs[sc.MIGRATION_OUTCOME] = outcome
            self._attributes[full] = attrs
        return attrs

    def on_call(self, record: Record) -> None:
        self.on_batch(CallBatch([record]))

    def on_batch(self, batch: CallBatch) -> None:
        """Record the measured resources of finished versioned calls (not of their phases)."""
        for group in batch.calls:
            key = (group.migration, group.operation, group.version)
            cpu = group.cpu
            if cpu.size:
                self._cpu.record(cpu, self._attrs(key, group.outcome))
            if not group.extras:
                continue
            memory = [m for r in group.extras if (m := r.memory_delta_bytes) is not None]
            if memory:
                self._memory[key] = self._memory.get(key, 0) + sum(memory)
            streamed = [r for r in group.extras if r.streamed]
            if streamed:
                attrs = self._attrs(key, group.outcome)
                first = [t for r in streamed if (t := r.time_to_first_item_s) is not None and t > 0]
                self._first_item.record(first, attrs)
                self._stream_duration.record([r.duration_s for r in streamed], attrs)

    def _read_in_flight(self) -> Measured:
        return [(count, self._attrs(key)) for key, count in self.in_flight.items()]

    def _read_memory(self) -> Measured:
        return [(total, self._attrs(key)) for key, total in list(self._memory.items())]
