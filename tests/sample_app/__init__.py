"""A small application used as configured targets in tests (never imported by the tests directly)."""
