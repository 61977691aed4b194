"""Subjects (users, sessions, tenants): pseudonymised before anything leaves the process.

A raw user id on a span or a metric is personal data sent to every backend. Ids are replaced by a
keyed hash (HMAC-SHA256, 64 bits in hex): the same user maps to the same pseudonym for as long as
the key is the same, so unique-user counts stay right, but nobody without the key can go back.
Set ``subject_key`` to share pseudonyms across processes; ``export_subject_ids = true`` opts out.

The pseudonym doubles as a uniformly distributed 64-bit hash, which the unique-user sketches use
directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType

from opentelemetry import context as otel_context

from ._context import Subject, subject_context

__all__ = ["Pseudonymizer", "pseudonymize", "set_pseudonymizer", "subject", "subject_hash"]


class Pseudonymizer:
    """Maps raw subject ids to stable pseudonyms under one key (or to themselves when opted out)."""

    def __init__(self, key: bytes | None = None, *, export_raw: bool = False) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.export_raw = export_raw
        # Recent ids are cheap to look up again; bounded so a million users cannot grow it.
        self.pseudonym: Callable[[str], str] = lru_cache(maxsize=16_384)(self._pseudonym)

    def _pseudonym(self, subject_id: str) -> str:
        if self.export_raw:
            return subject_id
        return hmac.new(self._key, subject_id.encode(), hashlib.sha256).hexdigest()[:16]


_lock = threading.Lock()
_current = Pseudonymizer()


def set_pseudonymizer(key: str | None, *, export_raw: bool) -> None:
    """Install the configuration's key (None keeps this process's random key)."""
    global _current
    with _lock:
        if key is None and export_raw == _current.export_raw:
            return
        _current = Pseudonymizer(key.encode() if key is not None else None, export_raw=export_raw)


def pseudonymize(subject_id: object) -> str:
    """The pseudonym of a subject id under the configured key."""
    return _current.pseudonym(str(subject_id))


def subject_hash(pseudonym: str) -> int:
    """A 64-bit hash of a subject: the pseudonym itself when it is one, else blake2b of the raw id."""
    if len(pseudonym) == 16:
        try:
            return int(pseudonym, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(pseudonym.encode(), digest_size=8).digest(), "big")


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
        self._tokens: list[object] = []

    def __enter__(self) -> str:
        self._tokens.append(otel_context.attach(subject_context(self.subject)))
        return self.pseudonym

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
