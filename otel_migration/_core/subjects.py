"""``subject()``: attribute versioned calls to a user (and session), pseudonymised, for adoption counts.

The pseudonym doubles as a uniformly distributed 64-bit hash, which the unique-user sketches use
directly (see :mod:`otel_migration._core.pseudonyms` for the key).

One ``subject`` object may be entered by many threads and tasks at once (a module-level one, or one
kept on a request object handed to workers): the context token each ``with`` made is kept per
thread and task in an :class:`OwnedStack`, never on the object, so each exit detaches exactly what
its own enter attached.
"""

from __future__ import annotations

from types import TracebackType

from opentelemetry import context as otel_context

from .context import Subject, subject_context
from .lifecycle import OwnedStack
from .limits import clean
from .pseudonyms import DEFAULT, subject_hash
from .runtime import active

__all__ = ["pseudonymize", "subject", "subject_hash"]

#: The context tokens of the subject blocks open in this thread or task.
_OPEN: OwnedStack[object] = OwnedStack("otel_migration_subjects")


def pseudonymize(subject_id: object) -> str:
    """The pseudonym of a subject id under the key of the configuration in effect."""
    telemetry = active()
    pseudonymizer = telemetry.pseudonymizer if telemetry is not None else DEFAULT
    # Bounded and cleaned: with export_subject_ids the raw id is what leaves the process.
    return clean(pseudonymizer.pseudonym(str(subject_id)))


class subject:
    """Attribute the versioned calls inside to a user (and session), pseudonymised, for adoption counts.

    A ``with`` block, sync or async: ``with otel_migration.subject(user.id, session=sid): ...``.
    """

    def __init__(self, subject_id: object, *, session: object = None, tenant: object = None) -> None:
        if subject_id is None or subject_id == "":
            raise ValueError(f"subject(): subject_id must be a non-empty value, got {subject_id!r}")
        self.pseudonym = pseudonymize(subject_id)
        self.subject = Subject(
            self.pseudonym,
            pseudonymize(session) if session not in (None, "") else None,
            pseudonymize(tenant) if tenant not in (None, "") else None,
        )

    def __enter__(self) -> str:
        _OPEN.push(self, otel_context.attach(subject_context(self.subject)))
        return self.pseudonym

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        found, token = _OPEN.pop(self)
        if found:
            otel_context.detach(token)  # type: ignore[arg-type]

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
