"""End to end: the shipped rules in a real Prometheus, the shipped routing in a real Alertmanager.

Prometheus (Debian ``prometheus``, scraping and evaluating every second, ``--rules.alert.resend-delay=1s``)
loads ``collector_config/alerts/migration.rules.yml`` and scrapes a loopback exposition endpoint whose
values this test sets. Alertmanager (Debian ``prometheus-alertmanager``) runs
``collector_config/alertmanager.yml`` unchanged but for its placeholders: the webhook URLs point at a
loopback receiver here, the smarthost at a loopback SMTP sink, the templates glob at the repository.

What is asserted is what the people on call get:
- a migration rolled back (critical, ``for: 0m``) reaches the pager, the chat and the mailbox, the
  pager within 30 s of the moment the exposed gauge turned to 1;
- while that rollback fires, the migration's error-spike warning fires in Prometheus but is inhibited
  in Alertmanager and never reaches the chat, while the same warning of another migration, raised at
  the same moment, does;
- the e-mail template names the migration, the version and the figure.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import http.server
import json
import shutil
import socketserver
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .stack import ROOT, Process, free_port, http_get, wait_until

pytestmark = pytest.mark.e2e

RULES = ROOT / "collector_config" / "alerts" / "migration.rules.yml"
AM_CONFIG = ROOT / "collector_config" / "alertmanager.yml"
JOB = "shop"
ROLLED_BACK = "checkout-e2e"  # the migration whose kill switch is pulled
OTHER = "search-e2e"  # a migration with an error spike and nothing critical
MAX_DELAY_S = 30.0


# -- loopback peers -----------------------------------------------------------------------------
class Exposition:
    """A Prometheus text-format endpoint whose sample values the test sets."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    body = "".join(f"{series} {value!r}\n" for series, value in owner.values.items())
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, series: str, value: float) -> None:
        with self._lock:
            self.values[series] = value

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Notification:
    receiver_path: str
    at: float  # time.monotonic() when it arrived
    payload: dict[str, Any]

    def firing(self, alertname: str, migration: str) -> bool:
        return any(
            a["status"] == "firing"
            and a["labels"].get("alertname") == alertname
            and a["labels"].get("migration_name") == migration
            for a in self.payload["alerts"]
        )


class WebhookReceiver:
    """Alertmanager's webhook target: records every POST with its path and arrival time."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner._lock:
                    owner.received.append(Notification(self.path, time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, path: str, alertname: str, migration: str) -> Notification | None:
        with self._lock:
            found = [n for n in self.received if n.receiver_path == path and n.firing(alertname, migration)]
        return found[0] if found else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SMTPSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP (EHLO, MAIL, RCPT, DATA, QUIT; no TLS, no auth) to receive Alertmanager's mail."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        super().__init__(("127.0.0.1", free_port()), _SMTPHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: SMTPSink

    def handle(self) -> None:
        self.wfile.write(b"220 sink ESMTP\r\n")
        lines: list[bytes] | None = None  # collecting DATA when not None
        for raw in self.rfile:
            if lines is not None:
                if raw.rstrip(b"\r\n") == b".":
                    message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                    self.server.messages.append(message)  # type: ignore[arg-type]
                    lines = None
                    self.wfile.write(b"250 OK queued\r\n")
                else:
                    lines.append(raw[1:] if raw.startswith(b"..") else raw)
                continue
            verb = raw[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                lines = []
                self.wfile.write(b"354 end with <CRLF>.<CRLF>\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self.wfile.write(b"250 OK\r\n")


def mail_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message.as_string()[:2000]
    return str(part.get_content())


# -- the servers --------------------------------------------------------------------------------
def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each placeholder, failing when one is missing (the config would go untested)."""
    for old, new in replacements.items():
        assert old in text, f"placeholder {old!r} not found in {AM_CONFIG.name}"
        text = text.replace(old, new)
    return text


@dataclass
class AlertingStack:
    exposition: Exposition
    webhooks: WebhookReceiver
    smtp: SMTPSink
    prometheus_url: str
    alertmanager_url: str
    processes: list[Process] = field(default_factory=list)

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.prometheus_url}/api/v1/alerts")
        assert status == 200, body
        return list(json.loads(body)["data"]["alerts"])

    def alertmanager_alerts(self, **labels: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in labels.items()])
        status, body = http_get(f"{self.alertmanager_url}/api/v2/alerts?{query}")
        assert status == 200, body
        return list(json.loads(body))

    def post_alert(self, labels: dict[str, str], annotations: dict[str, str]) -> None:
        data = json.dumps([{"labels": labels, "annotations": annotations}]).encode()
        request = urllib.request.Request(
            f"{self.alertmanager_url}/api/v2/alerts",
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertingStack]:
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} not found: make test installs the Debian packages", pytrace=False)
    work = tmp_path_factory.mktemp("alerting")
    exposition, webhooks, smtp = Exposition(), WebhookReceiver(), SMTPSink()
    taken: set[int] = {exposition.port, webhooks.port, smtp.port}
    am_port, prom_port = free_port(taken), free_port(taken)
    stack = AlertingStack(
        exposition, webhooks, smtp, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    )
    try:
        am_config = work / "alertmanager.yml"
        am_config.write_text(
            substitute(
                AM_CONFIG.read_text(),
                {
                    "http://127.0.0.1:9095/": f"http://127.0.0.1:{webhooks.port}/",
                    "smtp.example.com:587": f"127.0.0.1:{smtp.port}",
                    "smtp_require_tls: true": "smtp_require_tls: false",
                    "- alertmanager/*.tmpl": f"- {AM_CONFIG.parent / 'alertmanager' / '*.tmpl'}",
                },
            )
        )
        alertmanager = Process(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={am_config}",
                f"--storage.path={work / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ],
            {},
            work / "alertmanager.log",
        )
        stack.processes.append(alertmanager)
        alertmanager.start()
        wait_until(
            lambda: http_get(f"{stack.alertmanager_url}/-/ready")[0] == 200, 60, "Alertmanager", alertmanager
        )

        prom_config = work / "prometheus.yml"
        prom_config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: [{json.dumps(str(RULES))}]\n"
            "alerting:\n  alertmanagers:\n"
            f"    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n"
            "scrape_configs:\n"
            "  - job_name: exposition\n    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{exposition.port}']}}]\n"
        )
        prometheus = Process(
            "prometheus",
            [
                "prometheus",
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={work / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--rules.alert.resend-delay=1s",
            ],
            {},
            work / "prometheus.log",
        )
        stack.processes.append(prometheus)
        prometheus.start()
        wait_until(
            lambda: http_get(f"{stack.prometheus_url}/-/ready")[0] == 200, 60, "Prometheus", prometheus
        )
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop()
        for server in (exposition, webhooks, smtp):
            server.close()


def series(metric: str, **labels: str) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in {"job": JOB, **labels}.items()) + "}"


ROLLBACK = series("migration_rollout_rolled_back_ratio", migration_name=ROLLED_BACK)
SPIKE_ROLLED_BACK = series(
    "migration_error_spike_ratio",
    migration_name=ROLLED_BACK,
    migration_version="2.0",
    migration_error_category="timeout",
)
SPIKE_OTHER = series(
    "migration_error_spike_ratio",
    migration_name=OTHER,
    migration_version="2.0",
    migration_error_category="network",
)


def test_rollback_pages_within_30s_and_inhibits_the_migrations_warnings(alerting: AlertingStack) -> None:
    for name in (ROLLBACK, SPIKE_ROLLED_BACK, SPIKE_OTHER):
        alerting.exposition.set(name, 0)

    def scraped() -> bool:
        query = urllib.parse.urlencode({"query": "migration_rollout_rolled_back_ratio"})
        status, body = http_get(f"{alerting.prometheus_url}/api/v1/query?{query}")
        return status == 200 and len(json.loads(body)["data"]["result"]) == 1

    wait_until(scraped, 60, "Prometheus to scrape the exposition endpoint")

    # The condition becomes true now: the kill switch of ROLLED_BACK is pulled.
    alerting.exposition.set(ROLLBACK, 1)
    condition_at = time.monotonic()
    wait_until(
        lambda: alerting.webhooks.first("/pager", "MigrationRollbackTriggered", ROLLED_BACK) is not None,
        MAX_DELAY_S + 30,
        "the rollback page",
    )
    paged = alerting.webhooks.first("/pager", "MigrationRollbackTriggered", ROLLED_BACK)
    assert paged is not None
    delay = paged.at - condition_at
    print(f"rollback: condition -> pager webhook in {delay:.1f} s")
    assert delay < MAX_DELAY_S
    assert paged.payload["groupLabels"] == {"job": JOB, "migration_name": ROLLED_BACK}
    (alert,) = paged.payload["alerts"]
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == f"Migration {ROLLED_BACK} was rolled back"
    # The same critical goes to the chat and to the mailbox.
    wait_until(
        lambda: alerting.webhooks.first("/chat", "MigrationRollbackTriggered", ROLLED_BACK) is not None,
        30,
        "the rollback in the chat",
    )
    wait_until(lambda: len(alerting.smtp.messages) >= 1, 30, "the rollback e-mail")
    mail = alerting.smtp.messages[0]
    assert mail["Subject"] == f"[FIRING:1] {ROLLED_BACK}: Migration {ROLLED_BACK} was rolled back"
    assert f"[critical] migration {ROLLED_BACK}: Migration {ROLLED_BACK} was rolled back" in mail_text(mail)
    assert mail["To"] == "migration-oncall@example.com"

    # Both migrations now spike: the warning of the rolled-back one is inhibited, the other's is not.
    alerting.exposition.set(SPIKE_ROLLED_BACK, 1)
    alerting.exposition.set(SPIKE_OTHER, 1)
    wait_until(
        lambda: alerting.webhooks.first("/chat", "MigrationErrorSpike", OTHER) is not None,
        MAX_DELAY_S + 30,
        "the other migration's spike in the chat",
    )
    firing = {
        a["labels"]["migration_name"]
        for a in alerting.prometheus_alerts()
        if a["labels"]["alertname"] == "MigrationErrorSpike" and a["state"] == "firing"
    }
    assert firing == {ROLLED_BACK, OTHER}  # Prometheus fires both...
    (held,) = alerting.alertmanager_alerts(alertname="MigrationErrorSpike", migration_name=ROLLED_BACK)
    assert held["status"]["state"] == "suppressed" and held["status"]["inhibitedBy"], held["status"]
    # ...and Alertmanager holds this one back. Both were raised at the same evaluation and take the same
    # route with the same group_wait: give the inhibited one 10 s more than the other took.
    time.sleep(10)
    assert alerting.webhooks.first("/chat", "MigrationErrorSpike", ROLLED_BACK) is None
    assert alerting.webhooks.first("/pager", "MigrationErrorSpike", OTHER) is None  # a warning never pages
    assert alerting.prometheus_alerts()  # Prometheus is still up and firing


def test_email_names_migration_version_and_figure(alerting: AlertingStack) -> None:
    """An alert labelled as MigrationHighErrorRate labels it (see its promtool case), posted directly."""
    summary = "payments-e2e 2.0: 10% of calls fail"
    before = len(alerting.smtp.messages)
    alerting.post_alert(
        {
            "alertname": "MigrationHighErrorRate",
            "severity": "critical",
            "job": JOB,
            "migration_name": "payments-e2e",
            "migration_version": "2.0",
        },
        {
            "summary": summary,
            "description": "10% of the calls to version 2.0 of migration payments-e2e failed.",
        },
    )
    wait_until(lambda: len(alerting.smtp.messages) > before, 40, "the error-rate e-mail")
    (mail,) = [m for m in alerting.smtp.messages[before:] if "payments-e2e" in str(m["Subject"])]
    assert mail["Subject"] == f"[FIRING:1] payments-e2e: {summary}"
    text = mail_text(mail)
    assert f"[critical] migration payments-e2e version 2.0: {summary}" in text
    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    assert "<td>payments-e2e</td><td>2.0</td><td>" + summary in str(html.get_content())
