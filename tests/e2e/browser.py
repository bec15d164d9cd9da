"""Headless Debian Chromium driven by Playwright (sync API): the browser fixtures the UI tests share.

Playwright's own browser download needs the internet; Debian's chromium (ci/browser.sh) is used instead,
with the flags that keep it off the closed network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (run ci/browser.sh)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: sync_api.Browser) -> Iterator:
    """``new_page()`` opens a page in a fresh context (own cookies); all are closed after the test,
    which fails if any page raised a JavaScript error."""
    contexts = []
    errors: list[str] = []

    def make() -> sync_api.Page:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
