"""Debian's Chromium, driven by Playwright for Python: the browser of the pages' tests.

No browser is downloaded (``playwright install`` is never run): Playwright is
pointed at the system's Chromium (``apt-get install -y chromium``; another
binary through ``APITOKENPROXY_CHROMIUM``). Without it the tests skip and say
why, except where ``APITOKENPROXY_REQUIRE_BROWSER`` is set (CI): there they fail.

``browser``
    a fresh headless Chromium for one test, on the test's own event loop.
``APITOKENPROXY_SCREENSHOTS``
    a folder: the tests that show a page save a screenshot of it there
    (``screenshot``), which is how docs/images is made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ENV = "APITOKENPROXY_CHROMIUM"
REQUIRE_ENV = "APITOKENPROXY_REQUIRE_BROWSER"
SCREENSHOTS_ENV = "APITOKENPROXY_SCREENSHOTS"
INSTALL = "apt-get install -y chromium, and pip install playwright"


def chromium_path() -> str | None:
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason} ({INSTALL})")
    pytest.skip(f"browser tests are off: {reason} ({INSTALL})")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium found")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            # Containers and CI run as root, where Chromium's sandbox cannot start.
            args=["--no-sandbox"],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def screenshot(page: Any, name: str) -> None:
    """Save ``name``.png of the whole page when ``APITOKENPROXY_SCREENSHOTS`` names a folder."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        # Playwright makes the folder if it is missing.
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
