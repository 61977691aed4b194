"""Shadow runs in the style of GitHub's Scientist: run 1.0 and 2.0, return 1.0, compare the two.

The caller always gets the control's result, or the control's exception re-raised as it was; the
candidate runs too (in random order, so neither always enjoys warm caches), but nothing it does
can reach the caller: its exceptions, and a comparator's, are recorded and swallowed.

Both runs are versioned calls of the same operation, so they feed the same latency and error
analytics and verdicts as production traffic; the experiment adds the comparison (match,
mismatch, ignored, candidate error, comparator error), wall and CPU time of each side, and a
parent span. Result values are never exported unless a ``clean`` hook turns them into something
safe to export.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from opentelemetry.metrics import Meter

from .._calls.versioned import versioned
from .._core import semconv as sc
from .._core.instruments import Measured, observer
from .._core.runtime import active

__all__ = ["ExperimentRegistry", "ExperimentResult", "experiment"]

_logger = logging.getLogger(__name__)
T = TypeVar("T")

OUTCOMES: Final = ("match", "mismatch", "ignored", "candidate_error", "compare_error", "skipped")
_VALUE_LIMIT: Final = 256


@dataclass(frozen=True, slots=True)
class Observed(Generic[T]):
    version: str
    value: T | None
    error: BaseException | None
    wall_s: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class ExperimentResult(Generic[T]):
    """What one run of an experiment saw (passed to ``on_result``)."""

    name: str
    outcome: str
    control: Observed[T]
    candidate: Observed[T] | None


class ExperimentRegistry:
    """Outcome counts and CPU time per experiment, exported as observable counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: dict[tuple[str, str], int] = {}
        self.cpu_seconds: dict[tuple[str, str], float] = {}

    def record(self, result: ExperimentResult[Any]) -> None:
        with self._lock:
            key = (result.name, result.outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            for observed in (result.control, result.candidate):
                if observed is not None:
                    cpu_key = (result.name, observed.version)
                    self.cpu_seconds[cpu_key] = self.cpu_seconds.get(cpu_key, 0.0) + observed.cpu_s

    def reset_after_fork(self) -> None:
        """In a forked child: start counting from zero (the parent exports its own runs)."""
        self._lock = threading.Lock()
        self.outcomes, self.cpu_seconds = {}, {}

    def register_metrics(self, meter: Meter) -> None:
        meter.create_observable_counter(
            sc.METRIC_EXPERIMENT_RUNS,
            [observer(self._read_runs)],
            unit="{run}",
            description="Experiment runs by outcome: match, mismatch, ignored, candidate_error, ...",
        )
        meter.create_observable_counter(
            sc.METRIC_EXPERIMENT_CPU_TIME,
            [observer(self._read_cpu)],
            unit="s",
            description="CPU time spent by each side of an experiment.",
        )

    def _read_runs(self) -> Measured:
        with self._lock:
            items = list(self.outcomes.items())
        return [
            (n, {sc.MIGRATION_EXPERIMENT: name, sc.MIGRATION_EXPERIMENT_OUTCOME: outcome})
            for (name, outcome), n in items
        ]

    def _read_cpu(self) -> Measured:
        with self._lock:
            items = list(self.cpu_seconds.items())
        return [
            (s, {sc.MIGRATION_EXPERIMENT: name, sc.MIGRATION_VERSION: version})
            for (name, version), s in items
        ]


def _observe(
    version: str, operation: str, migration: str | None, function: Callable[[], T], *, reraise_base: bool
) -> Observed[T]:
    wall, cpu = time.perf_counter(), time.thread_time()
    value: T | None = None
    error: BaseException | None = None
    try:
        with versioned(version, operation=operation, migration=migration):
            value = function()
    except Exception as exc:
        error = exc
    except BaseException as exc:  # KeyboardInterrupt, SystemExit, cancellation: never swallowed from control
        if reraise_base:
            raise
        error = exc
    return Observed(version, value, error, time.perf_counter() - wall, time.thread_time() - cpu)


def _default_compare(control: Any, candidate: Any) -> bool:
    return bool(control == candidate)


def _outcome(
    control: Observed[T],
    candidate: Observed[T],
    compare: Callable[[T, T], bool],
    ignore: Callable[[T, T], bool] | None,
) -> str:
    if candidate.error is not None:
        if control.error is not None and type(control.error) is type(candidate.error):
            return "match"  # both fail the same way: the candidate behaves like the control
        return "candidate_error"
    if control.error is not None:
        return "mismatch"
    try:
        if compare(control.value, candidate.value):  # type: ignore[arg-type]
            return "match"
        if ignore is not None and ignore(control.value, candidate.value):  # type: ignore[arg-type]
            return "ignored"
    except Exception:
        _logger.exception("otel-migration: comparator of an experiment failed")
        return "compare_error"
    return "mismatch"


def experiment(
    name: str,
    *,
    control: Callable[[], T],
    candidate: Callable[[], T],
    compare: Callable[[T, T], bool] | None = None,
    ignore: Callable[[T, T], bool] | None = None,
    clean: Callable[[T], object] | None = None,
    percent: float = 100.0,
    control_version: str = "1.0",
    candidate_version: str = "2.0",
    migration: str | None = None,
    on_result: Callable[[ExperimentResult[T]], object] | None = None,
) -> T:
    """Run ``control`` and (for ``percent`` of calls) ``candidate``; return the control's result.

    ``compare(control, candidate)`` decides a match (default ``==``); ``ignore`` excuses known,
    accepted differences; ``clean(value)`` makes a value safe to put on the span (otherwise values
    are never exported); ``on_result`` receives every :class:`ExperimentResult`.
    """
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"experiment(): percent must be from 0 to 100, got {percent!r}")
    if random.random() * 100 >= percent:
        control_only = _observe(control_version, name, migration, control, reraise_base=True)
        _finish(ExperimentResult(name, "skipped", control_only, None), on_result)
        return _result_of(control_only)

    telemetry = active()
    parent = (
        telemetry.tracer.start_as_current_span(
            f"experiment {name}", attributes={sc.MIGRATION_EXPERIMENT: name}
        )
        if telemetry is not None and telemetry.enabled
        else contextlib.nullcontext(None)
    )
    with parent as span:
        sides = [("control", control_version, control), ("candidate", candidate_version, candidate)]
        random.shuffle(sides)  # neither side always runs first, with the other's warm caches
        observed: dict[str, Observed[T]] = {}
        for role, version, function in sides:
            observed[role] = _observe(version, name, migration, function, reraise_base=role == "control")
        outcome = _outcome(observed["control"], observed["candidate"], compare or _default_compare, ignore)
        result = ExperimentResult(name, outcome, observed["control"], observed["candidate"])
        if span is not None and span.is_recording():
            span.set_attribute(sc.MIGRATION_EXPERIMENT_OUTCOME, outcome)
            _attach_values(span, result, clean)
        _finish(result, on_result)
    return _result_of(observed["control"])


def _result_of(observed: Observed[T]) -> T:
    if observed.error is not None:
        raise observed.error
    return observed.value  # type: ignore[return-value]


def _attach_values(span: Any, result: ExperimentResult[T], clean: Callable[[T], object] | None) -> None:
    if clean is None:
        return
    for role, observed in (("control", result.control), ("candidate", result.candidate)):
        if observed is None or observed.error is not None:
            continue
        try:
            text = str(clean(observed.value))[:_VALUE_LIMIT]  # type: ignore[arg-type]
        except Exception:
            _logger.exception("otel-migration: clean hook of experiment %r failed", result.name)
            continue
        name = (
            sc.MIGRATION_EXPERIMENT_CONTROL_VALUE
            if role == "control"
            else sc.MIGRATION_EXPERIMENT_CANDIDATE_VALUE
        )
        span.set_attribute(name, text)


def _finish(result: ExperimentResult[T], on_result: Callable[[ExperimentResult[T]], object] | None) -> None:
    try:
        telemetry = active()
        stats = telemetry.find(ExperimentRegistry) if telemetry is not None else None
        if stats is not None:
            stats.record(result)
        if on_result is not None:
            on_result(result)
    except Exception:
        _logger.exception("otel-migration: recording experiment %r failed", result.name)
