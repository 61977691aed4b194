"""configure(service_name=..., service_version=..., deployment_environment=...) set the resource we build.

Precedence, as for every setting: configure() keyword arguments, then the environment (here the
standard OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES), then the TOML file, then the SDK's default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import otel_migration
from otel_migration._core.config import load_settings
from otel_migration._core.errors import ConfigError
from otel_migration._core.resource import resource_settings_from_env
from otel_migration._export.pipeline import process_resource


def _resource(**settings: object) -> dict[str, object]:
    """The resource configure() gives the providers it builds (global providers can be set only once
    per process, so the end-to-end case runs in a subprocess: tests/test_events_otlp.py)."""
    return dict(process_resource(load_settings(settings)).attributes)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_configure_sets_the_official_resource_attributes(workdir: Path) -> None:
    resource = _resource(service_name="checkout", service_version="4.2.0", deployment_environment="staging")
    assert resource["service.name"] == "checkout"
    assert resource["service.version"] == "4.2.0"
    assert resource["deployment.environment.name"] == "staging"
    assert resource["service.instance.id"]  # still one per process


def test_without_any_the_sdk_default_stays(workdir: Path) -> None:
    resource = _resource()
    assert str(resource["service.name"]).startswith("unknown_service")
    assert "deployment.environment.name" not in resource


def test_precedence_kwargs_then_environment_then_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "otel-migration.toml").write_text(
        'service_name = "from-file"\nservice_version = "1.0.0-file"\ndeployment_environment = "file-env"\n'
    )
    assert load_settings().service_name == "from-file"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=attrs,service.version=2.0%2Bbuild.7")
    settings = load_settings()
    assert (settings.service_name, settings.service_version) == ("attrs", "2.0+build.7")
    assert settings.deployment_environment == "file-env"  # the environment does not say it: the file does
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-name")  # beats service.name in OTEL_RESOURCE_ATTRIBUTES
    assert load_settings().service_name == "env-name"
    settings = load_settings({"service_name": "kwarg", "deployment_environment": "prod"})
    assert (settings.service_name, settings.service_version, settings.deployment_environment) == (
        "kwarg",
        "2.0+build.7",
        "prod",
    )
    resource = _resource(service_name="kwarg")
    assert resource["service.name"] == "kwarg"
    assert resource["service.version"] == "2.0+build.7"
    assert resource["deployment.environment.name"] == "file-env"


def test_bad_values_are_refused_naming_the_setting(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="service_name"):
        otel_migration.configure(service_name="  ")
    with pytest.raises(ConfigError, match="service_version"):
        load_settings({"service_version": 3})


def test_environment_parsing() -> None:
    assert resource_settings_from_env({}) == {}
    assert resource_settings_from_env(
        {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod, team=payments,broken,=x"}
    ) == {"deployment_environment": "prod"}
    assert resource_settings_from_env({"OTEL_SERVICE_NAME": "  "}) == {}
