"""anthropic >= 1.14 traces itself through the global provider: the call must have one span, not two.

    python anthropic_self_traced.py BASE_URL

configure() builds the pipeline (OTLP JSON lines in the working directory) and installs it globally;
the anthropic client built afterwards records its own span there. Prints nothing; the test reads the file.
"""

from __future__ import annotations

import sys

import anthropic

import otel_migration
from otel_migration.instrumentation.anthropic import AnthropicInstrumentor

otel_migration.configure(exporter="file", migration="assistant")
AnthropicInstrumentor().instrument()
client = anthropic.Anthropic(base_url=sys.argv[1], api_key="test", max_retries=0)
with otel_migration.versioned("2.0", operation="answer"), otel_migration.phase("analysis"):
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
otel_migration.shutdown()
