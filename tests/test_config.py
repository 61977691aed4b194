"""Settings: precedence, discovery, and one clear ConfigError per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import metrics, trace

import otel_migration
from otel_migration import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_defaults_without_any_source() -> None:
    settings = load_settings(environ={})
    assert settings.enabled is True
    assert settings.migration == "default"
    assert settings.exporter == "auto"
    assert settings.targets == ()
    assert settings.config_file is None


def test_precedence_kwargs_over_env_over_file(tmp_path: Path) -> None:
    (tmp_path / "otel-migration.toml").write_text(
        'migration = "from-file"\nexporter = "console"\nmax_queue_size = 10\n'
    )
    env = {"OTEL_MIGRATION_NAME": "from-env", "OTEL_MIGRATION_EXPORTER": "none"}
    settings = load_settings({"migration": "from-kwargs"}, environ=env)
    assert settings.migration == "from-kwargs"  # kwargs beat env
    assert settings.exporter == "none"  # env beats file
    assert settings.max_queue_size == 10  # file beats default
    assert settings.config_file == "otel-migration.toml"


def test_pyproject_table_is_read_when_there_is_no_own_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.otel-migration]\nmigration = "billing"\n\n'
        '[tool.otel-migration.targets]\n"billing.legacy:charge" = {version = "1.0", operation = "charge"}\n'
        '"billing.next:Billing.charge" = {version = "2.0"}\n'
    )
    settings = load_settings(environ={})
    assert settings.migration == "billing"
    legacy, modern = settings.targets
    assert (legacy.module, legacy.attribute, legacy.version, legacy.operation, legacy.migration) == (
        "billing.legacy",
        "charge",
        "1.0",
        "charge",
        "billing",
    )
    assert (modern.attribute, modern.operation) == ("Billing.charge", "charge")


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('migration = "named"\n')
    assert load_settings(environ={"OTEL_MIGRATION_CONFIG": str(path)}).migration == "named"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OTEL_MIGRATION_CONFIG": str(tmp_path / "missing.toml")})
    assert caught.value.field == "config_file" and caught.value.source == "OTEL_MIGRATION_CONFIG"


@pytest.mark.parametrize(
    ("file_text", "env", "kwargs", "field", "fragment"),
    [
        ('migraton = "typo"\n', {}, {}, "migraton", "unknown setting"),
        ("", {}, {"exporter_kind": "otlp"}, "exporter_kind", "unknown setting"),
        ("", {"OTEL_MIGRATION_EXPORTR": "otlp"}, {}, "OTEL_MIGRATION_EXPORTR", "unknown variable"),
        ('max_queue_size = "ten"\n', {}, {}, "max_queue_size", "positive integer"),
        ("", {"OTEL_MIGRATION_MAX_QUEUE_SIZE": "-3"}, {}, "max_queue_size", "positive integer"),
        ("enabled = 3\n", {}, {}, "enabled", "true or false"),
        ('exporter = "kafka"\n', {}, {}, "exporter", "auto, otlp, file, console, none"),
        (
            '[targets]\n"billing.legacy.charge" = {version = "1.0"}\n',
            {},
            {},
            "targets['billing.legacy.charge']",
            "package.module:function",
        ),
        (
            '[targets]\n"billing:charge" = {operation = "charge"}\n',
            {},
            {},
            "targets['billing:charge'].version",
            "required",
        ),
        (
            '[targets]\n"billing:charge" = {version = "1.0", phase = "x"}\n',
            {},
            {},
            "targets['billing:charge'].phase",
            "unknown key",
        ),
        ('[error_categories]\nQuotaError = "money"\n', {}, {}, "error_categories", "must be one of"),
        (
            "",
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            {},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc, http/protobuf",
        ),
        ("", {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, {}, "OTEL_EXPORTER_OTLP_TIMEOUT", "positive number"),
        ("this is = not toml [", {}, {}, "config_file", "not valid TOML"),
    ],
)
def test_each_mistake_is_one_error_naming_field_and_value(
    tmp_path: Path, file_text: str, env: dict[str, str], kwargs: dict[str, object], field: str, fragment: str
) -> None:
    if file_text:
        (tmp_path / "otel-migration.toml").write_text(file_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(kwargs, environ=env)
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert field in str(caught.value)


def test_bad_configuration_leaves_nothing_half_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "otel-migration.toml").write_text('[targets]\n"json:nothing_here" = {version = "1.0"}\n')
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    import json

    original = json.dumps
    with pytest.raises(ConfigError, match="nothing_here"):
        otel_migration.configure()
    assert trace.get_tracer_provider() is tracer_provider  # no global provider installed
    assert metrics.get_meter_provider() is meter_provider
    assert json.dumps is original
    assert otel_migration.current_scope() is None
    from otel_migration._core import runtime as _runtime

    assert _runtime.configured() is None


def test_sdk_disabled_turns_everything_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    from .conftest import make_harness

    h = make_harness()
    with otel_migration.versioned("2.0", operation="x"):
        pass
    assert h.spans() == [] and h.points("migration.requests") == []
