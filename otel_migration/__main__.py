"""``python -m otel_migration``: the same as the ``otel-migration`` command."""

from ._cli import main

raise SystemExit(main())
