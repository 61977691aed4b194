"""The service's identity on the resource: service.name, service.version, deployment.environment.name.

These three are settings like the others (``configure(service_name=...)``, the TOML file) and keep
their precedence: keyword arguments, then the environment, then the file. Their environment level
is not an ``OTEL_MIGRATION_*`` variable but the standard ones every OpenTelemetry SDK reads,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (``OTEL_SERVICE_NAME`` winning over a
``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, as the SDK has it): a second variable for the
same thing would only give two answers to one question.

They only shape a resource we build; attached to an application's own providers, the
application's resource stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

from . import semconv as sc

__all__ = ["RESOURCE_SETTINGS", "resource_attributes", "resource_settings_from_env"]

#: Setting name -> the resource attribute it sets.
RESOURCE_SETTINGS: Final = {
    "service_name": sc.SERVICE_NAME,
    "service_version": sc.SERVICE_VERSION,
    "deployment_environment": sc.DEPLOYMENT_ENVIRONMENT_NAME,
}


def _parse_resource_attributes(value: str) -> dict[str, str]:
    """``key1=value1,key2=value2`` with percent-encoded values, as the SDK's detector reads it."""
    found: dict[str, str] = {}
    for pair in value.split(","):
        key, sep, item = pair.partition("=")
        if sep and key.strip():
            found[key.strip()] = unquote(item.strip())
    return found


def resource_settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The resource settings the standard ``OTEL_*`` variables give (non-empty values only)."""
    attributes = _parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    service_name = (env.get("OTEL_SERVICE_NAME") or "").strip()
    if service_name:
        attributes[sc.SERVICE_NAME] = service_name
    return {
        setting: attributes[attribute]
        for setting, attribute in RESOURCE_SETTINGS.items()
        if attributes.get(attribute)
    }


def resource_attributes(settings: object) -> dict[str, str]:
    """The attributes of the resource settings that are set, e.g. ``{"service.name": "checkout"}``."""
    given = ((attribute, getattr(settings, name, None)) for name, attribute in RESOURCE_SETTINGS.items())
    return {attribute: value for attribute, value in given if isinstance(value, str) and value}
