"""`make stack` (collector_config/stack.py): its Prometheus config passes promtool, and the four servers
start wired together, take the demo's telemetry as the printed command sends it, and stop cleanly.

Every address is moved to a free loopback port and the state directory into a temporary one, so a
stack a developer left running on the default ports is never touched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .stack import CONFIG, JAEGER_UI_VENDOR, ROOT, free_port, http_get, wait_until

pytestmark = pytest.mark.e2e

LAUNCHER = CONFIG / "stack.py"
DEMO = ROOT / "examples" / "migration_demo.py"


def load_launcher() -> ModuleType:
    """The launcher as a module (it lives outside the package; tests read its address table)."""
    spec = importlib.util.spec_from_file_location("otel_migration_stack", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def launcher_env(state: Path) -> dict[str, str]:
    """The environment of a stack on free ports in ``state``."""
    launcher = load_launcher()
    taken: set[int] = set()
    env = dict(os.environ) | {"STACK_DIR": str(state)}
    if "JAEGER_UI_ASSETS" not in env and JAEGER_UI_VENDOR.is_file():
        env["JAEGER_UI_ASSETS"] = str(JAEGER_UI_VENDOR)
    for variable, default in launcher.ADDRESSES.values():
        port = free_port(taken)
        env[variable] = f"127.0.0.1:{port}" if ":" in default else str(port)
    return env


def run_launcher(command: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), command], env=env, capture_output=True, text=True, timeout=timeout
    )


def api(base: str, path: str, **params: str) -> object:
    status, body = http_get(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=10)
    assert status == 200, (path, body)
    return json.loads(body)["data"]


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    env = launcher_env(tmp_path)
    result = run_launcher("config", env)
    assert result.returncode == 0, result.stderr
    config = Path(result.stdout.strip())
    assert config == tmp_path / "prometheus.yml"
    text = config.read_text()
    assert f'- targets: ["{env["OTELCOL_PROMETHEUS_ENDPOINT"]}"]' in text
    assert "honor_labels: true" in text

    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # The rule glob found the shipped rules (promtool checks each file it loads).
    assert "alerts/migration.rules.yml" in check.stdout + check.stderr


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not (CONFIG / "alertmanager.yml").is_file():
        pytest.skip("collector_config/alertmanager.yml is not in this checkout yet (issue 13, item 5)")
    env = launcher_env(tmp_path / "state")
    try:
        yield env
    finally:
        run_launcher("down", env, timeout=120)


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


def pids(state: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in state.glob("*.pid")}


def test_stack_starts_takes_the_demo_and_stops(stack_env: dict[str, str], tmp_path: Path) -> None:
    env, state = stack_env, Path(stack_env["STACK_DIR"])
    result = run_launcher("up", env)
    assert result.returncode == 0, result.stdout + result.stderr
    jaeger = f"http://{env['JAEGER_QUERY_HTTP_ENDPOINT']}"
    prometheus = f"http://{env['STACK_PROMETHEUS_ENDPOINT']}"
    alertmanager = f"http://{env['STACK_ALERTMANAGER_ENDPOINT']}"
    otlp = f"http://{env['OTELCOL_OTLP_GRPC_ENDPOINT']}"
    for url in (jaeger, prometheus, alertmanager, f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp} make demo"):
        assert url in result.stdout
    started = pids(state)
    assert set(started) == {"jaeger", "collector", "alertmanager", "prometheus"}

    # Jaeger serves its real UI, not the placeholder of a build without assets.
    status, index = http_get(f"{jaeger}/")
    assert status == 200 and "<title>Jaeger UI</title>" in index and "placeholder" not in index

    # Prometheus loaded the shipped rules and found Alertmanager.
    rule_files = {group["file"] for group in api(prometheus, "/api/v1/rules")["groups"]}  # type: ignore[index]
    assert str(CONFIG / "alerts" / "migration.rules.yml") in rule_files
    wait_until(
        lambda: bool(api(prometheus, "/api/v1/alertmanagers")["activeAlertmanagers"]),  # type: ignore[index]
        30,
        "Prometheus to discover Alertmanager",
    )
    assert http_get(f"{alertmanager}/api/v2/status")[0] == 200

    # The command the launcher prints sends the demo's telemetry into this stack.
    demo_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    demo_env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_SERVICE_NAME": "stack-demo"}
    demo = subprocess.run(
        [sys.executable, str(DEMO)], env=demo_env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert demo.returncode == 0, demo.stderr
    assert f"telemetry sent to: OTLP grpc to {otlp}" in demo.stdout
    assert not (tmp_path / "otel-migration-telemetry.jsonl").exists()

    def spans_in_jaeger() -> int:
        traces = api(jaeger, "/api/traces", service="stack-demo", limit="5000", lookback="1h")
        return sum(len(trace["spans"]) for trace in traces)  # type: ignore[union-attr]

    def calls_in_prometheus() -> int:
        query = 'sum(traces_span_metrics_calls_total{job="stack-demo"})'
        result = api(prometheus, "/api/v1/query", query=query)["result"]  # type: ignore[index]
        return int(float(result[0]["value"][1])) if result else 0

    # Every span reached Jaeger, and Prometheus scraped the same count from the span metrics, with the
    # service as `job` (honor_labels), which the alert rules expect.
    wait_until(lambda: spans_in_jaeger() > 0 and calls_in_prometheus() == spans_in_jaeger(), 90, "the demo")
    assert spans_in_jaeger() > 1200  # 600 requests: a charge each, reports with their phases, LLM calls

    # Running `up` again starts nothing more.
    again = run_launcher("up", env)
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert pids(state) == started

    down = run_launcher("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    for name, pid in started.items():
        assert f"{name} (pid {pid})" in down.stdout
        assert (
            not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1]
        )
    assert pids(state) == {}
    for variable in ("JAEGER_QUERY_HTTP_ENDPOINT", "OTELCOL_OTLP_GRPC_ENDPOINT", "STACK_PROMETHEUS_ENDPOINT"):
        assert not listening(env[variable]), variable
    assert run_launcher("down", env).stdout.strip() == "no stack running"
