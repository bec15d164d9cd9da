"""Headless Debian Chromium driven by Playwright (sync API): the browser fixtures the UI tests share.

Playwright's own browser download needs the internet; Debian's chromium (ci/dev/browser.sh) is used instead,
with the flags that keep it off the closed network.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from .hubclient import PASSWORD

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000
# Chromium device emulation of a phone (Playwright's "Pixel 5" descriptor, without needing the Playwright object)
PHONE = {
    "viewport": {"width": 393, "height": 727}, "screen": {"width": 393, "height": 851}, "device_scale_factor": 2.75,
    "is_mobile": True, "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 11; Pixel 5) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Mobile Safari/537.36",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (run ci/dev/browser.sh)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: sync_api.Browser) -> Iterator:
    """``new_page(**context_options)`` opens a page in a fresh context (own cookies; e.g. ``**PHONE`` for a
    phone); all are closed after the test, which fails if any page raised a JavaScript error."""
    contexts = []
    errors: list[str] = []

    def make(**options: object) -> sync_api.Page:
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def login(page: sync_api.Page, hub_url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real NativeAuthenticator login form, landing on the home page.

    ``next`` matters: without it JupyterHub sends a user without a server to /hub/spawn, which starts one.
    """
    page.goto(f"{hub_url}/hub/login?next=%2Fhub%2Fhome")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home$"))
    expect(page.locator("#ds-version-footer")).to_be_visible()


def assert_page_refused(page: sync_api.Page, hub_url: str, username: str, nav_id: str, path: str) -> None:
    """Signed in as ``username``: no navbar link ``nav_id``, and the page at ``path`` answers 403."""
    login(page, hub_url, username)
    expect(page.locator(f"#{nav_id}")).to_have_count(0)
    response = page.goto(f"{hub_url}{path}")
    assert response is not None and response.status == 403
