"""Auto-instrumentation of LLM SDKs: ``anthropic`` and ``openai``, each a ``BaseInstrumentor``.

Install with the extras of the same name (``pip install otel-migration[anthropic,openai]``); under
``opentelemetry-instrument`` they are found through the ``opentelemetry_instrumentor`` entry
points, and an SDK that is not installed (or out of the supported range) is skipped quietly.
"""
