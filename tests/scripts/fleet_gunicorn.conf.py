"""gunicorn settings for tests/scripts/fleet_wsgi.py: the SDK is configured in each worker, after the fork.

A pre-fork server forks its workers from the master: threads do not survive ``fork()``, so SDK
providers built in the master would have no exporter threads in the workers. Each worker builds
its own (with its own ``service.instance.id``) in ``post_worker_init``, and flushes them in
``worker_exit`` so that its last counts and sketches reach the collector when it stops. The
test's :class:`fleet_wsgi.WrapperClock` listens to every call the SDK records.
"""

from __future__ import annotations

from typing import Any

from fleet_wsgi import MIGRATION, SUBJECT_KEY, WrapperClock

import otel_migration

worker_class = "sync"
graceful_timeout = 10
accesslog = None
# Several servers run side by side in the tests: no shared control socket in ~/.gunicorn.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    telemetry = otel_migration.configure(migration=MIGRATION, subject_key=SUBJECT_KEY)
    telemetry.recorder.add_listener(WrapperClock())


def worker_exit(server: Any, worker: Any) -> None:
    otel_migration.shutdown()
