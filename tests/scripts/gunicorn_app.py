"""A tiny WSGI application for tests/e2e/test_gunicorn.py: one versioned call per request.

It configures at import, as an application does: with ``--preload`` that is in gunicorn's master
before it forks the workers, without it in each worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import otel_migration

otel_migration.configure(migration="gunicorn")


@otel_migration.versioned("2.0", operation="handle")
def handle(path: str) -> bytes:
    return f"ok {path}".encode()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = handle(environ.get("PATH_INFO", "/"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """The same for uvicorn's worker, which re-raises SIGTERM after its graceful shutdown."""
    if scope["type"] != "http":  # lifespan
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = handle(scope["path"])
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
