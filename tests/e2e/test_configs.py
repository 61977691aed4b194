"""Every shipped config passes the real binaries' own validation (and validation really checks)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .stack import CONFIG, binaries

pytestmark = pytest.mark.e2e


def validate(binary: Path, *configs: Path) -> subprocess.CompletedProcess[str]:
    args = [str(binary), "validate", *(f"--config={c}" for c in configs)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_collector_config_with_generated_cost_rules_validates() -> None:
    otelcol, _ = binaries()
    result = validate(otelcol, CONFIG / "otelcol.yaml", CONFIG / "llm-cost.yaml")
    assert result.returncode == 0, result.stderr


def test_first_tier_gateway_config_validates() -> None:
    """collector_config/otelcol-gateway.yaml: the scale-out layout's first tier (docs/fleet.md)."""
    otelcol, _ = binaries()
    result = validate(otelcol, CONFIG / "otelcol-gateway.yaml")
    assert result.returncode == 0, result.stderr


def test_jaeger_config_validates() -> None:
    _, jaeger = binaries()
    result = validate(jaeger, CONFIG / "jaeger.yaml")
    assert result.returncode == 0, result.stderr


def test_validation_rejects_a_broken_ottl_statement(tmp_path: Path) -> None:
    otelcol, _ = binaries()
    broken = tmp_path / "llm-cost.yaml"
    broken.write_text((CONFIG / "llm-cost.yaml").read_text().replace("ToLowerCase(", "ToLowerCaseTypo(", 1))
    result = validate(otelcol, CONFIG / "otelcol.yaml", broken)
    assert result.returncode != 0 and "ToLowerCaseTypo" in result.stderr
