"""The migration scope in effect: which migration, operation, version and phase a call runs under.

It travels inside the OpenTelemetry ``Context`` rather than in a context variable of its own, so one
``attach`` makes both the span and the scope current, and whatever already carries OTel context
across threads, tasks or executors (contrib's threading and asyncio instrumentations, user code
calling ``context.attach``) carries the scope as well. LLM calls read it to label their spans and
cost with the version and phase that made them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from . import semconv as sc

__all__ = [
    "SCOPE_KEY",
    "SPAN_KEY",
    "SUBJECT_KEY",
    "Scope",
    "Subject",
    "call_context",
    "current_scope",
    "current_subject",
    "scope_context",
    "subject_context",
]

#: Context keys of the scope and the subject (read directly only by the versioned-call fast path).
SCOPE_KEY: Final = otel_context.create_key("otel_migration.scope")
SUBJECT_KEY: Final = otel_context.create_key("otel_migration.subject")


@dataclass(frozen=True, slots=True)
class Scope:
    """Immutable: nested scopes are new objects, so a parent's scope is never changed by a child."""

    migration: str
    operation: str
    version: str
    phase: str | None = None
    #: Pseudonymised ids of the user and the session the call serves (see otel_migration.subject).
    subject: str | None = None
    session: str | None = None

    def with_phase(self, phase: str) -> Scope:
        return replace(self, phase=phase)

    def span_attributes(self) -> dict[str, str]:
        """The migration attributes of a span started under this scope (the phase only inside one)."""
        attributes = {
            sc.MIGRATION_NAME: self.migration,
            sc.MIGRATION_VERSION: self.version,
            sc.MIGRATION_OPERATION: self.operation,
        }
        if self.phase:
            attributes[sc.MIGRATION_PHASE] = self.phase
        return attributes


# The key the API keeps the current span under, read once through the public function that sets it.
SPAN_KEY: Final = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())))


def call_context(parent: otel_context.Context, span: Span, scope: Scope) -> otel_context.Context:
    """``parent`` with ``span`` current and ``scope`` in effect: one new context, not two in a row."""
    return otel_context.Context({**parent, SPAN_KEY: span, SCOPE_KEY: scope})


def current_scope(ctx: otel_context.Context | None = None) -> Scope | None:
    """The scope in effect, or None outside any versioned call."""
    value = otel_context.get_value(SCOPE_KEY, ctx)
    return value if isinstance(value, Scope) else None


def scope_context(scope: Scope, ctx: otel_context.Context | None = None) -> otel_context.Context:
    """A context that carries ``scope`` on top of ``ctx`` (the current one by default)."""
    return otel_context.set_value(SCOPE_KEY, scope, ctx)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a call serves, pseudonymised: a user and, optionally, one of their sessions."""

    user: str
    session: str | None = None
    tenant: str | None = None


def current_subject(ctx: otel_context.Context | None = None) -> Subject | None:
    """The subject set by :func:`otel_migration.subject` or a rollout router, if any."""
    value = otel_context.get_value(SUBJECT_KEY, ctx)
    return value if isinstance(value, Subject) else None


def subject_context(subject: Subject, ctx: otel_context.Context | None = None) -> otel_context.Context:
    return otel_context.set_value(SUBJECT_KEY, subject, ctx)
