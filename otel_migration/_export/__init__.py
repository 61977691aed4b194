"""Where telemetry goes: the SDK pipeline we build, the OTLP JSON lines files, export health."""
