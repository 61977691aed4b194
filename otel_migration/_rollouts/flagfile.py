"""The flag file: every rollout as a flag in flagd's schema, one file every process of a host reads.

A rollout named ``checkout`` is the flag ``checkout`` with one variant per version, and its rule in
``$evaluators["checkout"]`` (so a kill can take the rule out of play and a restore put it back as
it was)::

    "flags": {"checkout": {
        "state": "ENABLED", "variants": {"1.0": "1.0", "2.0": "2.0"}, "defaultVariant": "1.0",
        "targeting": {"$ref": "checkout"},
        "metadata": {"managedBy": "otel-migration", "killed": false, "killReason": "",
                     "rollbacks": 0, "percentSince": 1764680000.0}}},
    "$evaluators": {"checkout": {"if": [
        {"in": [{"var": "targetingKey"}, ["fragile"]]}, "1.0",     # deny list
        {"in": [{"var": "targetingKey"}, ["vip"]]}, "2.0",         # allow list
        {"fractional": [["1.0", 7000], ["2.0", 3000]]}]}}        # 30 % in basis points

``fractional`` hashes (flag key, targeting key) with murmur3 into the summed weight, which stays
10,000 whatever the percent; the candidate is listed last, so its range only grows downwards as
the percent rises and a user never moves back from the candidate to the control.

A kill is flag state: the targeting goes (the rule stays in ``$evaluators``), ``defaultVariant``
is the control, so every evaluation anywhere serves the control whatever its code default, and
``metadata`` says killed, why, and counts the rollback. Flags without ``managedBy`` are the
application's: this module keeps them as they are.

Writers take an ``flock`` on ``<file>.lock`` and replace the file with ``os.replace`` of a fully
written temporary file in the same directory, so readers (flagd's file watcher polls the file's
mtime) never see half a file and two writers never lose each other's change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

__all__ = ["FlagFile", "RolloutState", "check_name"]

SCHEMA: Final = "https://flagd.dev/schema/v0/flags.json"
MANAGED_BY: Final = "otel-migration"
#: The fractional weights always sum to this: the bucket of a user depends on the sum, so a
#: constant sum is what keeps assignments sticky as the percent changes (percent in basis points).
WEIGHT_TOTAL: Final = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
#: What flagd's ``$evaluators`` substitution reads back as written (see :func:`_check_loadable`).
_LOADABLE = re.compile(r"[\x20-\x5b\x5d-\x7e]*")


def check_name(name: str) -> str:
    """Flag keys are written in JSON and matched by flagd's ``$ref`` substitution: keep them plain."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"rollout name must be letters, digits and . _ : / - (at most 200), got {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class RolloutState:
    """One rollout as the flag file holds it: what every process of the host serves."""

    name: str
    control: str = "1.0"
    candidate: str = "2.0"
    percent: float = 0.0
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    killed: bool = False
    kill_reason: str = ""
    #: Kills recorded in the flag state (the same count on every process).
    rollbacks: int = 0
    #: When the percent last changed (seconds since the epoch).
    percent_since: float = 0.0
    #: The rule is not the shape this module writes (edited by hand): shown, never rewritten.
    custom: bool = False
    #: Fingerprint of the ``[rollouts.NAME]`` last applied ("" when none was).
    configured: str = ""

    def serves(self) -> str:
        """What every process serves, in one line."""
        if self.killed:
            why = f" ({self.kill_reason})" if self.kill_reason else ""
            return f"{self.control} to everyone: killed{why}"
        if self.custom:
            return f"{self.control} or {self.candidate} by a hand-written rule"
        text = f"{self.candidate} to {_percent_text(self.percent)} % of users, {self.control} to the rest"
        if self.deny:
            text += f"; {self.control} always to {len(self.deny)} denied"
        if self.allow:
            text += f"; {self.candidate} always to {len(self.allow)} allowed"
        return text


def _percent_text(percent: float) -> str:
    return f"{percent:g}"


def weights(percent: float) -> tuple[int, int]:
    """(control, candidate) weights in basis points for ``percent``."""
    candidate = round(percent * WEIGHT_TOTAL / 100)
    return WEIGHT_TOTAL - candidate, candidate


def _in(values: frozenset[str]) -> dict[str, Any]:
    return {"in": [{"var": "targetingKey"}, sorted(values)]}


def rule(state: RolloutState) -> dict[str, Any]:
    """The targeting rule: deny list, allow list, then the fractional split (candidate last)."""
    control_weight, candidate_weight = weights(state.percent)
    split = {"fractional": [[state.control, control_weight], [state.candidate, candidate_weight]]}
    branches: list[Any] = []
    if state.deny:
        branches += [_in(state.deny), state.control]
    if state.allow:
        branches += [_in(state.allow), state.candidate]
    return {"if": [*branches, split]} if branches else split


def _parse_rule(rule: Any, control: str, candidate: str) -> tuple[float, frozenset[str], frozenset[str]]:
    """(percent, allow, deny) of a rule this module wrote; ValueError for any other shape."""
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    split = rule
    if isinstance(rule, Mapping) and list(rule) == ["if"]:
        *branches, split = rule["if"]
        if len(branches) % 2:
            raise ValueError("unexpected if")
        for condition, variant in zip(branches[::2], branches[1::2], strict=True):
            values = condition["in"][1]
            if condition["in"][0] != {"var": "targetingKey"} or not isinstance(values, list):
                raise ValueError("unexpected condition")
            if variant == control:
                deny = frozenset(map(str, values))
            elif variant == candidate:
                allow = frozenset(map(str, values))
            else:
                raise ValueError("unexpected variant")
    if not isinstance(split, Mapping) or list(split) != ["fractional"]:
        raise ValueError("unexpected split")
    fractions = split["fractional"]
    if [f[0] for f in fractions] != [control, candidate] or sum(f[1] for f in fractions) != WEIGHT_TOTAL:
        raise ValueError("unexpected fractions")
    return fractions[1][1] * 100 / WEIGHT_TOTAL, allow, deny


def parse(document: Mapping[str, Any]) -> dict[str, RolloutState]:
    """The rollouts (flags with ``managedBy: otel-migration``) of a flag file's content."""
    flags = document.get("flags") or {}
    evaluators = document.get("$evaluators") or {}
    found: dict[str, RolloutState] = {}
    for name, flag in flags.items():
        metadata = flag.get("metadata") or {}
        if not isinstance(metadata, Mapping) or metadata.get("managedBy") != MANAGED_BY:
            continue
        variants = list(flag.get("variants") or {})
        control = str(flag.get("defaultVariant") or (variants[0] if variants else "1.0"))
        candidate = next((v for v in variants if v != control), control)
        state = RolloutState(
            name,
            control,
            candidate,
            killed=bool(metadata.get("killed", False)),
            kill_reason=str(metadata.get("killReason", "")),
            rollbacks=int(metadata.get("rollbacks", 0)),
            percent_since=float(metadata.get("percentSince", 0.0)),
            configured=str(metadata.get("configured", "")),
        )
        try:
            percent, allow, deny = _parse_rule(evaluators.get(name), control, candidate)
            state = replace(state, percent=percent, allow=allow, deny=deny)
        except (ValueError, KeyError, TypeError, IndexError):
            state = replace(state, custom=True)
        found[name] = state
    return found


def _check_loadable(state: RolloutState) -> None:
    """ValueError for a version or listed user flagd's file provider could not load.

    flagd puts each ``$evaluators`` rule in place with ``re.sub``, its ``json.dumps`` as the
    replacement template: there a non-ASCII or control character (written ``\\uXXXX``) is a bad
    escape and the whole file fails to load, in every process, so no later change (a kill
    included) is ever served; a backslash silently becomes another character. Printable ASCII
    without a backslash is what it reads back as written.
    """
    for what, values in (
        ("version", (state.control, state.candidate)),
        ("deny-listed user", sorted(state.deny)),
        ("allow-listed user", sorted(state.allow)),
    ):
        for value in values:
            if not _LOADABLE.fullmatch(value):
                raise ValueError(
                    f"rollout {state.name!r}: {what} {value!r} cannot go into the flag file: flagd's "
                    "provider would fail to load the whole file (only printable ASCII without a "
                    "backslash); list a pseudonym or an ASCII id instead"
                )


def _write_rollout(document: dict[str, Any], state: RolloutState) -> None:
    _check_loadable(state)
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {state.control: state.control, state.candidate: state.candidate},
        "defaultVariant": state.control,
        "metadata": {
            "managedBy": MANAGED_BY,
            "killed": state.killed,
            "killReason": state.kill_reason,
            "rollbacks": state.rollbacks,
            "percentSince": state.percent_since,
        },
    }
    if state.configured:
        flag["metadata"]["configured"] = state.configured
    if not state.killed:
        flag["targeting"] = {"$ref": state.name}
    document.setdefault("flags", {})[state.name] = flag
    document.setdefault("$evaluators", {})[state.name] = rule(state)


class FlagFile:
    """One flag file: cached reads for the gauges and analytics, locked atomic edits for changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))
        self._cached: tuple[tuple[int, int, int], dict[str, RolloutState]] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def rollouts(self) -> dict[str, RolloutState]:
        """The rollouts in the file now (re-read only when the file changed; empty when missing)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            states = parse(json.loads(self.path.read_text()))
        except (OSError, ValueError, AttributeError, TypeError):
            # A file being edited by hand can be broken for a moment; flagd keeps its last good
            # flags then, and so do we.
            return cached[1] if cached is not None else {}
        self._cached = (key, states)
        return states

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_document(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"$schema": SCHEMA, "flags": {}}
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError(f"{self.path}: expected a JSON object of flags, got {type(document).__name__}")
        return document

    def _replace(self, document: Mapping[str, Any]) -> None:
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(document, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            # flagd's watcher reloads when the mtime is *greater* than the one it loaded, and the
            # kernel stamps files with a coarse clock (a few ms): two quick edits could share an
            # mtime and the second would never be seen. Every write moves the mtime forward.
            with contextlib.suppress(FileNotFoundError):
                stamp = max(time.time_ns(), self.path.stat().st_mtime_ns + 1_000_000)
                os.utime(temporary, ns=(stamp, stamp))
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def edit(
        self, change: Callable[[dict[str, RolloutState]], Mapping[str, RolloutState]]
    ) -> dict[str, RolloutState]:
        """Apply ``change`` (current rollouts -> rollouts to write) under the lock; the rollouts after it.

        The file is rewritten only when ``change`` returns something, so seeding an existing
        rollout costs a lock and a read, no write.
        """
        with self._locked():
            document = self._read_document()
            current = parse(document)
            changed = change(dict(current))
            for state in changed.values():
                if state.custom:
                    raise ValueError(
                        f"rollout {state.name!r}: its rule in {self.path} was edited by hand; edit it there"
                    )
                _write_rollout(document, state)
            if changed:
                self._replace(document)
            current.update(changed)
            return current

    def ensure(self) -> None:
        """Create an empty flag file if there is none (flagd's provider will not start without one)."""
        if self.path.exists():
            return
        with self._locked():
            if not self.path.exists():
                self._replace({"$schema": SCHEMA, "flags": {}})


def checked_percent(percent: object) -> float:
    """A percent from 0 to 100, as a float; ValueError naming the value otherwise."""
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int | float)
        or not math.isfinite(percent)
        or not 0 <= percent <= 100
    ):
        raise ValueError(f"percent must be a number from 0 to 100, got {percent!r}")
    return float(percent)
