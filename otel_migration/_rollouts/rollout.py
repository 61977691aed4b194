"""Percentage rollouts: which version a user gets, decided by an OpenFeature flag, the same on every process.

``rollout(name, user)`` evaluates the string flag ``name`` through the OpenFeature API (variants are
the versions, the subject is the targeting key) with whatever provider the application set; when
it set none, flagd's provider reads the flag file (:mod:`.flagfile`) that every process of the host
watches, so one flag state serves the fleet, survives restarts and changes without a deploy.
Buckets are flagd's ``fractional``: sticky per user, and raising the percent only *adds* users to
the candidate. Deny lists beat allow lists; the kill switch beats both and sends everyone to the
control version, counted as a rollback in the flag state itself.

``set_rollout`` / ``kill_rollout`` / ``restore_rollout`` (and ``otel-migration rollout``) edit the
flag file; ``percent=`` in code and ``[rollouts.NAME]`` in the configuration *seed* it: they create
a rollout the file does not have yet, and the file wins for one it has (a kill or a ramp made with
the command line must not be undone by the next restart). Only a *changed* ``[rollouts.NAME]``
is applied to an existing rollout, once, and a kill holds through it (see :meth:`RolloutRegistry.seed`).

Each evaluation is recorded by the recorder in :mod:`.flags` (the OpenFeature hook, or directly on
the hot path, alike): a ``feature_flag.evaluation`` event on the current span (``feature_flag.key``,
``.result.variant``, ``.result.reason``, ``.provider.name``, the pseudonymised ``.context.id``) and
``migration.rollout.decisions``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from openfeature.exception import ErrorCode
from opentelemetry import context as otel_context
from opentelemetry.metrics import Meter

from .._calls.versioned import versioned
from .._core import semconv as sc
from .._core.config import RolloutSpec
from .._core.context import Subject, subject_context
from .._core.instruments import Measured, observer
from .._core.subjects import pseudonymize
from .evaluation import Evaluation
from .flagfile import FlagFile, RolloutState, check_name, checked_percent
from .flags import FlagService, describe

__all__ = [
    "Decision",
    "RolloutRegistry",
    "RolloutState",
    "Router",
    "flags",
    "kill_rollout",
    "registry",
    "restore_rollout",
    "rollout",
    "set_rollout",
]

_logger = logging.getLogger(__name__)

DEFAULT_CONTROL: Final = "1.0"
DEFAULT_CANDIDATE: Final = "2.0"


@dataclass(frozen=True, slots=True)
class Decision:
    rollout: str
    variant: str
    reason: str
    subject: str  # pseudonymised


RollbackListener = Callable[[RolloutState], None]


class RolloutRegistry:
    """The rollouts of the flag file: their metrics, their changes, and who to tell about a kill."""

    def __init__(self, flag_service: FlagService) -> None:
        self.flags = flag_service
        self._listeners: list[RollbackListener] = []
        self._seeded: set[tuple[str, str]] = set()  # (flag file, rollout) already in the file
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def _served_file(self) -> FlagFile | None:
        flag_file = self.flags.file()
        return flag_file if self.flags.serves(flag_file) else None

    def get(self, name: str) -> RolloutState | None:
        """The rollout as the flag file has it now (None when absent or another provider serves)."""
        flag_file = self._served_file()
        return flag_file.rollouts().get(name) if flag_file is not None else None

    def all(self) -> list[RolloutState]:
        flag_file = self._served_file()
        return list(flag_file.rollouts().values()) if flag_file is not None else []

    # -- changing ----------------------------------------------------------------------------

    def _writable(self) -> FlagFile:
        flag_file = self.flags.file()
        if not self.flags.serves(flag_file):
            raise RuntimeError(
                f"rollouts are served by the application's OpenFeature provider "
                f"({describe(self.flags.provider())}), not by {flag_file.path}: change the flag there"
            )
        return flag_file

    def _edit(
        self, change: Callable[[dict[str, RolloutState]], Mapping[str, RolloutState]]
    ) -> dict[str, RolloutState]:
        flag_file = self._writable()
        result = flag_file.edit(change)
        # Our own process sees the change at once; the others at their watcher's next poll.
        self.flags.changed(flag_file)
        return result

    def configure(self, specs: Mapping[str, RolloutSpec], *, flag_file: str | None = None) -> None:
        """Apply a configuration: its flag file, and ``[rollouts.*]`` seeded into it.

        Called when a configuration commits, so it never raises: a flag file that cannot be read
        or written (broken by a hand edit, a read-only directory) is logged, and the rollouts keep
        being served from what the provider last loaded.
        """
        try:
            self.flags.use_path(flag_file)
            self.flags.add_hook()
            if specs:
                self.seed(specs)
        except Exception:
            _logger.exception("otel-migration: could not apply [rollouts.*] to the flag file")

    def seed(self, specs: Mapping[str, RolloutSpec], *, declared: bool = True) -> dict[str, RolloutState]:
        """Bring ``[rollouts.*]`` into the flag file; the file wins unless the configuration changed.

        A rollout the file lacks is created. For one it has, the file's state (a ramp or a kill
        made with the command line, by ``set_rollout`` or a guard) stands through every restart
        with the same configuration: only a *changed* ``[rollouts.NAME]`` (told by the fingerprint
        the file keeps of the configuration it last applied) is applied, once for the whole fleet,
        and even then a kill holds until it is restored. ``declared=False`` (``percent=`` in code)
        only ever creates.
        """

        def change(current: dict[str, RolloutState]) -> dict[str, RolloutState]:
            changed = {}
            for name, spec in specs.items():
                found = current.get(name)
                fingerprint = _fingerprint(spec) if declared else ""
                wanted = RolloutState(
                    check_name(name),
                    spec.control,
                    spec.candidate,
                    checked_percent(spec.percent),
                    spec.allow,
                    spec.deny,
                    percent_since=time.time(),
                    configured=fingerprint,
                )
                if found is None:
                    changed[name] = wanted
                elif declared and found.configured != fingerprint and not found.custom:
                    _logger.info("otel-migration: rollout %r: [rollouts.%s] changed, applied", name, name)
                    changed[name] = replace(
                        wanted,
                        killed=found.killed,
                        kill_reason=found.kill_reason,
                        rollbacks=found.rollbacks,
                        percent_since=found.percent_since if found.percent == wanted.percent else time.time(),
                    )
            return changed

        return self._edit(change)

    def seed_once(self, name: str, percent: float, control: str | None, candidate: str | None) -> None:
        """``rollout(..., percent=)``: create the rollout if the flag file lacks it, once per process."""
        flag_file = self.flags.file()
        key = (str(flag_file.path), name)
        if key in self._seeded:
            return
        if self.flags.serves(flag_file):
            spec = RolloutSpec(
                percent=percent, control=control or DEFAULT_CONTROL, candidate=candidate or DEFAULT_CANDIDATE
            )
            self.seed({name: spec}, declared=False)
        with self._lock:
            self._seeded.add(key)

    def update(
        self,
        name: str,
        *,
        percent: float | None = None,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        control: str | None = None,
        candidate: str | None = None,
    ) -> RolloutState:
        """Change (or, given a percent, create) a rollout in the flag file."""
        check_name(name)
        checked = checked_percent(percent) if percent is not None else None

        def change(current: dict[str, RolloutState]) -> dict[str, RolloutState]:
            state = current.get(name)
            if state is None:
                if checked is None:
                    raise ValueError(
                        f"rollout {name!r} is not configured: pass percent= or add [rollouts.{name}]"
                    )
                state = RolloutState(name, percent_since=time.time())
            new = state
            if checked is not None and checked != state.percent:
                new = replace(new, percent=checked, percent_since=time.time())
            if allow is not None:
                new = replace(new, allow=frozenset(map(str, allow)))
            if deny is not None:
                new = replace(new, deny=frozenset(map(str, deny)))
            if control is not None:
                new = replace(new, control=control)
            if candidate is not None:
                new = replace(new, candidate=candidate)
            return {name: new} if new != state or name not in current else {}

        return self._edit(change)[name]

    def obtain(
        self, name: str, *, percent: float | None, control: str | None, candidate: str | None
    ) -> RolloutState:
        """The rollout, changed as given (created when a percent is given)."""
        return self.update(name, percent=percent, control=control, candidate=candidate)

    def on_rollback(self, listener: RollbackListener) -> None:
        """Call ``listener(state)`` when this process kills a rollout."""
        self._listeners.append(listener)

    def kill(self, name: str, reason: str) -> RolloutState:
        already: list[bool] = []

        def change(current: dict[str, RolloutState]) -> dict[str, RolloutState]:
            state = current.get(name)
            if state is None:
                raise ValueError(f"no rollout named {name!r} in {self.flags.file().path}")
            already.append(state.killed)
            rollbacks = state.rollbacks + (0 if state.killed else 1)
            return {name: replace(state, killed=True, kill_reason=reason, rollbacks=rollbacks)}

        state = self._edit(change)[name]
        if not already[0]:
            _logger.warning(
                "otel-migration: rollout %r killed, every process back on %s: %s",
                name,
                state.control,
                reason or "no reason given",
            )
            for listener in list(self._listeners):
                try:
                    listener(state)
                except Exception:
                    _logger.exception("otel-migration: rollback listener %r failed", listener)
        return state

    def restore(self, name: str) -> RolloutState:
        def change(current: dict[str, RolloutState]) -> dict[str, RolloutState]:
            state = current.get(name)
            if state is None:
                raise ValueError(f"no rollout named {name!r} in {self.flags.file().path}")
            return {name: replace(state, killed=False, kill_reason="")} if state.killed else {}

        return self._edit(change)[name]

    # -- metrics -----------------------------------------------------------------------------

    def register_metrics(self, meter: Meter) -> None:
        meter.create_observable_counter(
            sc.METRIC_ROLLOUT_DECISIONS,
            [observer(self.flags.recorder.read)],
            unit="{decision}",
            description="Flag evaluations through OpenFeature by flag, variant (version) and reason.",
        )
        meter.create_observable_gauge(
            sc.METRIC_ROLLOUT_PERCENT,
            [observer(self._read_percent)],
            unit="%",
            description="Share of subjects the rollout's flag sends to the candidate version.",
        )
        meter.create_observable_gauge(
            sc.METRIC_ROLLOUT_ROLLED_BACK,
            [observer(self._read_killed)],
            unit="1",
            description="1 while the flag's kill switch holds everyone on the control version.",
        )
        meter.create_observable_counter(
            sc.METRIC_ROLLBACKS,
            [observer(self._read_rollbacks)],
            unit="{rollback}",
            description="Kills of the rollout recorded in the flag state.",
        )

    def _read_percent(self) -> Measured:
        return [(0.0 if s.killed else s.percent, {sc.MIGRATION_NAME: s.name}) for s in self.all()]

    def _read_killed(self) -> Measured:
        return [(int(s.killed), {sc.MIGRATION_NAME: s.name}) for s in self.all()]

    def _read_rollbacks(self) -> Measured:
        return [(s.rollbacks, {sc.MIGRATION_NAME: s.name}) for s in self.all()]


def _fingerprint(spec: RolloutSpec) -> str:
    """A short digest of a configured rollout: the flag file keeps the last one it applied."""
    text = json.dumps(
        [spec.percent, spec.control, spec.candidate, sorted(spec.allow), sorted(spec.deny)],
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


flags = FlagService()
registry = RolloutRegistry(flags)


def reset_after_fork() -> None:
    """In a forked child: rollout decisions count from zero; the rollouts (the flag file) are kept."""
    flags.recorder.reset_after_fork()


def _served(name: str, subject_id: object, default: str, context_id: str | None) -> Evaluation:
    if subject_id is None or subject_id == "":
        raise ValueError(f"rollout {name!r}: subject_id must be a non-empty value, got {subject_id!r}")
    served = flags.evaluate(name, str(subject_id), default, context_id)
    # A flag the provider does not know, while it is healthy, is a rollout nobody configured: the
    # caller's mistake. A provider in error (a flag file broken at start) serves the control.
    if served.error == ErrorCode.FLAG_NOT_FOUND and flags.healthy():
        raise ValueError(f"rollout {name!r} is not configured: pass percent= or add [rollouts.{name}]")
    return served


def _evaluate(name: str, subject_id: object, default: str) -> Decision:
    context_id = pseudonymize(str(subject_id))
    served = _served(name, subject_id, default, context_id)
    return Decision(name, served.value, served.reason, context_id)


def decide(
    name: str,
    subject_id: object,
    *,
    percent: float | None = None,
    control: str | None = None,
    candidate: str | None = None,
) -> Decision:
    """Like :func:`rollout`, returning the whole decision."""
    if percent is not None:
        registry.seed_once(name, checked_percent(percent), control, candidate)
    return _evaluate(name, subject_id, control or DEFAULT_CONTROL)


def rollout(
    name: str,
    subject_id: object,
    *,
    percent: float | None = None,
    control: str | None = None,
    candidate: str | None = None,
) -> str:
    """The version ``subject_id`` gets in rollout ``name``: the OpenFeature flag ``name`` evaluated for it.

    ``percent`` (0-100), ``control`` and ``candidate`` seed the rollout in the flag file when it is
    not there yet (versions default to "1.0" and "2.0"); once it is, the file decides: change it
    with :func:`set_rollout` or ``otel-migration rollout set``. ``control`` is also what is served
    when the provider cannot answer.
    """
    if percent is not None:
        registry.seed_once(name, checked_percent(percent), control, candidate)
    # No pseudonym here: the hook computes one only when a span records the evaluation.
    return _served(name, subject_id, control or DEFAULT_CONTROL, None).value


def set_rollout(
    name: str,
    *,
    percent: float | None = None,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
) -> None:
    """Change a rollout in the flag file (ramp the percent, edit the lists): every process follows."""
    registry.update(name, percent=percent, allow=allow, deny=deny)


def kill_rollout(name: str, reason: str = "") -> None:
    """The kill switch, in the flag file: every process serves the control version, a rollback."""
    registry.kill(name, reason)


def restore_rollout(name: str) -> None:
    """Lift the kill switch in the flag file; the rule in force before the kill applies again."""
    registry.restore(name)


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
        if percent is not None:
            registry.seed_once(name, checked_percent(percent), ordered[0], ordered[-1])
        state = registry.get(name)
        if state is None and flags.serves(flags.file()):
            raise ValueError(f"Router {name!r}: pass percent= or configure [rollouts.{name}]")
        #: Served when the provider answers nothing we can run (an error, an unknown variant).
        self._fallback = state.control if state is not None and state.control in versions else ordered[0]
        self._async = any(inspect.iscoroutinefunction(f) for f in versions.values())

    def _choose(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Callable[..., Any], Decision]:
        decision = _evaluate(self.name, self._subject(*args, **kwargs), self._fallback)
        implementation = self._versions.get(decision.variant)
        if implementation is None:
            _logger.warning(
                "otel-migration: Router %r: the flag served %r, not one of %s; running %s",
                self.name,
                decision.variant,
                sorted(self._versions),
                self._fallback,
            )
            decision = replace(decision, variant=self._fallback, reason="error")
            implementation = self._versions[self._fallback]
        return implementation, decision

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
