"""The billing service, unaware of telemetry: run it under ``opentelemetry-instrument``.

    cd examples && opentelemetry-instrument python app.py

``otel-migration.toml`` in this folder names the targets; ``OTEL_*`` variables say where to send.
"""

from __future__ import annotations

import sys
import zlib

from billing import legacy
from billing.next import Billing


def serve(requests: int) -> None:
    billing = Billing()
    for i in range(requests):
        user = f"user-{i % 7}"
        use_next = zlib.crc32(user.encode()) % 2 == 0  # stable across runs, unlike hash()
        try:
            if use_next:
                billing.charge(user, 1000 + i)
                billing.monthly_report(user)
            else:
                legacy.charge(user, 1000 + i)
                legacy.monthly_report(user)
        except Exception as exc:  # the service handles its own errors; telemetry records them
            print(f"request {i} failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
