"""The gunicorn hooks README.md shows ("Deployment: pre-fork servers"), used by tests/e2e/test_gunicorn.py."""

import otel_migration


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    # With --preload the application configured in the master; the worker's own signal handlers
    # are set now, so configuring again puts our SIGTERM flush in front of them.
    otel_migration.configure()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    otel_migration.shutdown(5_000)
