"""Browser flow for the Broadcast Notifications page: headless Chromium (Playwright) against a real hub with a
real single-user server that receives the message."""

from __future__ import annotations

import re

import pytest
import requests

from ..browser import assert_page_refused, login, sync_api
from ..hubclient import new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_admin_sends_from_the_page_and_sees_the_result_table(hub, admin, new_page):
    dora = new_user(hub.url, admin, "dora")
    dora.start_server()
    token = dora.token()
    page = new_page()
    login(page, hub.url, admin.username)
    page.click("#ds-nav-notifications")
    page.wait_for_url(re.compile(r"/hub/notifications$"))
    expect(page.locator("h1")).to_have_text("Broadcast Notifications")

    page.fill("#message", "😀" * 140)  # 140 code points (280 UTF-16 units) is allowed
    expect(page.locator("#char-count")).to_have_text("140/140")
    page.fill("#message", "  Lab maintenance tonight  ")
    expect(page.locator("#char-count")).to_have_text("23/140")  # trimmed, as the server strips it
    page.select_option("#variant", "warning")
    page.fill("#auto-close", "0")  # until dismissed
    page.check("#to-users")
    page.check(".ds-recipient[value=dora]")
    page.click("#send-btn")

    expect(page.locator("#ds-notify-summary")).to_have_text("Delivered: 1/1 | Failed: 0/1")
    rows = page.locator("#ds-notify-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("dora")
    expect(rows.first.locator(".badge")).to_have_text("success")
    expect(page.locator("#message")).to_have_value("")

    r = requests.get(f"{hub.url}/user/dora/jupyterlab-notifications-extension/notifications",
                     headers={"Authorization": f"token {token}"}, timeout=30)
    (got,) = r.json()["notifications"]
    assert (got["message"], got["type"], got["autoClose"]) == ("Lab maintenance tonight", "warning", False)


def test_users_without_the_scope_see_no_link_and_get_403(hub, admin, new_page):
    new_user(hub.url, admin, "eve")
    assert_page_refused(new_page(), hub.url, "eve", "ds-nav-notifications", "/hub/notifications")
