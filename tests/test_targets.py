"""Configured targets: wrapped at once or on import, and restored exactly on shutdown."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_migration
from otel_migration import ConfigError

from .conftest import Harness, make_harness

TARGETS = {
    "tests.sample_app.legacy:charge": {"version": "1.0", "operation": "charge"},
    "tests.sample_app.modern:Billing.charge": {"version": "2.0", "operation": "charge"},
    "tests.sample_app.modern:Billing.fee": {"version": "2.0"},
    "tests.sample_app.modern:Billing.currency": {"version": "2.0", "migration": "money"},
    "tests.sample_app.modern:Billing.settle": {"version": "2.0", "operation": "settle"},
}


@pytest.fixture
def fresh_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in sys.modules if n.startswith("tests.sample_app.")]:
        del sys.modules[name]
    yield
    otel_migration.shutdown()
    for name in [n for n in sys.modules if n.startswith("tests.sample_app.")]:
        del sys.modules[name]


def test_targets_already_imported_are_wrapped_at_once_and_restored(fresh_modules: None) -> None:
    legacy = importlib.import_module("tests.sample_app.legacy")
    modern = importlib.import_module("tests.sample_app.modern")
    legacy_charge = legacy.charge
    originals = {
        n: inspect.getattr_static(modern.Billing, n) for n in ("charge", "fee", "currency", "settle")
    }
    h = make_harness(targets=TARGETS)

    assert legacy.charge(3) == "legacy:3"
    billing = modern.Billing()
    assert billing.charge(4) == "modern:4"
    assert modern.Billing.fee(500) == 5 and billing.fee(500) == 5
    assert modern.Billing.currency() == "Billing:EUR"
    assert modern.PremiumBilling.currency() == "PremiumBilling:EUR"
    assert asyncio.run(billing.settle(9)) == 9

    by_name = {}
    for span in h.spans():
        by_name.setdefault(span.name, []).append(span.attributes)
    assert sorted(a["migration.version"] for a in by_name["charge"]) == ["1.0", "2.0"]
    assert by_name["fee"][0]["migration.operation"] == "fee"  # defaults to the attribute's name
    assert by_name["currency"][0]["migration.name"] == "money"
    assert by_name["charge"][0]["code.function.name"] in (
        "tests.sample_app.legacy.charge",
        "tests.sample_app.modern.Billing.charge",
    )
    assert h.value("migration.requests", migration_operation="charge") == 2

    otel_migration.shutdown()
    assert legacy.charge is legacy_charge
    for name in ("charge", "fee", "currency", "settle"):
        assert inspect.getattr_static(modern.Billing, name) is originals[name]
    assert isinstance(inspect.getattr_static(modern.Billing, "fee"), staticmethod)
    assert modern.Billing().fee(300) == 3  # still a staticmethod: no self passed
    h.tracer_provider.shutdown()


def test_targets_not_yet_imported_are_wrapped_on_import(fresh_modules: None) -> None:
    h = make_harness(targets=TARGETS)
    assert "tests.sample_app.legacy" not in sys.modules
    legacy = importlib.import_module("tests.sample_app.legacy")
    assert legacy.charge(1) == "legacy:1"
    (span,) = h.spans("charge")
    assert span.attributes["migration.version"] == "1.0"
    otel_migration.shutdown()
    assert not hasattr(legacy.charge, "__wrapped__")


def test_inherited_method_target_leaves_the_base_class_alone(fresh_modules: None) -> None:
    modern = importlib.import_module("tests.sample_app.modern")
    base_charge = modern.Billing.__dict__["charge"]
    h = make_harness(targets={"tests.sample_app.modern:PremiumBilling.charge": {"version": "2.0"}})
    assert modern.PremiumBilling().charge(1) == "modern:1"
    assert modern.Billing().charge(1) == "modern:1"
    assert len(h.spans("charge")) == 1
    otel_migration.shutdown()
    assert "charge" not in modern.PremiumBilling.__dict__
    assert modern.Billing.__dict__["charge"] is base_charge


def test_hook_of_a_shut_down_configuration_does_nothing(fresh_modules: None) -> None:
    h = make_harness(targets=TARGETS)
    otel_migration.shutdown()
    legacy = importlib.import_module("tests.sample_app.legacy")
    assert not hasattr(legacy.charge, "__wrapped__")
    assert h.spans() == []


def test_missing_module_is_one_clear_error(fresh_modules: None) -> None:
    with pytest.raises(ConfigError) as caught:
        make_harness(targets={"tests.sample_app.nowhere:charge": {"version": "1.0"}})
    assert caught.value.field == "targets['tests.sample_app.nowhere:charge']"
    assert "tests.sample_app.nowhere" in str(caught.value)


def test_missing_attribute_of_an_imported_module_is_one_clear_error_and_nothing_stays_wrapped(
    fresh_modules: None,
) -> None:
    legacy = importlib.import_module("tests.sample_app.legacy")
    original = legacy.charge
    targets = {
        "tests.sample_app.legacy:charge": {"version": "1.0"},
        "tests.sample_app.legacy:refund": {"version": "1.0"},
    }
    with pytest.raises(ConfigError, match="refund"):
        make_harness(targets=targets)
    assert legacy.charge is original  # the first target was rolled back


def test_missing_attribute_on_later_import_is_logged_not_raised(
    fresh_modules: None, caplog: pytest.LogCaptureFixture
) -> None:
    make_harness(targets={"tests.sample_app.legacy:refund": {"version": "1.0"}})
    legacy = importlib.import_module("tests.sample_app.legacy")  # must not raise into the import
    assert legacy.charge(2) == "legacy:2"
    assert "refund" in caplog.text


def test_reconfigure_replaces_targets(fresh_modules: None, harness: Harness) -> None:
    legacy = importlib.import_module("tests.sample_app.legacy")
    original = legacy.charge
    make_harness(targets={"tests.sample_app.legacy:charge": {"version": "1.0"}})
    assert legacy.charge is not original
    make_harness(targets={"tests.sample_app.legacy:charge": {"version": "1.1"}})
    assert legacy.charge.__wrapped__ is original  # wrapped once, not twice
