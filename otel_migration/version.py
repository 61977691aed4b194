"""The package version, in one place (read by pyproject through setuptools' dynamic version)."""

__version__ = "0.1.0"
