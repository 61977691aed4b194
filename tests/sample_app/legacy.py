"""Version 1.0 of billing, as a plain module-level function."""


def charge(amount: int) -> str:
    """Charge the old way."""
    return f"legacy:{amount}"
