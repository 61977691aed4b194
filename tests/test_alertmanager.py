"""The shipped Alertmanager config is valid and routes each kind of alert to the receivers it promises.

``amtool check-config`` parses the config and its templates; ``amtool config routes test
--verify.receivers`` walks the routing tree for a label set and fails unless exactly the expected
receivers come out. Routing does not know about inhibition: an inhibited warning is routed like any
warning (to chat) and held back at notification time, which tests/e2e/test_alerting.py proves with
a real Alertmanager. The templates render real alerts in that test too (the e-mail it receives).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "collector_config" / "alertmanager.yml"
RULES = ROOT / "collector_config" / "alerts" / "migration.rules.yml"
MISSING_AMTOOL = "amtool not found: install the Debian package 'prometheus-alertmanager' (make test does)"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(MISSING_AMTOOL, pytrace=False)
    return subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_config_and_templates_pass_amtool_check_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout and "4 receivers" in result.stdout, result.stdout
    assert result.stdout.count("SUCCESS") == 2, result.stdout  # the config, then its templates


@pytest.mark.parametrize(
    ("case", "labels", "receivers"),
    [
        (
            "critical",
            ["alertname=MigrationHighErrorRate", "severity=critical", "job=shop", "migration_name=checkout"],
            "pager,chat,email",
        ),
        (
            "warning",
            ["alertname=MigrationLatencySLO", "severity=warning", "job=shop", "migration_name=checkout"],
            "chat",
        ),
        # The warning an active critical of its migration inhibits: routed to chat, then held back.
        (
            "inhibited",
            ["alertname=MigrationErrorSpike", "severity=warning", "job=shop", "migration_name=checkout"],
            "chat",
        ),
        (
            "escalated",
            [
                "alertname=CriticalAlertUnresolved",
                "severity=critical",
                "escalate=true",
                "escalated_alertname=MigrationRollbackTriggered",
                "job=shop",
                "migration_name=checkout",
            ],
            "escalation,pager,chat,email",
        ),
        ("budget critical", ["alertname=LLMBudget90Percent", "severity=critical"], "pager,chat,email"),
        ("budget warning", ["alertname=LLMBudget50Percent", "severity=warning"], "chat"),
    ],
)
def test_route(case: str, labels: list[str], receivers: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receivers}", *labels
    )
    assert result.returncode == 0, f"{case}: {result.stdout}{result.stderr}"
    assert result.stdout.strip() == receivers, f"{case}: {result.stdout}"


def test_a_wrong_receiver_list_fails_the_route_test() -> None:
    """The check above can fail: a critical alert does not go to chat alone."""
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=chat",
        "severity=critical",
        "migration_name=checkout",
    )
    assert result.returncode != 0, result.stdout


def test_every_severity_the_rules_use_has_a_route() -> None:
    severities = set(re.findall(r"^\s+severity:\s*(\S+)\s*$", RULES.read_text(), re.MULTILINE))
    assert severities == {"critical", "warning"}
    for severity in severities:
        result = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"severity={severity}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() != "", severity


def test_inhibition_matches_the_labels_the_rules_put_on_alerts() -> None:
    """The inhibit rules compare job and migration_name and name the rollback alert: all of them exist."""
    config, rules = CONFIG.read_text(), RULES.read_text()
    assert "- alert: MigrationRollbackTriggered" in rules
    assert 'alertname="MigrationRollbackTriggered"' in config
    for equal in re.findall(r"^\s+equal:\s*\[(.*)\]\s*$", config, re.MULTILINE):
        for label in (name.strip() for name in equal.split(",")):
            assert label == "job" or f"$labels.{label}" in rules, label
