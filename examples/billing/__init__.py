"""A toy billing service in two versions: the code a migration moves from (legacy) and to (next).

Neither module imports otel_migration: they are wrapped from configuration (see
``examples/otel-migration.toml``), the zero-code way.
"""
