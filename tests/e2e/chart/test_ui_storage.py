"""Browser flows for per-user storage: Manage Volumes, Restart Server, the admin variant, the footer.

Headless Debian Chromium driven by Playwright (sync API) against a real hub on the local control
plane. Users sign in through the real login form; the API server (``kube``) is the judge of what
happened to claims and pods.
"""

from __future__ import annotations

import jupyterhub
import pytest

import hub_extensions

from ..browser import login, sync_api
from ..hubclient import HubClient, new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser

DEFAULT_SIZES = {"home": "10Gi", "workspace": "10Gi", "cache": "5Gi"}



def start_and_stop(user: HubClient, kube) -> None:
    """Start once (so the claims exist), stop, and wait until the pod is gone from the API server."""
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(user.username)


def volume_row(scope, name: str):
    return scope.locator(f'.ds-volume[data-volume="{name}"]')


# ---------------------------------------------------------------- tests


def test_footer_and_never_started_user_sees_no_volumes_to_reset(hub, admin, username, new_page):
    """Login form, version footer; before a first start nothing exists, so nothing can be reset."""
    new_user(hub.url, admin, username)
    page = new_page()
    login(page, hub.url, username)

    expect(page.locator("#ds-version-footer")).to_have_text(
        f"jupyterhub-ds {hub_extensions.__version__} | JupyterHub {jupyterhub.__version__}")
    expect(page.locator("#restart-server-btn")).to_have_count(0)

    page.click("#manage-volumes-btn")
    modal = page.locator("#manage-volumes-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("This action cannot be undone")
    for name in ("home", "workspace", "cache"):
        row = volume_row(modal, name)
        expect(row).to_contain_text("not created yet")
        expect(row.locator("input[type=checkbox]")).to_be_disabled()
    expect(page.locator("#confirm-reset-btn")).to_be_disabled()
    expect(page.locator("#volume-warning")).to_have_text("")


def test_manage_volumes_resets_only_the_selected_claim(hub, admin, kube, username, new_page):
    user = new_user(hub.url, admin, username)
    start_and_stop(user, kube)
    before = kube.user_claims(username)
    assert sorted(before) == ["cache", "home", "workspace"]

    page = new_page()
    login(page, hub.url, username)
    expect(page.locator("#restart-server-btn")).to_have_count(0)
    page.click("#manage-volumes-btn")
    modal = page.locator("#manage-volumes-modal")
    expect(modal).to_be_visible()

    for name, size in DEFAULT_SIZES.items():
        row = volume_row(modal, name)
        expect(row.locator("input[type=checkbox]")).to_be_enabled()
        expect(row.locator(".ds-volume-size")).to_have_text(size)
        expect(row.locator(".ds-volume-status")).not_to_have_text("not created yet")
        expect(row).to_contain_text(before[name]["metadata"]["name"])
    expect(volume_row(modal, "home")).to_contain_text("User home directory")

    confirm = page.locator("#confirm-reset-btn")
    expect(confirm).to_be_disabled()
    cache = volume_row(modal, "cache").locator("input[type=checkbox]")
    cache.check()
    expect(page.locator("#volume-warning")).to_have_text("1 volume(s) selected for deletion")
    expect(confirm).to_be_enabled()
    cache.uncheck()
    expect(confirm).to_be_disabled()
    cache.check()
    confirm.click()

    # the page reloads after success and shows the hub's JSON message
    flash = page.locator("#ds-flash-message")
    expect(flash).to_contain_text("Successfully reset 1 volume(s)", timeout=90_000)

    after = kube.user_claims(username)
    assert sorted(after) == ["home", "workspace"]
    for name in ("home", "workspace"):
        assert after[name]["metadata"]["uid"] == before[name]["metadata"]["uid"]

    # the list now reflects the cluster: cache is gone until the next start
    page.click("#manage-volumes-btn")
    expect(volume_row(modal, "cache")).to_contain_text("not created yet")
    expect(volume_row(modal, "home").locator("input[type=checkbox]")).to_be_enabled()


def test_running_server_offers_restart_and_restart_gives_a_new_pod(hub, admin, kube, username, new_page):
    user = new_user(hub.url, admin, username)
    start_and_stop(user, kube)

    # the modal was opened while stopped; the server starts elsewhere before the user confirms:
    # the hub refuses with JSON (409) and the modal shows its message
    page = new_page()
    login(page, hub.url, username)
    page.click("#manage-volumes-btn")
    modal = page.locator("#manage-volumes-modal")
    volume_row(modal, "cache").locator("input[type=checkbox]").check()
    user.start_server()
    page.click("#confirm-reset-btn")
    expect(modal.locator('[data-ds-role="result"]')).to_contain_text(
        "Error: Server must be stopped before resetting volumes")
    expect(modal.locator('[data-ds-role="server-note"]')).to_contain_text("is running")
    expect(volume_row(modal, "cache").locator("input[type=checkbox]")).to_be_disabled()
    assert sorted(kube.user_claims(username)) == ["cache", "home", "workspace"]

    # running: Restart Server instead of Manage Volumes
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#restart-server-btn")).to_be_visible()
    expect(page.locator("#manage-volumes-btn")).to_have_count(0)

    pods = kube.user_pods(username)
    assert len(pods) == 1
    old_uid = pods[0]["metadata"]["uid"]
    claims = {v: c["metadata"]["name"] for v, c in kube.user_claims(username).items()}

    page.click("#restart-server-btn")
    restart = page.locator("#restart-server-modal")
    expect(restart).to_be_visible()
    expect(restart).to_contain_text("new pod")
    expect(restart).to_contain_text("volumes are kept")
    confirm = page.locator("#confirm-restart-btn")
    confirm.click()
    expect(confirm).to_have_text("Restarting...")
    expect(confirm).to_be_disabled()

    # 200: back home with the hub's message; 202: the spawn-pending page follows the start
    page.wait_for_function(
        "() => location.pathname.includes('/spawn-pending/') || !!document.getElementById('ds-flash-message')",
        timeout=180_000)
    if "/spawn-pending/" not in page.url:
        expect(page.locator("#ds-flash-message")).to_contain_text("Server restarted")
    user.wait_server(ready=True, timeout=180)

    pods = kube.user_pods(username)
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    assert running[0]["metadata"]["uid"] != old_uid
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in running[0]["spec"]["volumes"]
               if "persistentVolumeClaim" in v}
    assert set(claims.values()) <= mounted
    assert {v: c["metadata"]["name"] for v, c in kube.user_claims(username).items()} == claims

    # JupyterHub's own Stop button: once the server is really stopped, Manage Volumes replaces Restart
    page.goto(f"{hub.url}/hub/home")
    page.click("#stop")
    expect(page.locator("#manage-volumes-btn")).to_be_visible(timeout=90_000)
    expect(page.locator("#restart-server-btn")).to_have_count(0)


def test_admin_resets_a_users_volume(hub, admin, kube, username, new_page):
    user = new_user(hub.url, admin, username)
    user.start_server()

    page = new_page()
    login(page, hub.url, admin.username)
    page.goto(f"{hub.url}/hub/admin")
    expect(page.locator("#ds-version-footer")).to_contain_text(f"JupyterHub {jupyterhub.__version__}")
    page.click("#admin-manage-volumes-btn")
    modal = page.locator("#admin-manage-volumes-modal")
    expect(modal).to_be_visible()

    # errors are the hub's JSON message, not a generic status line
    page.fill("#admin-volume-user", f"{username}-nobody")
    page.click("#admin-load-volumes-btn")
    expect(modal.locator('[data-ds-role="result"]')).to_contain_text(
        f"Could not load volumes: No such user: {username}-nobody")
    expect(page.locator("#admin-confirm-reset-btn")).to_be_disabled()

    # suggestions come from GET api/users?name_filter=...
    page.fill("#admin-volume-user", username[:5])
    expect(page.locator(f'#admin-volume-user-options option[value="{username}"]')).to_have_count(1)
    page.fill("#admin-volume-user", username)
    page.click("#admin-load-volumes-btn")

    # running: shown, but nothing can be selected
    expect(modal.locator('[data-ds-role="server-note"]')).to_contain_text("is running")
    expect(volume_row(modal, "workspace").locator("input[type=checkbox]")).to_be_disabled()
    expect(page.locator("#admin-confirm-reset-btn")).to_be_disabled()

    user.stop_server()
    kube.wait_user_pod_gone(username)
    before = kube.user_claims(username)
    page.click("#admin-load-volumes-btn")
    expect(modal.locator('[data-ds-role="server-note"]')).to_be_hidden()
    workspace = volume_row(modal, "workspace").locator("input[type=checkbox]")
    expect(workspace).to_be_enabled()
    workspace.check()
    expect(page.locator("#admin-volume-warning")).to_have_text("1 volume(s) selected for deletion")
    page.click("#admin-confirm-reset-btn")

    expect(modal.locator('[data-ds-role="result"]')).to_contain_text("Successfully reset 1 volume(s)",
                                                                     timeout=90_000)
    expect(volume_row(modal, "workspace")).to_contain_text("not created yet")
    after = kube.user_claims(username)
    assert sorted(after) == ["cache", "home"]
    assert {v: c["metadata"]["uid"] for v, c in after.items()} == \
        {v: before[v]["metadata"]["uid"] for v in ("cache", "home")}
