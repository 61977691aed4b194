"""Versioned calls: the wrapper factories, ``versioned``/``phase`` and configured targets."""
