"""A real gunicorn with pre-fork workers: a graceful reload or stop loses no request's metrics.

Both worker kinds: the sync one exits normally (atexit runs), uvicorn's re-raises SIGTERM after its
graceful shutdown, so the process dies by the signal and only our chained handler flushes.
gunicorn stops a worker with SIGTERM (``kill -HUP`` of the master replaces every worker; ``kill
-TERM`` stops them all). The export interval here is 10 minutes, so everything the receiver gets
was flushed by the stopping worker itself. The master imports the application (``--preload``) and
serves nothing: it must not show up as one more instance. With ``--preload`` the application was
configured before gunicorn set each worker's signal handlers, so the README's hooks
(``scripts/gunicorn_conf.py``) are used; without it nothing but the application is needed.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..otlp_receiver import OTLPReceiver
from .stack import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "scripts"
WORKERS = 3


def _get(port: int, count: int) -> int:
    served = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(count):
        conn.request("GET", f"/r{i}")
        response = conn.getresponse()
        response.read()
        served += response.status == 200
    conn.close()
    return served


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start listening")


def _served_requests(receiver: OTLPReceiver) -> tuple[float, int]:
    latest = receiver.latest_metrics("migration.requests")
    return sum(p.value or 0 for p in latest), len({p.resource["service.instance.id"] for p in latest})


def _gunicorn(
    port: int, receiver: OTLPReceiver, tmp_path: Path, preload: bool, worker: str
) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {
        **clean,
        **receiver.env(),
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_SERVICE_NAME": "gunicorn-app",
        "PYTHONPATH": str(SCRIPTS),
    }
    args = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}"]
    args += [
        "--graceful-timeout",
        "20",
        *(["--preload", "-c", str(SCRIPTS / "gunicorn_conf.py")] if preload else []),
    ]
    args += (
        ["-k", "uvicorn.workers.UvicornWorker", "gunicorn_app:asgi"]
        if worker == "uvicorn"
        else ["gunicorn_app:app"]
    )
    return subprocess.Popen(args, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("worker", ["sync", "uvicorn"])
@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_reload_then_stop_loses_no_request(preload: bool, worker: str, tmp_path: Path) -> None:
    port = free_port()
    with OTLPReceiver("grpc") as receiver:
        proc = _gunicorn(port, receiver, tmp_path, preload, worker)
        try:
            _wait_ready(port, proc)
            with ThreadPoolExecutor(4) as pool:
                served = sum(pool.map(lambda _: _get(port, 100), range(4)))
            proc.send_signal(signal.SIGHUP)  # graceful reload: every worker gets SIGTERM
            receiver.wait_for_metrics(lambda _: _served_requests(receiver)[0] >= served, timeout=30)
            first, instances = _served_requests(receiver)
            assert first == served == 400
            assert instances <= WORKERS  # the workers that served; never the master

            _wait_ready(port, proc)
            time.sleep(1)  # the new workers booted
            served_after = _get(port, 150)
            proc.send_signal(signal.SIGTERM)  # stop: the new workers get SIGTERM too
            proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
        receiver.wait_for_metrics(lambda _: _served_requests(receiver)[0] >= 400 + served_after, timeout=20)
        total, _ = _served_requests(receiver)
    assert served_after == 150
    assert total == 550
