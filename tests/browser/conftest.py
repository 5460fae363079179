"""The browser tests' Chromium: Debian's executable, driven by Playwright (which cannot
download browsers of its own here). A missing Chromium fails the test with how to install it;
it never skips."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000


def chromium_path() -> str:
    """Debian's Chromium; fails (never skips) with how to install it when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed, and the browser tests need it: run "
            "'sudo apt-get install chromium' (or 'bash scripts/install-system.sh')",
            pytrace=False,
        )
    return found


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium for the test (each page gets a fresh context), closed afterwards."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
