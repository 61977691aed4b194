"""Headless Chromium for tests of what a person looks at (Jaeger UI, the HTML report).

Debian's ``chromium`` (installed by ``make browser``, part of ``make test``) driven by Playwright
for Python with ``executable_path``: Playwright cannot download its own browser on machines that
reach only package registries. The flags keep Chromium from dialling out on a closed network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Screenshots a person looks at after a run: under the repository, ignored by git.
SCREENSHOTS = Path(os.environ.get("OTEL_MIGRATION_SCREENSHOTS", ROOT / "test-output" / "screenshots"))

_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """The system Chromium; skips the test (with the install command) when it is missing."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Debian chromium is not installed: run `make browser`")
    return path


@dataclass
class Page:
    """A Playwright page plus every console error and uncaught exception it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """One headless page in a fresh profile; closed (with the browser) whatever happens."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            result = Page(page)
            page.on("pageerror", lambda exc: result.errors.append(f"pageerror: {exc}"))
            page.on(
                "console",
                lambda msg: result.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
            )
            yield result
        finally:
            browser.close()
