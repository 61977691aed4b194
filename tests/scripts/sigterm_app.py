"""A process stopped by SIGTERM, run by tests/test_lifecycle.py.

    python sigterm_app.py {default|python} CALLS

``default``: SIGTERM keeps its default action (what uvicorn's re-raise ends in): the process dies
by the signal, atexit never runs. ``python``: the application installed its own handler before
configuring, which must still run after our flush. Prints "ready" once its calls are made.
"""

from __future__ import annotations

import signal
import sys
import time

import otel_migration


def main() -> None:
    previous, calls = sys.argv[1], int(sys.argv[2])
    stopping = []
    if previous == "python":

        def app_handler(signum: int, frame: object) -> None:
            print("app handler ran", flush=True)
            stopping.append(signum)

        signal.signal(signal.SIGTERM, app_handler)
    otel_migration.configure(migration="sigterm")
    for _ in range(calls):
        with otel_migration.versioned("2.0", operation="served"):
            pass
    print("ready", flush=True)
    deadline = time.monotonic() + 20
    while not stopping and time.monotonic() < deadline:
        time.sleep(0.05)
    # The application's own handler returned; it exits without shutting down (os._exit: no atexit).
    sys.stdout.flush()
    import os

    os._exit(0 if stopping else 1)


if __name__ == "__main__":
    main()
