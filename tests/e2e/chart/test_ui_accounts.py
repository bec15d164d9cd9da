"""Browser flows for accounts: the credentials dialog after adding users in JupyterHub's own admin page,
the Authorize Users page, the navbar. Headless Debian Chromium (Playwright) against a real hub."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from ..browser import login, sync_api
from ..hubclient import HubClient, new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser



def test_admin_adds_two_users_and_sees_their_passwords_once(hub, admin, new_page, tmp_path):
    first, second = f"b{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:6]}<b>x"  # the second needs escaping
    page = new_page()
    login(page, hub.url, admin.username)
    page.goto(f"{hub.url}/hub/admin")
    page.click(".add-users-button")
    textarea = page.locator("#add-user-textarea")
    textarea.fill(f"{first}\n{second}")
    textarea.blur()  # the React form reads the names on blur
    page.click("[data-testid=submit]")

    modal = page.locator("#ds-credentials-modal")
    expect(modal).to_be_visible()
    rows = modal.locator("tr.ds-credential")
    expect(rows).to_have_count(2)
    expect(rows.locator(".ds-credential-name")).to_have_text([first, second])  # text, not markup
    expect(modal.locator("tbody b")).to_have_count(0)
    passwords = dict(zip([first, second], rows.locator(".ds-credential-password").all_text_contents(), strict=True))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+){3}", p) for p in passwords.values()), passwords

    copy = rows.first.locator(".ds-copy-one")
    copy.click()
    expect(copy).to_have_text("Copied")
    with page.expect_download() as download:
        modal.locator("[data-ds-role=download]").click()
    assert re.fullmatch(r"jupyterhub-credentials-\d{4}-\d{2}-\d{2}\.txt", download.value.suggested_filename)
    saved = tmp_path / "credentials.txt"
    download.value.save_as(saved)
    text = Path(saved).read_text()
    for name, password in passwords.items():
        assert f"Username: {name}\nPassword: {password}" in text

    modal.locator("[data-bs-dismiss=modal].btn-primary").click()
    expect(modal).to_be_hidden()
    expect(rows).to_have_count(0)  # nothing stays in the page
    # once: the hub hands them out no more
    r = admin.api("POST", "/admin/credentials", json={"usernames": [first, second]})
    assert r.json() == {"credentials": []}
    # and they work
    HubClient(hub.url, first).login(passwords[first])


def test_authorize_page_offers_discard_only_for_signups(hub, admin, new_page):
    member, waiting, other = (f"{c}{uuid.uuid4().hex[:8]}" for c in "mwo")
    new_user(hub.url, admin, member)
    # unauthorized again, but still a hub user
    assert admin.api("POST", f"/ds/signups/{member}", json={"authorized": False}).status_code == 200
    HubClient(hub.url, waiting).signup()
    HubClient(hub.url, other).signup()
    page = new_page()
    login(page, hub.url, admin.username)
    page.goto(f"{hub.url}/hub/authorize")
    member_row = page.locator(f'#ds-authorize-table tr[data-username="{member}"]')
    waiting_row = page.locator(f'#ds-authorize-table tr[data-username="{waiting}"]')
    expect(member_row).to_contain_text("hub user")
    expect(member_row.locator(".ds-discard")).to_have_count(0)
    expect(member_row.locator(".ds-toggle")).to_have_text("Authorize")
    expect(waiting_row.locator(".ds-discard")).to_have_count(1)
    waiting_row.locator(".ds-discard").click()  # DELETE /hub/api/ds/signups/<name> with XSRF, then a reload
    page.wait_for_url(re.compile(r"/hub/authorize$"))
    expect(page.locator(f'#ds-authorize-table tr[data-username="{waiting}"]')).to_have_count(0)
    other_row = page.locator(f'#ds-authorize-table tr[data-username="{other}"]')
    other_row.locator(".ds-toggle").click()  # POST {"authorized": true}
    expect(other_row).to_contain_text("authorized")
    expect(other_row.locator(".ds-toggle")).to_have_text("Unauthorize")
    HubClient(hub.url, other).login()


def test_navbar_links_for_admin_and_user(hub, admin, username, new_page):
    page = new_page()
    login(page, hub.url, admin.username)
    expect(page.locator("#ds-nav-change-password")).to_have_text("Change Password")
    expect(page.locator("#ds-nav-authorize")).to_have_text("Authorize Users")
    page.click("#ds-nav-authorize")
    expect(page.locator("#ds-authorize h1")).to_have_text("Authorize Users")

    new_user(hub.url, admin, username)
    page = new_page()
    login(page, hub.url, username)
    expect(page.locator("#ds-nav-change-password")).to_be_visible()
    expect(page.locator("#ds-nav-authorize")).to_have_count(0)
    page.click("#ds-nav-change-password")
    page.wait_for_url(re.compile(r"/hub/change-password$"))
