"""The Prometheus alert rules are valid, complete, and their promtool unit tests pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ALERTS_DIR = Path(__file__).resolve().parents[1] / "collector_config" / "alerts"
RULES = ALERTS_DIR / "migration.rules.yml"
RULE_TESTS = ALERTS_DIR / "migration.rules.test.yml"
MISSING_PROMTOOL = "promtool not found: install the Debian package 'prometheus' (make test does)"

# PyYAML is not a dependency: the rules file is read with regexes over its fixed layout, one
# `- alert: Name` block per rule, its keys indented below it.
_RULE_START = re.compile(r"^\s*- (alert|record):\s*(\S+)\s*$", re.MULTILINE)
_GROUP_START = re.compile(r"^\s*- name:", re.MULTILINE)


def _promtool(*args: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(MISSING_PROMTOOL, pytrace=False)
    result = subprocess.run(
        [promtool, *args], cwd=ALERTS_DIR.parents[1], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def _alert_blocks() -> dict[str, str]:
    """Each alert's name and the text of its rule, up to the next rule or group."""
    text = RULES.read_text()
    starts = list(_RULE_START.finditer(text))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    blocks: dict[str, str] = {}
    for match, end in zip(starts, ends, strict=True):
        if match.group(1) != "alert":
            continue
        block = text[match.start() : end]
        next_group = _GROUP_START.search(block, 1)
        name = match.group(2)
        assert name not in blocks, f"alert {name} is defined twice"
        blocks[name] = block[: next_group.start()] if next_group else block
    return blocks


def _test_cases() -> list[tuple[str, bool]]:
    """(alertname, fires) of every alert_rule_test case: fires when its exp_alerts is not empty."""
    cases = re.split(r"^\s*- eval_time:", RULE_TESTS.read_text(), flags=re.MULTILINE)[1:]
    found = []
    for case in cases:
        name = re.search(r"^\s*alertname:\s*(\S+)\s*$", case, re.MULTILINE)
        expected = re.search(r"^\s*exp_alerts:(.*)$", case, re.MULTILINE)
        assert name and expected, f"unreadable test case: - eval_time:{case[:200]}"
        fires = expected.group(1).strip() != "[]" and "- exp_labels:" in case[expected.end() :]
        found.append((name.group(1), fires))
    return found


ALERTS = _alert_blocks()


def test_rules_pass_promtool_check() -> None:
    _promtool("check", "rules", "--lint=all", "--lint-fatal", str(RULES.relative_to(ALERTS_DIR.parents[1])))


def test_rules_pass_their_promtool_unit_tests() -> None:
    _promtool("test", "rules", str(RULE_TESTS.relative_to(ALERTS_DIR.parents[1])))


def test_the_rules_file_has_alerts() -> None:
    assert len(ALERTS) >= 17, sorted(ALERTS)


def test_the_threshold_table_at_the_top_lists_every_alert_with_its_for_and_severity() -> None:
    """The table a reader changes thresholds from must not drift from the rules."""
    header = RULES.read_text().split("\ngroups:\n", 1)[0]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^#\s+([A-Z]\w+)\s{2,}.*$", header, re.MULTILINE)}
    assert set(rows) == set(ALERTS), sorted(set(rows) ^ set(ALERTS))
    for name, block in ALERTS.items():
        duration = re.search(r"^\s+for:\s*(\S+)\s*$", block, re.MULTILINE)
        severity = re.search(r"^\s+severity:\s*(\S+)\s*$", block, re.MULTILINE)
        assert duration and severity, name
        assert re.search(rf"\s{duration.group(1)}\s+{severity.group(1)}\b", rows[name]), (name, rows[name])


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_complete(name: str) -> None:
    block = ALERTS[name]
    assert re.search(r"^\s+for:\s*\d+[smhdwy]\s*$", block, re.MULTILINE), f"{name} has no `for:`"
    severity = re.search(r"^\s+severity:\s*(\S+)\s*$", block, re.MULTILINE)
    assert severity, f"{name} has no severity label"
    assert severity.group(1) in {"critical", "warning"}, f"{name}: severity {severity.group(1)}"
    for annotation in ("summary", "description"):
        found = re.search(rf"^\s+{annotation}:\s*(.+)$", block, re.MULTILINE)
        assert found and found.group(1).strip(' "'), f"{name} has no {annotation} annotation"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_firing_and_quiet_test_cases(name: str) -> None:
    cases = _test_cases()
    assert (name, True) in cases, f"no promtool test case where {name} fires"
    assert (name, False) in cases, f"no promtool test case where {name} must not fire"


def test_test_cases_name_only_existing_alerts() -> None:
    unknown = {name for name, _ in _test_cases()} - set(ALERTS)
    assert not unknown, f"test cases for alerts that do not exist: {sorted(unknown)}"


def test_every_fixture_series_is_one_a_rule_reads() -> None:
    """A fixture under a name no rule reads (left behind by a renamed selector) tests nothing."""
    rules = RULES.read_text().split("\ngroups:\n", 1)[1]
    names = set(re.findall(r"^\s*- series:\s*'([A-Za-z_:][\w:]*)", RULE_TESTS.read_text(), re.MULTILINE))
    assert len(names) >= 15, sorted(names)
    unread = {name for name in names if not re.search(rf"(?<![\w:]){name}(?![\w:])", rules)}
    assert not unread, f"fixtures of series no rule reads: {sorted(unread)}"
