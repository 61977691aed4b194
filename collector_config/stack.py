"""`make stack` / `make stack-down`: the collector, Jaeger with its UI, Prometheus and Alertmanager on
loopback, for a person to open in a browser and send a workload to.

    python collector_config/stack.py up       # build if needed, start all four, print the URLs
    python collector_config/stack.py down     # stop exactly what `up` started
    python collector_config/stack.py config   # only write the Prometheus config (for promtool)

The servers outlive this script (each in its own session, output in ``.stack/logs/``); ``.stack/``
also holds a pid file per server and the data directories. ``down`` signals a pid only when that
process's environment carries this stack's marker, so a pid the kernel reused for another program
is never touched.

Addresses are the environment variables the shipped configs read, with the same defaults (fixed
ports: this is for a person, who can move any of them, e.g. ``STACK_PROMETHEUS_ENDPOINT``), plus
``STACK_DIR`` (state directory) and ``STACK_ALERTMANAGER_CONFIG``. Standard library only, so any
Python 3.11 runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKER = "OTEL_MIGRATION_STACK"  # environment variable naming the state dir of the stack a server belongs to

# name -> (environment variable, default). Ports-only variables are what the configs read for
# servers that always listen on 127.0.0.1.
ADDRESSES: dict[str, tuple[str, str]] = {
    "otlp_grpc": ("OTELCOL_OTLP_GRPC_ENDPOINT", "127.0.0.1:4317"),
    "otlp_http": ("OTELCOL_OTLP_HTTP_ENDPOINT", "127.0.0.1:4318"),
    "collector_health": ("OTELCOL_HEALTH_ENDPOINT", "127.0.0.1:13133"),
    "collector_metrics": ("OTELCOL_PROMETHEUS_ENDPOINT", "127.0.0.1:8889"),
    "collector_self_metrics": ("OTELCOL_SELF_METRICS_PORT", "8887"),
    "jaeger_otlp_grpc": ("JAEGER_OTLP_GRPC_ENDPOINT", "127.0.0.1:14317"),
    "jaeger_otlp_http": ("JAEGER_OTLP_HTTP_ENDPOINT", "127.0.0.1:14318"),
    "jaeger_ui": ("JAEGER_QUERY_HTTP_ENDPOINT", "127.0.0.1:16686"),
    "jaeger_query_grpc": ("JAEGER_QUERY_GRPC_ENDPOINT", "127.0.0.1:16685"),
    "jaeger_health": ("JAEGER_HEALTH_ENDPOINT", "127.0.0.1:13134"),
    "jaeger_self_metrics": ("JAEGER_SELF_METRICS_PORT", "18888"),
    "prometheus": ("STACK_PROMETHEUS_ENDPOINT", "127.0.0.1:9090"),
    "alertmanager": ("STACK_ALERTMANAGER_ENDPOINT", "127.0.0.1:9093"),
}


class StackError(RuntimeError):
    """Something a person must fix (a taken port, a missing program); printed without a traceback."""


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    ready_url: str  # answers 200 once the server serves


@dataclass(frozen=True)
class Stack:
    state: Path
    env: Mapping[str, str]
    addresses: Mapping[str, str]  # name -> host:port

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Stack:
        state = Path(env.get("STACK_DIR") or ROOT / ".stack").resolve()
        values = {name: env.get(var) or default for name, (var, default) in ADDRESSES.items()}
        addresses = {name: value if ":" in value else f"127.0.0.1:{value}" for name, value in values.items()}
        child_env = {
            **env,
            **{ADDRESSES[name][0]: value for name, value in values.items()},
            MARKER: str(state),
        }
        return cls(state, child_env, addresses)

    def url(self, name: str, path: str = "") -> str:
        return f"http://{self.addresses[name]}{path}"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def pid_file(self, name: str) -> Path:
        return self.state / f"{name}.pid"

    # -- Prometheus ---------------------------------------------------------------------------
    def prometheus_config(self) -> Path:
        """Writes ``<state>/prometheus.yml`` from ``prometheus.stack.yml`` and returns its path."""
        template = string.Template((HERE / "prometheus.stack.yml").read_text())
        text = template.substitute(
            rules=str(HERE / "alerts" / "*.rules.yml"),
            alertmanager=self.addresses["alertmanager"],
            collector_metrics=self.addresses["collector_metrics"],
            collector_self_metrics=self.addresses["collector_self_metrics"],
            jaeger_self_metrics=self.addresses["jaeger_self_metrics"],
        )
        self.state.mkdir(parents=True, exist_ok=True)
        path = self.state / "prometheus.yml"
        path.write_text(text)
        return path

    # -- the four servers ---------------------------------------------------------------------
    def servers(self, otelcol: Path, jaeger: Path, alertmanager_config: Path) -> list[Server]:
        return [
            Server(
                "jaeger",
                [str(jaeger), f"--config={HERE / 'jaeger.yaml'}"],
                self.url("jaeger_ui", "/api/services"),
            ),
            Server(
                "collector",
                [str(otelcol), f"--config={HERE / 'otelcol.yaml'}", f"--config={HERE / 'llm-cost.yaml'}"],
                self.url("collector_health", "/"),
            ),
            Server(
                "alertmanager",
                [
                    program("prometheus-alertmanager"),
                    f"--config.file={alertmanager_config}",
                    f"--storage.path={self.state / 'alertmanager-data'}",
                    f"--web.listen-address={self.addresses['alertmanager']}",
                    f"--web.external-url={self.url('alertmanager')}",
                    "--cluster.listen-address=",  # a single instance: no gossip port
                ],
                self.url("alertmanager", "/-/ready"),
            ),
            Server(
                "prometheus",
                [
                    program("prometheus"),
                    f"--config.file={self.state / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.state / 'prometheus-data'}",
                    f"--web.listen-address={self.addresses['prometheus']}",
                    f"--web.external-url={self.url('prometheus')}",
                ],
                self.url("prometheus", "/-/ready"),
            ),
        ]

    def running(self) -> dict[str, int]:
        """name -> pid of this stack's servers that are alive."""
        found = {}
        for path in sorted(self.state.glob("*.pid")):
            pid = read_pid(path)
            if pid is not None and belongs_to(pid, self.state):
                found[path.stem] = pid
        return found

    def start(self, server: Server) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{server.name}.log").open("ab") as log:
            popen = subprocess.Popen(
                server.argv,
                env=dict(self.env),
                cwd=self.state,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # not stopped by a Ctrl-C in the terminal that ran `make stack`
            )
        self.pid_file(server.name).write_text(f"{popen.pid}\n")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise StackError(f"{server.name} exited while starting:\n{self.log_tail(server.name)}")
            if http_get(server.ready_url)[0] == 200:
                return popen.pid
            time.sleep(0.3)
        raise StackError(
            f"{server.name} not ready at {server.ready_url} after 90 s:\n{self.log_tail(server.name)}"
        )

    def log_tail(self, name: str, chars: int = 2500) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, names: list[str] | None = None) -> list[str]:
        """Stops this stack's servers (last started first); returns what it stopped."""
        stopped = []
        order = ["prometheus", "alertmanager", "collector", "jaeger"]
        for name in [n for n in order if names is None or n in names]:
            path = self.pid_file(name)
            pid = read_pid(path)
            if pid is not None and belongs_to(pid, self.state):
                terminate(pid)
                stopped.append(f"{name} (pid {pid})")
            path.unlink(missing_ok=True)
        return stopped


def program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not installed: `make stack` installs it (Debian packages)")
    return path


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def belongs_to(pid: int, state: Path) -> bool:
    """True when ``pid`` is a live process started by the stack in ``state`` (checked in its environment)."""
    if not alive(pid):
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={state}".encode() in environ.split(b"\0")


def alive(pid: int) -> bool:
    """False once the process has exited, also while it waits as a zombie for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def port_taken(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        try:
            sock.bind((host, int(port)))
        except OSError:
            return True
    return False


def build() -> tuple[Path, Path]:
    """(otelcol-migration, jaeger) from collector_config/build.sh (instant when cached)."""
    result = subprocess.run(["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise StackError("collector_config/build.sh failed (see above)")
    paths = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    return Path(paths["OTELCOL_BIN"]), Path(paths["JAEGER_BIN"])


def check_prometheus_config(path: Path) -> None:
    result = subprocess.run(
        [program("promtool"), "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"promtool check config {path} failed:\n{result.stdout}{result.stderr}")


def up(stack: Stack) -> None:
    running = stack.running()
    if running:
        print(f"already running: {', '.join(running)} (stop with `make stack-down`)\n")
        print_urls(stack)
        return
    taken = [
        f"{ADDRESSES[name][0]}={address}" for name, address in stack.addresses.items() if port_taken(address)
    ]
    if taken:
        raise StackError(
            "these addresses are in use, move them with the variables shown (e.g. VAR=127.0.0.1:PORT "
            "make stack):\n  " + "\n  ".join(taken)
        )
    am_config = Path(stack.env.get("STACK_ALERTMANAGER_CONFIG") or HERE / "alertmanager.yml")
    if not am_config.is_file():
        raise StackError(f"no Alertmanager config at {am_config} (set STACK_ALERTMANAGER_CONFIG)")
    otelcol, jaeger = build()
    check_prometheus_config(stack.prometheus_config())
    servers = stack.servers(otelcol, jaeger, am_config.resolve())
    try:
        for server in servers:
            pid = stack.start(server)
            print(f"started {server.name} (pid {pid})", file=sys.stderr)
    except BaseException:
        stack.stop()
        raise
    print()
    print_urls(stack)


def print_urls(stack: Stack) -> None:
    state = os.path.relpath(stack.state)
    am = stack.url("alertmanager")
    print(f"otel-migration stack on loopback (logs, pids and data in {state}/):")
    rows = [
        ("Jaeger UI", stack.url("jaeger_ui")),
        # Debian's packages: Prometheus has its classic UI only, Alertmanager no web UI (API and amtool).
        ("Prometheus", f"{stack.url('prometheus')}   (alerts: {stack.url('prometheus', '/classic/alerts')})"),
        ("Alertmanager", f"{am}   (API; amtool --alertmanager.url={am} alert)"),
        ("OTLP gRPC", stack.url("otlp_grpc")),
        ("OTLP HTTP", stack.url("otlp_http")),
        ("metrics", stack.url("collector_metrics", "/metrics") + "   (the collector's Prometheus exporter)"),
    ]
    for what, url in rows:
        print(f"  {what:<13} {url}")
    print("\nsend the demo's telemetry there, then find service billing-demo in the Jaeger UI:")
    print(f"  OTEL_EXPORTER_OTLP_ENDPOINT={stack.url('otlp_grpc')} make demo")
    print("stop everything with: make stack-down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "config"])
    args = parser.parse_args(argv)
    stack = Stack.from_env(os.environ)
    try:
        if args.command == "up":
            up(stack)
        elif args.command == "down":
            stopped = stack.stop()
            print(f"stopped {', '.join(stopped)}" if stopped else "no stack running")
        else:
            print(stack.prometheus_config())
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
