"""The end-to-end application: both versions, a phase, an error and an LLM call, with known counts.

    python e2e_app.py CHARGES_V1 CHARGES_V2

The LLM span imitates one from a service that does not run this SDK at all: it is exported through
a plain SDK pipeline of its own (no otel_migration processors), with ``gen_ai.*`` model and token
attributes and no cost, so the collector's generated rules must price it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_migration

LLM_INPUT_TOKENS, LLM_OUTPUT_TOKENS, LLM_CACHE_READ = 12_000, 800, 2_000
OTHER_SERVICE = TracerProvider()


class CardDeclined(RuntimeError):
    pass


@otel_migration.versioned("1.0", operation="charge")
def charge_v1(i: int) -> str:
    if i == 0:
        raise CardDeclined("declined")
    return f"v1-{i}"


@otel_migration.versioned("2.0", operation="charge")
def charge_v2(i: int) -> str:
    with otel_migration.phase("synthesis"):
        return f"v2-{i}"


@otel_migration.versioned("2.0", operation="summarize")
def summarize() -> None:
    tracer = OTHER_SERVICE.get_tracer("another-llm-instrumentation")
    with otel_migration.phase("analysis"), tracer.start_as_current_span("chat claude-3-5-haiku") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-3-5-haiku-latest",
                "gen_ai.response.model": "claude-3-5-haiku-20241022",
                "gen_ai.usage.input_tokens": LLM_INPUT_TOKENS,
                "gen_ai.usage.output_tokens": LLM_OUTPUT_TOKENS,
                "gen_ai.usage.cache_read.input_tokens": LLM_CACHE_READ,
            }
        )


def main() -> None:
    v1, v2 = int(sys.argv[1]), int(sys.argv[2])
    otel_migration.configure(migration="e2e")
    http = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "http/protobuf"
    OTHER_SERVICE.add_span_processor(BatchSpanProcessor(HttpExporter() if http else GrpcExporter()))
    for i in range(v1):
        with contextlib.suppress(CardDeclined):
            charge_v1(i)
    for i in range(v2):
        charge_v2(i)
    summarize()
    OTHER_SERVICE.shutdown()
    otel_migration.shutdown()


if __name__ == "__main__":
    main()
