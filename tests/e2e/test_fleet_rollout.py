"""The fleet obeys one flag state: four pre-fork gunicorn workers and ``otel-migration rollout``.

A real gunicorn (``--preload``: the app, its configuration and the flag provider start in the
master, the workers are forked from it) serves tests/scripts/rollout_fleet_app.py with the default flag
file provider. The rollout is changed only by the command, in a process of its own, the way an
operator would; every answer says which worker gave it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .stack import free_port

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
WORKERS = 4
USERS = 2000


@dataclass
class Fleet:
    base: str
    master: subprocess.Popen[bytes]
    flag_file: Path
    env: dict[str, str]

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def each_worker(self, path: str, timeout_s: float = 60) -> dict[int, Any]:
        """One answer from every worker: concurrent requests until four distinct pids answered."""
        answers: dict[int, Any] = {}
        deadline = time.monotonic() + timeout_s
        with ThreadPoolExecutor(2 * WORKERS) as pool:
            while len(answers) < WORKERS:
                assert time.monotonic() < deadline, f"only workers {sorted(answers)} answered {path}"
                for body in pool.map(lambda _: self.get(path), range(4 * WORKERS)):
                    answers.setdefault(body["pid"], body)
        return answers

    def rollout(self, *args: str) -> str:
        """``otel-migration rollout ...`` in a process of its own; what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "otel_migration", "rollout", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def until_every_worker(
        self, path: str, check: Callable[[Any], bool], timeout_s: float = 30
    ) -> dict[int, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            answers = self.each_worker(path)
            if all(check(a) for a in answers.values()):
                return answers
            assert time.monotonic() < deadline, f"workers never agreed on {path}: {answers}"
            time.sleep(0.1)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    port = free_port()
    flag_file = tmp_path / "otel-migration-flags.json"
    env = dict(os.environ) | {"OTEL_MIGRATION_FLAG_FILE": str(flag_file)}
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 (closed when the fleet stops)
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(SCRIPTS),
            "--graceful-timeout",
            "10",
            "rollout_fleet_app:app",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    fleet = Fleet(f"http://127.0.0.1:{port}", master, flag_file, env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert master.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                fleet.get("/version?user=probe")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        yield fleet
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        log.close()


class Sampler:
    """Asks the fleet which version ``user`` gets, without pause, from before a change until after it."""

    def __init__(self, fleet: Fleet, user: str) -> None:
        self.fleet, self.user = fleet, user
        self.answers: list[tuple[float, int, str]] = []  # (wall clock, worker pid, version)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2 * WORKERS)]

    def _run(self) -> None:
        while not self._stop.is_set():
            body = self.fleet.get(f"/version?user={self.user}")
            self.answers.append((time.time(), body["pid"], body["version"]))

    def __enter__(self) -> Sampler:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def switched(self, since: float) -> dict[int, tuple[float, float]]:
        """Per worker that switched: (last 2.0, first 1.0 for good) in seconds after ``since``."""
        result = {}
        for pid in {p for _, p, _ in self.answers}:
            mine = sorted((t, v) for t, p, v in self.answers if p == pid)
            last_candidate = max((t for t, v in mine if v == "2.0"), default=since)
            after = [t for t, v in mine if t > last_candidate and v == "1.0"]
            if after:
                result[pid] = (last_candidate - since, after[0] - since)
        return result


def test_the_fleet_obeys_one_flag_state(fleet: Fleet) -> None:
    # One user, one version, in every worker: the same assignment of 2000 users everywhere.
    before = fleet.each_worker(f"/versions?n={USERS}")
    assignments = {tuple(a["versions"]) for a in before.values()}
    assert len(assignments) == 1
    at_30 = next(iter(assignments))
    assert abs(at_30.count("2.0") / USERS - 0.30) < 0.04  # seeded from the configuration
    on_candidate = at_30.index("2.0")
    user = f"user-{on_candidate}"
    gauges = fleet.each_worker("/gauges")
    assert {(g["rolled_back"], g["percent"]) for g in gauges.values()} == {(0.0, 30.0)}

    # The kill, from another process: every worker serves 1.0 within 2 s and shows the rollback.
    with Sampler(fleet, user) as sampler:
        started = time.time()
        printed = fleet.rollout("kill", "checkout", "--reason", "p95 regression")
        assert "checkout  1.0 to everyone: killed (p95 regression)" in printed
        written_at = fleet.flag_file.stat().st_mtime  # the command stamps its rewrite
        deadline = time.monotonic() + 30
        while len(sampler.switched(written_at)) < WORKERS or time.time() < written_at + 3:
            assert time.monotonic() < deadline, f"workers that switched: {sampler.switched(written_at)}"
            time.sleep(0.1)
    latency = sampler.switched(written_at)
    served_2 = [t for t, _, v in sampler.answers if v == "2.0" and started <= t < written_at]
    assert served_2, "the sampler saw nothing before the kill"
    print(
        "\nkill -> 1.0 per worker, s after the file's rewrite (last 2.0, first 1.0): "
        + ", ".join(f"({a:.3f}, {b:.3f})" for a, b in sorted(latency.values()))
        + f"; {len(sampler.answers)} answers"
    )
    assert len(latency) == WORKERS and max(b for _, b in latency.values()) < 2.0
    assert all(v == "1.0" for t, _, v in sampler.answers if t > written_at + 2.0)
    gauges = fleet.each_worker("/gauges")
    assert {(g["rolled_back"], g["percent"]) for g in gauges.values()} == {(1.0, 0.0)}

    # A graceful reload: four new workers forked from the master, and the kill still holds.
    old = set(before) | set(latency) | set(gauges) | {p for _, p, _ in sampler.answers}
    fleet.master.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while True:
        current = fleet.each_worker(f"/version?user={user}")
        if not set(current) & old:
            break
        assert time.monotonic() < deadline, "the old workers never went"
        time.sleep(0.2)
    assert {a["version"] for a in current.values()} == {"1.0"}
    gauges = fleet.each_worker("/gauges")
    assert not set(gauges) & old
    assert {(g["rolled_back"], g["percent"]) for g in gauges.values()} == {(1.0, 0.0)}

    # Restore, then ramp to 60 %: users only ever move from 1.0 to 2.0, the same ones everywhere.
    assert "checkout  2.0 to 30 % of users" in fleet.rollout("restore", "checkout")
    fleet.until_every_worker(f"/versions?n={USERS}", lambda a: tuple(a["versions"]) == at_30)
    assert "checkout  2.0 to 60 % of users" in fleet.rollout("set", "checkout", "60")
    after = fleet.until_every_worker(f"/versions?n={USERS}", lambda a: tuple(a["versions"]) != at_30)
    assignments = {tuple(a["versions"]) for a in after.values()}
    deadline = time.monotonic() + 2  # a worker may read the new file a poll later than another
    while len(assignments) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        assignments = {tuple(a["versions"]) for a in fleet.each_worker(f"/versions?n={USERS}").values()}
    assert len(assignments) == 1, [a.count("2.0") for a in assignments]
    at_60 = next(iter(assignments))
    moved = [(a, b) for a, b in zip(at_30, at_60, strict=True) if a != b]
    assert moved and set(moved) == {("1.0", "2.0")}
    assert abs(at_60.count("2.0") / USERS - 0.60) < 0.04
