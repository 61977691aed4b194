"""Percentage rollouts: which version a user gets, sticky, recorded as feature-flag evaluations.

A subject's bucket is a stable hash of ``(rollout name, subject id)`` into 10,000 buckets, never
``random``: the same user always lands in the same bucket, in every process, so raising the
percent only ever *adds* users to the candidate (sticky ramp-up) and a decision can be
reproduced from the id alone. Deny lists beat allow lists; the kill switch beats both and sends
everyone to the control version, counted as a rollback.

Each decision is an OpenTelemetry feature-flag evaluation: a ``feature_flag.evaluation`` event
on the current span with ``feature_flag.key``, ``feature_flag.result.variant``,
``feature_flag.result.reason`` and the pseudonymised ``feature_flag.context.id``; counts per
variant and reason, the percent in force and rollbacks are metrics.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Meter

from .._calls.versioned import versioned
from .._core import semconv as sc
from .._core.config import RolloutSpec
from .._core.context import Subject, subject_context
from .._core.instruments import Measured, observer
from .._core.subjects import pseudonymize

__all__ = [
    "Decision",
    "Rollout",
    "RolloutRegistry",
    "Router",
    "kill_rollout",
    "registry",
    "restore_rollout",
    "rollout",
    "set_rollout",
]

_logger = logging.getLogger(__name__)

BUCKETS: Final = 10_000
REASON_SPLIT: Final = "split"  # the percentage decided
REASON_TARGETING: Final = "targeting_match"  # an allow or deny list decided
REASON_DISABLED: Final = "disabled"  # the kill switch decided
PROVIDER_NAME: Final = "otel-migration"


def bucket_of(name: str, subject_id: str) -> int:
    """The subject's bucket in [0, 10000): stable across processes, runs and Python versions."""
    digest = hashlib.sha256(f"{name}\x00{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Decision:
    rollout: str
    variant: str
    reason: str
    subject: str  # pseudonymised


@dataclass
class Rollout:
    """The live state of one rollout; change it through :func:`set_rollout` / :func:`kill_rollout`."""

    name: str
    spec: RolloutSpec
    #: When the percent last changed (seconds since the epoch): a split can only be checked
    #: against a percent that held for the whole window.
    percent_since: float = field(default_factory=time.time)
    killed: bool = False
    kill_reason: str = ""
    rollbacks: int = 0
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def control(self) -> str:
        return self.spec.control

    @property
    def candidate(self) -> str:
        return self.spec.candidate

    @property
    def percent(self) -> float:
        return self.spec.percent

    def decide(self, subject_id: str) -> tuple[str, str]:
        spec = self.spec
        if self.killed:
            return spec.control, REASON_DISABLED
        if subject_id in spec.deny:
            return spec.control, REASON_TARGETING
        if subject_id in spec.allow:
            return spec.candidate, REASON_TARGETING
        if bucket_of(self.name, subject_id) < spec.percent * (BUCKETS / 100):
            return spec.candidate, REASON_SPLIT
        return spec.control, REASON_SPLIT

    def count(self, variant: str, reason: str) -> None:
        with self._lock:
            key = (variant, reason)
            self.decisions[key] = self.decisions.get(key, 0) + 1


RollbackListener = Callable[[Rollout], None]


class RolloutRegistry:
    """Every rollout of the process, their metrics, and who to tell about a rollback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rollouts: dict[str, Rollout] = {}
        self._listeners: list[RollbackListener] = []

    def configure(self, specs: Mapping[str, RolloutSpec]) -> None:
        """Apply configured rollouts; live state (kill switch, counts) of existing ones is kept."""
        with self._lock:
            for name, spec in specs.items():
                existing = self._rollouts.get(name)
                if existing is None:
                    self._rollouts[name] = Rollout(name, spec)
                else:
                    existing.spec = spec

    def get(self, name: str) -> Rollout | None:
        return self._rollouts.get(name)

    def obtain(
        self, name: str, *, percent: float | None, control: str | None, candidate: str | None
    ) -> Rollout:
        state = self._rollouts.get(name)
        if state is not None and percent is None and control is None and candidate is None:
            return state
        with self._lock:
            state = self._rollouts.get(name)
            if state is None:
                if percent is None:
                    raise ValueError(
                        f"rollout {name!r} is not configured: pass percent= or add [rollouts.{name}]"
                    )
                state = self._rollouts[name] = Rollout(name, RolloutSpec())
            changes: dict[str, Any] = {}
            if percent is not None:
                changes["percent"] = _checked_percent(percent)
            if control is not None:
                changes["control"] = control
            if candidate is not None:
                changes["candidate"] = candidate
            if changes:
                if changes.get("percent", state.spec.percent) != state.spec.percent:
                    state.percent_since = time.time()
                state.spec = replace(state.spec, **changes)
            return state

    def all(self) -> list[Rollout]:
        return list(self._rollouts.values())

    def on_rollback(self, listener: RollbackListener) -> None:
        self._listeners.append(listener)

    def kill(self, name: str, reason: str) -> Rollout:
        with self._lock:
            state = self._rollouts.get(name)
            if state is None:
                raise ValueError(f"no rollout named {name!r}")
            already = state.killed
            state.killed, state.kill_reason = True, reason
            if not already:
                state.rollbacks += 1
        if not already:
            _logger.warning(
                "otel-migration: rollout %r killed, everyone back on %s: %s",
                name,
                state.spec.control,
                reason or "no reason given",
            )
            for listener in list(self._listeners):
                try:
                    listener(state)
                except Exception:
                    _logger.exception("otel-migration: rollback listener %r failed", listener)
        return state

    def register_metrics(self, meter: Meter) -> None:
        meter.create_observable_counter(
            sc.METRIC_ROLLOUT_DECISIONS,
            [observer(self._read_decisions)],
            unit="{decision}",
            description="Rollout decisions by flag, variant (version) and reason.",
        )
        meter.create_observable_gauge(
            sc.METRIC_ROLLOUT_PERCENT,
            [observer(self._read_percent)],
            unit="%",
            description="Share of subjects the rollout sends to the candidate version.",
        )
        meter.create_observable_gauge(
            sc.METRIC_ROLLOUT_ROLLED_BACK,
            [observer(self._read_killed)],
            unit="1",
            description="1 while the kill switch holds everyone on the control version.",
        )
        meter.create_observable_counter(
            sc.METRIC_ROLLBACKS,
            [observer(self._read_rollbacks)],
            unit="{rollback}",
            description="Times the kill switch sent everyone back to the control version.",
        )

    def _read_decisions(self) -> Measured:
        observations = []
        for state in self.all():
            with state._lock:
                counts = list(state.decisions.items())
            for (variant, reason), count in counts:
                observations.append(
                    (
                        count,
                        {
                            sc.FEATURE_FLAG_KEY: state.name,
                            sc.FEATURE_FLAG_RESULT_VARIANT: variant,
                            sc.FEATURE_FLAG_RESULT_REASON: reason,
                        },
                    )
                )
        return observations

    def _read_percent(self) -> Measured:
        return [(0.0 if s.killed else s.percent, {sc.MIGRATION_NAME: s.name}) for s in self.all()]

    def _read_killed(self) -> Measured:
        return [(int(s.killed), {sc.MIGRATION_NAME: s.name}) for s in self.all()]

    def _read_rollbacks(self) -> Measured:
        return [(s.rollbacks, {sc.MIGRATION_NAME: s.name}) for s in self.all()]


def _checked_percent(percent: float) -> float:
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"percent must be a number from 0 to 100, got {percent!r}")
    return float(percent)


registry = RolloutRegistry()


def _record(state: Rollout, decision: Decision) -> None:
    state.count(decision.variant, decision.reason)
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            sc.FEATURE_FLAG_EVALUATION_EVENT,
            {
                sc.FEATURE_FLAG_KEY: decision.rollout,
                sc.FEATURE_FLAG_RESULT_VARIANT: decision.variant,
                sc.FEATURE_FLAG_RESULT_REASON: decision.reason,
                sc.FEATURE_FLAG_PROVIDER_NAME: PROVIDER_NAME,
                sc.FEATURE_FLAG_CONTEXT_ID: decision.subject,
            },
        )


def decide(
    name: str,
    subject_id: object,
    *,
    percent: float | None = None,
    control: str | None = None,
    candidate: str | None = None,
) -> Decision:
    """Like :func:`rollout`, returning the whole decision."""
    if subject_id is None or subject_id == "":
        raise ValueError(f"rollout {name!r}: subject_id must be a non-empty value, got {subject_id!r}")
    state = registry.obtain(name, percent=percent, control=control, candidate=candidate)
    raw = str(subject_id)
    variant, reason = state.decide(raw)
    decision = Decision(name, variant, reason, pseudonymize(raw))
    try:
        _record(state, decision)
    except Exception:
        _logger.exception("otel-migration: failed to record a rollout decision")
    return decision


def rollout(
    name: str,
    subject_id: object,
    *,
    percent: float | None = None,
    control: str | None = None,
    candidate: str | None = None,
) -> str:
    """The version ``subject_id`` gets in rollout ``name``: deterministic and sticky as percent grows.

    ``percent`` (0-100) sets the share on the candidate; it is needed the first time unless the
    rollout is configured (``[rollouts.NAME]``). Versions default to "1.0" (control) and "2.0".
    """
    return decide(name, subject_id, percent=percent, control=control, candidate=candidate).variant


def set_rollout(
    name: str,
    *,
    percent: float | None = None,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
) -> None:
    """Change a rollout at run time (ramp the percent, edit the lists)."""
    state = registry.obtain(name, percent=percent, control=None, candidate=None)
    changes: dict[str, Any] = {}
    if allow is not None:
        changes["allow"] = frozenset(map(str, allow))
    if deny is not None:
        changes["deny"] = frozenset(map(str, deny))
    if changes:
        state.spec = replace(state.spec, **changes)


def kill_rollout(name: str, reason: str = "") -> None:
    """The kill switch: everyone back on the control version, recorded as a rollback."""
    registry.kill(name, reason)


def restore_rollout(name: str) -> None:
    """Lift the kill switch; the percent in force applies again."""
    state = registry.get(name)
    if state is None:
        raise ValueError(f"no rollout named {name!r}")
    state.killed, state.kill_reason = False, ""


class Router:
    """A sticky per-user rollout router: picks the version for a subject and runs it as a versioned call.

    ``subject`` extracts the subject id from the call's arguments. Implementations are wrapped with
    :func:`versioned` (operation and migration = the rollout's name), and the subject is made
    current for the call, so adoption counts see who was served by which version.
    """

    def __init__(
        self,
        name: str,
        versions: Mapping[str, Callable[..., Any]],
        *,
        operation: str,
        subject: Callable[..., object],
        percent: float | None = None,
    ) -> None:
        if len(versions) < 2:
            raise ValueError(f"Router {name!r}: needs at least two versions, got {sorted(versions)}")
        self.name = name
        self.operation = operation
        self._subject = subject
        self._versions = {
            v: versioned(v, operation=operation, migration=name)(f) for v, f in versions.items()
        }
        ordered = sorted(versions)
        state = (
            registry.obtain(name, percent=percent, control=None, candidate=None)
            if percent is not None
            else registry.get(name)
        )
        if state is None:
            raise ValueError(f"Router {name!r}: pass percent= or configure [rollouts.{name}]")
        if state.spec.control not in versions or state.spec.candidate not in versions:
            registry.obtain(name, percent=None, control=ordered[0], candidate=ordered[-1])
        self._async = any(inspect.iscoroutinefunction(f) for f in versions.values())

    def _choose(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Callable[..., Any], Decision]:
        decision = decide(self.name, self._subject(*args, **kwargs))
        return self._versions[decision.variant], decision

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        implementation, decision = self._choose(args, kwargs)
        if self._async:
            return self._call_async(implementation, decision, args, kwargs)
        token = otel_context.attach(subject_context(Subject(decision.subject)))
        try:
            return implementation(*args, **kwargs)
        finally:
            otel_context.detach(token)

    async def _call_async(
        self,
        implementation: Callable[..., Any],
        decision: Decision,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        token = otel_context.attach(subject_context(Subject(decision.subject)))
        try:
            return await implementation(*args, **kwargs)
        finally:
            otel_context.detach(token)
