"""Browser flow of the idle timer on the home page: the countdown shows and Extend session extends.

Headless Debian Chromium (Playwright) against the installed chart's hub with our culler (its settings:
conftest.E2E_SETTINGS); the session-info API is the
judge of what the click did.
"""

from __future__ import annotations

import re

import pytest

from ..browser import login, sync_api
from ..hubclient import new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_home_page_counts_down_and_extends(hub, admin, username, new_page):
    user = new_user(hub.url, admin, username)
    user.start_server()
    page = new_page()
    login(page, hub.url, username)

    timer = page.locator("#ds-session-timer")
    expect(timer).to_be_visible()
    expect(page.locator("#ds-session-remaining")).to_have_text(re.compile(r"^(9|10)m \d+s$"))
    first = page.locator("#ds-session-remaining").inner_text()
    page.wait_for_timeout(2200)
    assert page.locator("#ds-session-remaining").inner_text() != first  # the countdown runs
    hours = page.locator("#ds-extend-hours")
    expect(hours).to_have_attribute("max", "3")  # the hours available, not a fixed 24
    expect(page.locator("#ds-extend-available")).to_have_text("Available: 3 hour(s)")

    hours.fill("2")
    page.click("#ds-extend-btn")
    expect(page.locator("#ds-extend-result")).to_have_text("Added 2 hour(s) to session")
    expect(hours).to_have_attribute("max", "1")
    expect(page.locator("#ds-session-remaining")).to_have_text(re.compile(r"^2h (9|10)m$"))
    info = user.api("GET", f"/users/{username}/session-info").json()
    assert info["extensions_used_hours"] == 2 and info["extensions_available_hours"] == 1

    hours.fill("1")
    page.click("#ds-extend-btn")
    expect(page.locator("#ds-extend-result")).to_have_text("Added 1 hour(s) to session")
    expect(page.locator("#ds-extend-btn")).to_be_disabled()
    expect(page.locator("#ds-extend-available")).to_have_text("No extension hours available")
    user.stop_server()
