"""Pseudonyms of subjects (users, sessions, tenants): a keyed hash, so raw ids never leave the process.

A raw user id on a span or a metric is personal data sent to every backend. Ids are replaced by a
keyed hash (HMAC-SHA256, 64 bits in hex): the same user maps to the same pseudonym for as long as
the key is the same, so unique-user counts stay right, but nobody without the key can go back.
Set ``subject_key`` to share pseudonyms across processes; ``export_subject_ids = true`` opts out.

Without ``subject_key`` every configuration of the process uses one random key, drawn once: a
reconfiguration must not give every user a new pseudonym (unique counts would double), and
children forked from a configured master share it, as they share the master's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from .config import Settings

__all__ = ["Pseudonymizer", "subject_hash"]

_PROCESS_KEY: Final = secrets.token_bytes(32)


class Pseudonymizer:
    """Maps raw subject ids to stable pseudonyms under one key (or to themselves when opted out)."""

    def __init__(self, key: bytes | None = None, *, export_raw: bool = False) -> None:
        self._key = key if key is not None else _PROCESS_KEY
        self.export_raw = export_raw
        # Recent ids are cheap to look up again; bounded so a million users cannot grow it.
        self.pseudonym: Callable[[str], str] = lru_cache(maxsize=16_384)(self._pseudonym)

    @classmethod
    def for_settings(cls, settings: Settings) -> Pseudonymizer:
        key = settings.subject_key.encode() if settings.subject_key is not None else None
        return cls(key, export_raw=settings.export_subject_ids)

    def _pseudonym(self, subject_id: str) -> str:
        if self.export_raw:
            return subject_id
        return hmac.new(self._key, subject_id.encode(), hashlib.sha256).hexdigest()[:16]


#: Used while nothing is configured.
DEFAULT: Final = Pseudonymizer()


def subject_hash(pseudonym: str) -> int:
    """A 64-bit hash of a subject: the pseudonym itself when it is one, else blake2b of the raw id."""
    if len(pseudonym) == 16:
        try:
            return int(pseudonym, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(pseudonym.encode(), digest_size=8).digest(), "big")
