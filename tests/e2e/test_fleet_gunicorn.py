"""Issue 11's fleet proof: real gunicorn workers -> the real collector's component -> a real Prometheus.

Two replicas of one service (``fleet-gunicorn``): a gunicorn with four pre-fork workers and one with
two, every worker configuring the real SDK after the fork (``tests/scripts/fleet_gunicorn.conf.py``)
with the same ``subject_key``. The test sends 2,000 users (4,000 calls, each user's calls spread over
both replicas) and reads the ground truth the app logged (``tests/scripts/fleet_wsgi.py``): which user
got which version, each call's outcome and duration. Version 2.0 is planted 30 % slower and fails
3 % of calls against 1.0's 1 %.

The collector (the shipped ``otelcol.yaml``; the component emits every second and forgets an
instance after 5 s of silence) is scraped by Debian's Prometheus every second, with
``honor_labels: true`` and the shipped alert rules (``for:`` shortened to 1 s in a copy). At
Prometheus's query API:

- requests per version equal the truth exactly;
- distinct users per version are within 3 standard errors of the sketch (3 x 1.6 %), and equal
  (to rounding) the estimate of one sketch built here from the truth's users: the union of the
  processes' sketches is exact;
- p95 per version is within the histogram's 0.55 % of the pooled durations the SDK measured
  (numpy's default linear percentile, as tests/e2e/test_fleet_component.py; a call listener in each
  worker logs them), and that p95 lies between the p95 of the app's own clocks inside and around
  the versioned function (the wrapper's clock starts just before the one inside and stops just
  after it; on a busy machine the gap is milliseconds, not microseconds, so it is bracketed rather
  than allowed for);
- the latency, error-rate and CPU verdicts equal the Python verdicts on the pooled raw data (the
  SDK's own measurements, one Holm family as the component's);
- exactly one ``MigrationLatencyRegressionSignificant`` alert fires for the migration (six processes),
  and once both gunicorns are stopped ``migration_fleet_instances`` falls to 0 and the alert resolves
  while the verdict itself stays -1 (the workers that carried it are gone).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from otel_migration._analytics.sketch import HyperLogLog
from otel_migration._analytics.verdicts import adjust, error_rate_verdict, shift_verdict
from otel_migration._core.config import AnalyticsSettings
from otel_migration._core.pseudonyms import Pseudonymizer
from otel_migration._core.subjects import subject_hash

from .stack import CONFIG, ROOT, Process, Stack, binaries, free_port, http_get, wait_until

pytestmark = pytest.mark.e2e

SCRIPTS = ROOT / "tests" / "scripts"
GUNICORN_CONF = SCRIPTS / "fleet_gunicorn.conf.py"
SERVICE, MIGRATION, OPERATION = "fleet-gunicorn", "fleet-gunicorn", "quote"
USERS = 2_000
SUBJECT_KEY = "fleet-e2e-shared-subject-key"  # every process's subject_key (FLEET_SUBJECT_KEY)
SKETCH_ERROR = 1.04 / math.sqrt(4096)  # HyperLogLog at p = 12: 1.6 %
HISTOGRAM_ERROR = 0.0055  # a scale-6 bucket's midpoint against any value in it (docs/fleet.md §2)
STREAM_TTL_S = 5
ALERT = "MigrationLatencyRegressionSignificant"


class FleetStack(Stack):
    """The shipped configs; the component emits every second and forgets an instance after 5 s."""

    def collector_env(self) -> dict[str, str]:
        return super().collector_env() | {
            "OTELCOL_FLEET_EMIT_INTERVAL": "1s",
            "OTELCOL_FLEET_STREAM_TTL": f"{STREAM_TTL_S}s",
        }


# -- Prometheus -------------------------------------------------------------------------------------
def rules_copy(work: Path) -> list[Path]:
    """Copies of the shipped rule files with every ``for:`` at 1 s (the expressions as shipped)."""
    copies = []
    for rules in sorted((CONFIG / "alerts").glob("*.rules.yml")):
        copy = work / rules.name
        copy.write_text(re.sub(r"(?m)^(\s+for:\s*)\d+[smh]\s*$", r"\g<1>1s", rules.read_text()))
        copies.append(copy)
    return copies


@dataclass
class Prometheus:
    """Debian's Prometheus on a free loopback port, scraping collectors every second."""

    work: Path
    targets: Sequence[str]
    rule_files: Sequence[Path]
    port: int = 0
    process: Process | None = None

    def __enter__(self) -> Prometheus:
        if shutil.which("prometheus") is None:
            pytest.fail("prometheus not found: make test installs the Debian package", pytrace=False)
        self.port = free_port()
        config = self.work / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: {json.dumps([str(p) for p in self.rule_files])}\n"
            "scrape_configs:\n"
            "  - job_name: otelcol\n    honor_labels: true\n"
            f"    static_configs: [{{targets: {json.dumps(list(self.targets))}}}]\n"
        )
        self.process = Process(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.work / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--rules.alert.resend-delay=1s",
            ],
            {},
            self.work / "prometheus.log",
        )
        self.process.start()
        try:
            wait_until(lambda: http_get(f"{self.url}/-/ready")[0] == 200, 60, "Prometheus", self.process)
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert status == 200, body
        data = json.loads(body)["data"]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def by_version(self, expr: str) -> dict[str, float]:
        return {labels["migration_version"]: value for labels, value in self.query(expr)}


# -- gunicorn ---------------------------------------------------------------------------------------
@dataclass
class Gunicorn:
    """One replica: a real gunicorn master with ``workers`` pre-forked workers serving fleet_wsgi."""

    name: str
    workers: int
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "fleet_wsgi:app",
        ]
        with self.log.open("ab") as handle:
            self.popen = subprocess.Popen(
                args, env=self.env | {"FLEET_REPLICA": self.name}, stdout=handle, stderr=handle, cwd=SCRIPTS
            )

    def ready(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"gunicorn {self.name} exited:\n{self.log.read_text()[-3000:]}")
        return http_get(f"http://127.0.0.1:{self.port}/quote", timeout=2)[0] == 400

    def stop(self) -> None:
        """A graceful stop (SIGTERM): every worker runs worker_exit, which flushes the SDK."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def sdk_env(otlp: dict[str, str], service: str, truth: Path, wrapper: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTEL_MIGRATION_"))}
    return (
        env
        | otlp
        | {
            "OTEL_SERVICE_NAME": service,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
            "FLEET_TRUTH": str(truth),
            "FLEET_WRAPPER_LOG": str(wrapper),
            "FLEET_SUBJECT_KEY": SUBJECT_KEY,
            # The rollout is a flag in this file, shared by both replicas; the run's own, not one
            # left in tests/scripts (the working directory) by an earlier run.
            "OTEL_MIGRATION_FLAG_FILE": str(truth.parent / "otel-migration-flags.json"),
        }
    )


def send_users(ports: Sequence[int], users: range, threads: int = 12) -> None:
    """User u makes 1 + u % 3 calls; call n goes to replica (u + n) % 3 != 0 ? first : second."""

    def call(user: int, n: int) -> None:
        port = ports[0] if (user + n) % 3 else ports[-1]
        status, body = http_get(f"http://127.0.0.1:{port}/quote?user={user}&n={n}", timeout=30)
        assert status in (200, 502), (status, body)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(call, u, n) for u in users for n in range(1 + u % 3)]:
            future.result()


# -- ground truth -----------------------------------------------------------------------------------
@dataclass
class Truth:
    """The pooled raw data of every process of one service: the app's log and the SDK's durations."""

    rows: list[dict[str, Any]]
    wrapper: list[dict[str, Any]]

    @classmethod
    def read(cls, truth: Path, wrapper: Path) -> Truth:
        def lines(path: Path) -> list[dict[str, Any]]:
            return [json.loads(line) for line in path.read_text().splitlines()]

        return cls(lines(truth), lines(wrapper))

    def versions(self) -> list[str]:
        return sorted({r["version"] for r in self.rows})

    def calls(self) -> dict[str, float]:
        return {v: float(sum(1 for r in self.rows if r["version"] == v)) for v in self.versions()}

    def errors(self, version: str) -> int:
        return sum(1 for r in self.rows if r["version"] == version and r["outcome"] == "error")

    def users(self) -> dict[str, int]:
        return {v: len({r["user"] for r in self.rows if r["version"] == v}) for v in self.versions()}

    def sketch_estimates(self) -> dict[str, float]:
        """What the union of every process's sketches must estimate: one sketch of the version's users."""
        pseudonym = Pseudonymizer(SUBJECT_KEY.encode()).pseudonym
        estimates = {}
        for version in self.versions():
            sketch = HyperLogLog()
            for user in {r["user"] for r in self.rows if r["version"] == version}:
                sketch.add(subject_hash(pseudonym(f"user-{user}")))
            estimates[version] = sketch.estimate()
        return estimates

    def durations(self, version: str, clock: str = "inner") -> np.ndarray[Any, Any]:
        """Seconds of the successful calls (the state's histogram holds only those).

        ``inner``/``outer``: the app's clocks inside and around the call; ``wrapper``: the SDK's.
        """
        if clock == "wrapper":
            rows, key = self.wrapper, "s"
        else:
            rows, key = self.rows, clock
        return np.array([r[key] for r in rows if r["version"] == version and r["outcome"] == "ok"])

    def cpu(self, version: str) -> np.ndarray[Any, Any]:
        """Thread CPU seconds of the successful calls, as the SDK measured them (its CPU state)."""
        return np.array([r["cpu"] for r in self.wrapper if r["version"] == version and r["outcome"] == "ok"])


def _midpoints(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each value as the component holds it: its scale-6 bucket's midpoint (0 stays 0)."""
    positive = values > 0
    index = np.ceil(np.log2(values[positive]) * 64) - 1
    out = np.zeros(values.size)
    out[positive] = (2.0 ** (index / 64) + 2.0 ** ((index + 1) / 64)) / 2
    return out


def check_fleet_figures(prometheus: Prometheus, truth: Truth, service: str, migration: str) -> None:
    """Requests exact, users within the sketch's error, p95 within the histogram's, verdicts as Python's."""
    where = f'job="{service}", migration_name="{migration}"'
    calls = truth.calls()

    def requests() -> dict[str, float]:
        return prometheus.by_version(f'migration_fleet_requests{{{where}, migration_window="1h"}}')

    wait_until(lambda: requests() == calls, 60, f"the fleet's requests {calls} at Prometheus")

    users, estimates = truth.users(), truth.sketch_estimates()

    def users_seen() -> dict[str, float]:
        return prometheus.by_version(f'migration_fleet_adoption_users{{{where}, migration_window="1h"}}')

    def union_complete() -> bool:
        seen = users_seen()
        return seen.keys() == estimates.keys() and all(abs(seen[v] - estimates[v]) <= 0.5 for v in seen)

    # Sketches are shipped every 10 s: the last calls' users arrive a little after the counts.
    with contextlib.suppress(TimeoutError):  # then the assertions below say by how much
        wait_until(union_complete, 30, "the union of every process's sketches")
    seen = users_seen()
    print(f"{service}: requests {calls}, errors", {v: truth.errors(v) for v in calls})
    print(f"{service}: distinct users truth {users}, fleet {seen}, one sketch of the truth {estimates}")
    for version, distinct in users.items():
        # The union of six processes' sketches is the sketch of all their users (register maxima)...
        assert abs(seen[version] - estimates[version]) <= 0.5, (version, seen, estimates)
        # ...and within the sketch's error of the distinct users.
        assert abs(seen[version] - distinct) <= 3 * SKETCH_ERROR * distinct, (version, seen, users)

    p95 = prometheus.by_version(
        f"migration_fleet_performance_duration_seconds{{{where}, "
        'migration_window="1h", migration_statistic="p95"}'
    )
    for version in calls:
        inner, outer, wrapper = (
            float(np.percentile(truth.durations(version, clock), 95))
            for clock in ("inner", "outer", "wrapper")
        )
        print(
            f"{service} {version}: p95 fleet {p95[version] * 1e3:.4f} ms, pooled raw: SDK wrapper"
            f" {wrapper * 1e3:.4f} ms, app inner {inner * 1e3:.4f} ms, app outer {outer * 1e3:.4f} ms"
        )
        # The component: within the histogram's error of what the SDK measured, pooled over processes.
        assert abs(p95[version] / wrapper - 1) <= HISTOGRAM_ERROR, (version, p95[version], wrapper)
        # The SDK measured the call: its clock runs between the app's inner and outer ones.
        assert inner <= wrapper <= outer, (version, inner, wrapper, outer)

    # The verdicts Python gives on the pooled raw data: one Holm family, as the component's. CPU has
    # no planted difference (both versions sleep): a verdict near its thresholds must not flip on the
    # histogram's 0.55 %, so it is judged on the values the merged histogram holds (bucket midpoints).
    settings = AnalyticsSettings()
    control, candidate = truth.durations("1.0"), truth.durations("2.0")
    cpu_control, cpu_candidate = _midpoints(truth.cpu("1.0")), _midpoints(truth.cpu("2.0"))
    python = adjust(
        [
            shift_verdict("latency", migration, OPERATION, "1.0", "2.0", control, candidate),
            error_rate_verdict(
                migration,
                OPERATION,
                "1.0",
                "2.0",
                (truth.errors("1.0"), int(calls["1.0"])),
                (truth.errors("2.0"), int(calls["2.0"])),
                settings,
            ),
            shift_verdict("cpu", migration, OPERATION, "1.0", "2.0", cpu_control, cpu_candidate),
        ],
        settings,
        {
            (migration, OPERATION, "latency", "1.0"): float(np.median(control)),
            (migration, OPERATION, "cpu", "1.0"): float(np.median(cpu_control)),
        },
    )
    value = {"better": 1.0, "worse": -1.0, "inconclusive": 0.0, "no_data": 0.0}
    verdicts = prometheus.query(f"migration_fleet_verdict{{{where}}}")
    assert len(verdicts) == 3, verdicts  # one series per metric, whatever the number of processes
    fleet = {labels["migration_metric"]: v for labels, v in verdicts}
    print(f"{service}: verdicts fleet {fleet}, python", {v.metric: (v.state, v.p_value) for v in python})
    assert fleet == {v.metric: value[v.state] for v in python}
    assert fleet["latency"] == -1.0, "2.0 is 30 % slower: the planted regression must be seen"


# -- the test ---------------------------------------------------------------------------------------
@dataclass
class Fleet:
    prometheus: Prometheus
    replicas: list[Gunicorn]
    truth: Truth


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet-gunicorn")
    otelcol, jaeger = binaries()
    truth_path, wrapper_path = work / "truth.jsonl", work / "wrapper.jsonl"
    rules = rules_copy(work)
    with FleetStack(work, otelcol, jaeger) as stack:
        target = f"127.0.0.1:{stack.ports['prometheus']}"
        with Prometheus(work, [target], rules) as prometheus:
            env = sdk_env(stack.otlp_env("http/protobuf"), SERVICE, truth_path, wrapper_path)
            replicas = [
                Gunicorn("a", 4, env, work / "gunicorn-a.log"),
                Gunicorn("b", 2, env, work / "gunicorn-b.log"),
            ]
            try:
                for replica in replicas:
                    replica.start()
                for replica in replicas:
                    wait_until(replica.ready, 60, f"gunicorn {replica.name}")
                started = time.monotonic()
                send_users([r.port for r in replicas], range(USERS))
                print(f"{USERS} users served in {time.monotonic() - started:.1f} s")
                calls = len(truth_path.read_text().splitlines())
                # The SDK's records reach the listener on each worker's aggregator thread, a little later.
                wait_until(
                    lambda: len(wrapper_path.read_text().splitlines()) == calls, 30, "the SDK's records"
                )
                yield Fleet(prometheus, replicas, Truth.read(truth_path, wrapper_path))
            finally:
                for replica in replicas:
                    replica.stop()


def test_the_fleets_figures_at_prometheus_equal_the_pooled_truth(fleet: Fleet) -> None:
    truth = fleet.truth
    assert len(truth.rows) == sum(1 + u % 3 for u in range(USERS))
    pids = {(r["replica"], r["pid"]) for r in truth.rows}
    assert {replica for replica, _ in pids} == {"a", "b"} and len(pids) == 6, pids  # 4 + 2 workers served
    # The rollout is sticky across processes: one version per user, whichever worker served the call.
    versions_of: dict[int, set[str]] = {}
    for row in truth.rows:
        versions_of.setdefault(row["user"], set()).add(row["version"])
    assert all(len(v) == 1 for v in versions_of.values())

    recorded = {
        (v, o): sum(1 for r in truth.wrapper if (r["version"], r["outcome"]) == (v, o))
        for v in truth.versions()
        for o in ("ok", "error")
    }
    assert recorded == {
        (v, o): sum(1 for r in truth.rows if (r["version"], r["outcome"]) == (v, o))
        for v in truth.versions()
        for o in ("ok", "error")
    }

    check_fleet_figures(fleet.prometheus, truth, SERVICE, MIGRATION)
    instances = fleet.prometheus.query(f'migration_fleet_instances{{job="{SERVICE}"}}')
    assert [v for _, v in instances] == [6.0], instances


def test_one_alert_for_the_migration_and_it_clears_when_its_workers_are_gone(fleet: Fleet) -> None:
    shipped = (CONFIG / "alerts" / "migration.rules.yml").read_text()
    assert "migration_fleet_verdict" in shipped.split(f"- alert: {ALERT}")[1].split("- alert:")[0]
    prometheus = fleet.prometheus
    firing = f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}'
    wait_until(lambda: len(prometheus.query(firing)) > 0, 30, f"{ALERT} firing")
    time.sleep(3)  # a few more evaluations: no second series may appear
    alerts = prometheus.query(firing)
    print("firing:", alerts)
    assert len(alerts) == 1, alerts
    labels = alerts[0][0]
    assert (labels["job"], labels["migration_name"], labels["migration_version"]) == (
        SERVICE,
        MIGRATION,
        "2.0",
    )
    assert "service_instance_id" not in labels

    for replica in fleet.replicas:
        replica.stop()
    stopped = time.monotonic()
    instances = f'migration_fleet_instances{{job="{SERVICE}"}}'
    wait_until(lambda: [v for _, v in prometheus.query(instances)] == [0.0], STREAM_TTL_S + 30, "0 instances")
    wait_until(lambda: prometheus.query(firing) == [], 30, f"{ALERT} resolved")
    print(f"instances 0 and the alert resolved {time.monotonic() - stopped:.1f} s after the stop")
    # Not because the verdict changed: the hour's data still says 2.0 is slower; nobody serves it.
    verdict = f'migration_fleet_verdict{{job="{SERVICE}", migration_metric="latency"}}'
    assert [v for _, v in prometheus.query(verdict)] == [-1.0]
    # Every call was counted once, also the ones the last flush (worker_exit) carried.
    calls = fleet.truth.calls()
    assert (
        prometheus.by_version(f'migration_fleet_requests{{job="{SERVICE}", migration_window="1h"}}') == calls
    )
