"""A WSGI service under a pre-fork server, for the fleet's end-to-end tests (tests/e2e/test_fleet_*.py).

    gunicorn -c tests/scripts/fleet_gunicorn.conf.py -w 4 -b 127.0.0.1:PORT fleet_wsgi:app

``GET /quote?user=U&n=N`` serves user ``U``'s ``N``-th call. The version comes from the SDK's
rollout (``FLEET_PERCENT`` % on 2.0), which is sticky across processes because every process has
the same ``subject_key``. Version 2.0 is planted slower (``FLEET_SLOWDOWN``, default 1.3) and
fails a little more often (3 % of calls against 1 %); the sleep and the failures are drawn from
(user, n), so the same request always does the same thing.

Ground truth: every call appends one JSON line to ``FLEET_TRUTH`` (``O_APPEND``, one ``write`` per
line, so every worker of every replica appends whole lines to one file): the user, the version,
the outcome, ``inner`` (the seconds measured inside the versioned function, from its first to its
last statement) and ``outer`` (measured around the call of the wrapped function, so the SDK
wrapper's own duration lies between the two), the pid and the service's replica name.
:class:`WrapperClock`, a call listener, appends what the SDK itself measured (the duration and
thread CPU seconds its state histograms receive) to ``FLEET_WRAPPER_LOG``: the component's precision
and its verdicts are judged against those, the SDK's measurement against ``inner`` and ``outer``.

Each worker calls ``otel_migration.configure()`` itself, after the fork (the gunicorn config's
``post_worker_init``): the SDK's exporter threads do not survive a fork.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import otel_migration

MIGRATION = "fleet-gunicorn"
OPERATION = "quote"
SUBJECT_KEY = os.environ.get("FLEET_SUBJECT_KEY", "fleet-gunicorn-shared-subject-key")
BASE_S = 0.020  # 1.0's median sleep


class Declined(RuntimeError):
    """The planted failure."""


def _draw(user: int, n: int) -> tuple[float, float]:
    """(a lognormal sleep factor, a uniform number) of this request: the same in every process."""
    rng = random.Random(user * 1_000 + n)
    return rng.lognormvariate(0.0, 0.25), rng.random()


def _work(seconds: float, fails: bool, user: int, timing: dict[str, float]) -> int:
    started = time.perf_counter()
    try:
        time.sleep(seconds)
        if fails:
            raise Declined(str(user))
        return user
    finally:
        timing["inner"] = time.perf_counter() - started


@otel_migration.versioned("1.0", operation=OPERATION, migration=MIGRATION)
def quote_v1(user: int, factor: float, draw: float, timing: dict[str, float]) -> int:
    return _work(BASE_S * factor, draw < 0.01, user, timing)


@otel_migration.versioned("2.0", operation=OPERATION, migration=MIGRATION)
def quote_v2(user: int, factor: float, draw: float, timing: dict[str, float]) -> int:
    slowdown = float(os.environ.get("FLEET_SLOWDOWN", "1.3"))
    return _work(BASE_S * slowdown * factor, draw < 0.03, user, timing)


def _append(env: str) -> Callable[[dict[str, Any]], None]:
    """A writer of whole JSON lines to the file named by ``env`` (opened on first use, after the fork)."""
    fd: int | None = None

    def write(line: dict[str, Any]) -> None:
        nonlocal fd
        if fd is None:
            fd = os.open(os.environ[env], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (json.dumps(line) + "\n").encode())

    return write


_truth = _append("FLEET_TRUTH")


class WrapperClock:
    """A call listener: logs each versioned call's duration and CPU as the SDK measured them."""

    def __init__(self) -> None:
        self._write = _append("FLEET_WRAPPER_LOG")

    def on_call(self, record: otel_migration.CallRecord | Any) -> None:
        if isinstance(record, otel_migration.CallRecord) and record.kind == "call":
            self._write(
                {
                    "version": record.version,
                    "outcome": record.outcome,
                    "s": record.duration_s,
                    "cpu": record.cpu_time_s,
                }
            )


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        user, n = int(query["user"][0]), int(query["n"][0])
    except (KeyError, ValueError):
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"user and n are required\n"]
    factor, draw = _draw(user, n)
    percent = float(os.environ.get("FLEET_PERCENT", "30"))
    subject = f"user-{user}"
    version = otel_migration.rollout(MIGRATION, subject, percent=percent)
    call = quote_v2 if version == "2.0" else quote_v1
    timing: dict[str, float] = {}
    outcome = "ok"
    with otel_migration.subject(subject):
        started = time.perf_counter()
        try:
            call(user, factor, draw, timing)
        except Declined:
            outcome = "error"
        outer = time.perf_counter() - started
    _truth(
        {
            "user": user,
            "n": n,
            "version": version,
            "outcome": outcome,
            "inner": timing["inner"],
            "outer": outer,
            "pid": os.getpid(),
            "replica": os.environ.get("FLEET_REPLICA", ""),
        }
    )
    status = "200 OK" if outcome == "ok" else "502 Bad Gateway"
    start_response(status, [("Content-Type", "text/plain")])
    return [f"{version} {outcome}\n".encode()]
