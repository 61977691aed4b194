"""Exceptions that belong to the public API."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """Invalid configuration, raised once at start-up, naming the field, the value and its source.

    A ``ValueError`` so that code which already guards start-up against bad values catches it too.
    """

    def __init__(self, field: str, value: object, reason: str, *, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid setting {field!r} = {value!r}{where}: {reason}")
