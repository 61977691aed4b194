"""The real OpenTelemetry Collector and Jaeger, started as processes on loopback for end-to-end tests.

Binaries come from ``collector_config/build.sh`` (built with Go, cached outside the repository).
Every port is chosen free at start-up and passed through the environment variables the shipped
configs read, so a developer's own collector or Jaeger on the default ports never interferes.
Processes are always stopped: :class:`Stack` is a context manager and kills what it started even
when start-up fails half-way.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "collector_config"
# The Jaeger UI build.sh embeds, as `make` passes it: the copy beside the clone on machines that reach
# only package registries (so that running pytest directly needs no download either).
JAEGER_UI_VENDOR = ROOT.parent / "shared" / "vendor" / "jaeger-ui-1.76.0" / "assets.tar.gz"


def binaries() -> tuple[Path, Path]:
    """(otelcol-migration, jaeger), building them if needed (fast when cached)."""
    env = dict(os.environ)
    if "JAEGER_UI_ASSETS" not in env and JAEGER_UI_VENDOR.is_file():
        env["JAEGER_UI_ASSETS"] = str(JAEGER_UI_VENDOR)
    result = subprocess.run(
        ["bash", str(CONFIG / "build.sh")], capture_output=True, text=True, check=False, timeout=3600, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"collector_config/build.sh failed:\n{result.stderr[-4000:]}")
    paths = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    return Path(paths["OTELCOL_BIN"]), Path(paths["JAEGER_BIN"])


_PORTS_LOW, _PORTS_HIGH = 20_000, 32_768  # below Linux's ephemeral range (32768-60999)


def free_port(taken: set[int] | None = None) -> int:
    """A free loopback port outside the ephemeral range.

    A port from ``bind(0)`` comes from the ephemeral range, which the kernel also hands to outgoing
    connections: between our probe and the server's own bind, a client socket can take it. Ports
    below that range are only ever taken by something that binds them on purpose.
    """
    taken = taken if taken is not None else set()
    for _ in range(200):
        port = random.randrange(_PORTS_LOW, _PORTS_HIGH)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free loopback port found")


class ProcessDied(RuntimeError):
    """A server exited while starting, typically because a port was taken after all."""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(check: Callable[[], bool], timeout: float, what: str, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen is not None and process.popen.poll() is not None:
            raise ProcessDied(f"{process.name} exited while starting:\n{process.tail()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Process:
    name: str
    args: list[str]
    env: Mapping[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(self.args, env={**os.environ, **self.env}, stdout=handle, stderr=handle)
        handle.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Stack:
    """Jaeger and the collector wired together; ``otlp_env()`` points an application at the collector."""

    workdir: Path
    otelcol_bin: Path
    jaeger_bin: Path
    ports: dict[str, int] = field(default_factory=dict)
    jaeger: Process | None = None
    collector: Process | None = None

    def __post_init__(self) -> None:
        self._assign_ports()

    def _assign_ports(self) -> None:
        taken: set[int] = set()
        for name in (
            "otlp_grpc",
            "otlp_http",
            "health",
            "prometheus",
            "self_metrics",
            "jaeger_grpc",
            "jaeger_http",
            "jaeger_query",
            "jaeger_query_grpc",
            "jaeger_health",
            "jaeger_metrics",
        ):
            self.ports[name] = free_port(taken)

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        for attempt in range(3):
            try:
                self.start_jaeger()
                self.start_collector()
                return self
            except ProcessDied:
                self.stop()
                if attempt == 2:
                    raise
                self._assign_ports()  # a port was taken between the probe and the bind: try others
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_jaeger(self) -> None:
        p = self.ports
        env = {
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['jaeger_grpc']}",
            "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p['jaeger_http']}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{p['jaeger_query']}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{p['jaeger_query_grpc']}",
            "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{p['jaeger_health']}",
            "JAEGER_SELF_METRICS_PORT": str(p["jaeger_metrics"]),
        }
        self.jaeger = Process(
            "jaeger",
            [str(self.jaeger_bin), f"--config={CONFIG / 'jaeger.yaml'}"],
            env,
            self.workdir / "jaeger.log",
        )
        self.jaeger.start()
        wait_until(
            lambda: http_get(f"{self.jaeger_url}/api/services")[0] == 200,
            60,
            "Jaeger's query API",
            self.jaeger,
        )

    def collector_env(self) -> dict[str, str]:
        p = self.ports
        return {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['otlp_grpc']}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p['otlp_http']}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{p['health']}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{p['prometheus']}",
            "OTELCOL_SELF_METRICS_PORT": str(p["self_metrics"]),
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['jaeger_grpc']}",
        }

    def start_collector(self) -> None:
        args = [
            str(self.otelcol_bin),
            f"--config={CONFIG / 'otelcol.yaml'}",
            f"--config={CONFIG / 'llm-cost.yaml'}",
        ]
        self.collector = Process("collector", args, self.collector_env(), self.workdir / "collector.log")
        self.collector.start()
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{self.ports['health']}/")[0] == 200,
            60,
            "the collector's health check",
            self.collector,
        )

    def stop(self) -> None:
        for process in (self.collector, self.jaeger):
            if process is not None:
                process.stop()

    # -- what tests talk to ---------------------------------------------------------------------
    def otlp_env(self, protocol: str = "grpc") -> dict[str, str]:
        port = self.ports["otlp_grpc" if protocol == "grpc" else "otlp_http"]
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        }

    @property
    def jaeger_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['jaeger_query']}"

    def jaeger_services(self) -> list[str]:
        status, body = http_get(f"{self.jaeger_url}/api/services")
        assert status == 200, body
        return list(json.loads(body)["data"] or [])

    def jaeger_traces(self, service: str, limit: int = 1000, **params: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"service": service, "limit": str(limit), "lookback": "1h", **params})
        status, body = http_get(f"{self.jaeger_url}/api/traces?{query}", timeout=30)
        assert status == 200, body
        return list(json.loads(body)["data"] or [])

    def prometheus_text(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.ports['prometheus']}/metrics", timeout=10)
        assert status == 200, body
        return body


def span_tags(span: Mapping[str, Any]) -> dict[str, Any]:
    """Jaeger's JSON tags of a span as a plain dict."""
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def prometheus_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric ``name`` in Prometheus text exposition format."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group("name") == name:
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            samples.append((labels, float(match.group("value"))))
    return samples
