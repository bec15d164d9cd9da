"""The settings page, the home dashboard (also on a phone), and the branding favicon inside JupyterLab.

Headless Debian Chromium (Playwright) against the installed chart, with real single-user servers run by the node
agent. The module's release is first a branded one with the culler, then (an upgrade, for the last two tests) a
"trouble" release whose servers cannot start (GPUs nobody has, for the ``bigpu`` group; a crashing server for
``crash*`` users, from a later ``hub.extraConfig`` snippet).
"""

from __future__ import annotations

import base64
import re
import time

import jupyterhub
import kubespawner
import pytest
import requests

import hub_extensions
from hub_extensions import settings_page
from hub_extensions.settings import Settings

from ..browser import PHONE, assert_page_refused, login, sync_api
from ..hubclient import ServiceClient, admin_client, new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser

ICO = b"\0\0\1\0\1\0" + bytes(range(32)) + b"jupyterhub-ds-branding"
SECRET = "t0psecret-signature"
SIGNED_ICON = f"https://icons.example.org/lab.svg?X-Amz-Signature={SECRET}&size=32"


@pytest.fixture(scope="module")
def hub(release):
    return release.install({"culler": {"enabled": True, "timeoutSeconds": 3600},
                            "branding": {"favicon": "favicon.ico", "labMainIcon": SIGNED_ICON}},
                           values={"custom": {"brandingFiles": {"favicon.ico": base64.b64encode(ICO).decode()}}})


CRASH_HOOK = '''
def _crash(spawner):
    # a server that exits at once with an error, as a broken image would
    if spawner.user.name.startswith("crash"):
        spawner.cmd = ["python", "-c", "print('jhds-crash: cannot start, bad configuration'); raise SystemExit(3)"]

c.KubeSpawner.pre_spawn_hook = _crash
'''


@pytest.fixture(scope="module")
def trouble_hub(release):
    """The module's release upgraded (after the branded hub's tests) to servers that cannot start."""
    return release.install({"gpu": {"mode": 1, "count": 8, "group": "bigpu"}, "storage": {"enabled": False}},
                           hub_config={"KubeSpawner": {"start_timeout": 40, "http_timeout": 8}},
                           extra_config=CRASH_HOOK)


def no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"the page is {width}px wider than the phone's screen"


# ---------------------------------------------------------------- settings page


def test_settings_page_lists_every_key_and_masks_a_secret(hub, admin, kube, new_page):
    page = new_page()
    login(page, hub.url, admin.username)
    page.click("#ds-nav-settings")
    page.wait_for_url(re.compile(r"/hub/settings$"))
    expect(page.locator("h1")).to_have_text("Platform Settings")

    expected = [row.key for row in settings_page.rows(Settings())]
    shown = page.locator("#ds-settings-table tr[data-ds-key]").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-ds-key'))")
    assert shown == expected and len(expected) > 40

    row = page.locator('tr[data-ds-key="culler.timeoutSeconds"] td')
    expect(row.nth(1)).to_contain_text("3600")
    expect(row.nth(3)).to_have_text("JUPYTERHUB_IDLE_CULLER_TIMEOUT")
    expect(page.locator('tr[data-ds-key="culler.enabled"]')).to_have_class(re.compile("ds-changed"))

    icon = page.locator('tr[data-ds-key="branding.labMainIcon"] td').nth(1)
    expect(icon).to_contain_text("X-Amz-Signature=********")
    assert SECRET not in page.content()

    versions = page.locator("#ds-settings-versions")
    expect(versions.locator('[data-ds-version="JupyterHub"]')).to_have_text(jupyterhub.__version__)
    expect(versions.locator('[data-ds-version="KubeSpawner"]')).to_have_text(kubespawner.__version__)
    expect(versions.locator('[data-ds-version="jupyterhub-ds"]')).to_have_text(hub_extensions.__version__)
    expect(page.locator("#ds-settings-namespace")).to_have_text(kube.namespace)


def test_settings_page_is_for_admins_only(hub, admin, new_page):
    new_user(hub.url, admin, "sally")
    assert_page_refused(new_page(), hub.url, "sally", "ds-nav-settings", "/hub/settings")


# ---------------------------------------------------------------- the home page on a phone


def test_phone_home_starts_and_stops_the_server(hub, admin, username, new_page):
    new_user(hub.url, admin, username)
    page = new_page(**PHONE)
    login(page, hub.url, username)
    expect(page.locator("#ds-server-status")).to_have_text("Stopped")
    expect(page.locator("#manage-volumes-btn")).to_be_visible()
    expect(page.locator('#ds-volumes [data-volume="home"] .ds-volume-size')).to_contain_text("10Gi")
    no_horizontal_scroll(page)

    page.click("#start")  # starts in place on a phone, without leaving the dashboard
    expect(page.locator("#ds-server-status")).to_have_text("Running", timeout=90_000)
    assert page.url.endswith("/hub/home")
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#restart-server-btn")).to_be_visible()
    expect(page.locator("#ds-pod-phase")).to_have_text("Running")
    expect(page.locator("#ds-node")).not_to_have_text("—")
    expect(page.locator("#ds-session-timer")).to_be_visible()  # session time left, with Extend
    expect(page.locator("#ds-volumes-note")).to_contain_text("once your server is stopped")
    no_horizontal_scroll(page)

    page.click("#stop")
    expect(page.locator("#ds-server-status")).to_have_text("Stopped", timeout=90_000)
    expect(page.locator("#manage-volumes-btn")).to_be_visible()
    no_horizontal_scroll(page)


def test_phone_notifications_page_fits(hub, admin, new_page):
    page = new_page(**PHONE)
    login(page, hub.url, admin.username)
    page.goto(f"{hub.url}/hub/notifications")
    expect(page.locator("#send-btn")).to_be_visible()
    page.fill("#message", "hello")
    expect(page.locator("#char-count")).to_have_text("5/140")
    no_horizontal_scroll(page)


# ---------------------------------------------------------------- the favicon inside JupyterLab


def lab_favicon(page, hub_url: str, username: str) -> tuple[str, bytes]:
    page.goto(f"{hub_url}/user/{username}/lab")
    href = page.locator("link.favicon").first.get_attribute("href")
    body = page.evaluate("""async href => {
        const r = await fetch(href, {credentials: "same-origin"});
        return Array.from(new Uint8Array(await r.arrayBuffer()));
    }""", href)
    return href, bytes(body)


def test_lab_favicon_is_the_branding_favicon_and_the_route_goes_with_the_server(hub, admin, username, new_page):
    user = new_user(hub.url, admin, username)
    user.start_server()
    page = new_page()
    login(page, hub.url, username)
    seen: list[str] = []
    page.on("response", lambda r: seen.append(r.url) if "/static/favicons/" in r.url else None)
    href, body = lab_favicon(page, hub.url, username)
    assert href.endswith(f"/user/{username}/static/favicons/favicon.ico")
    assert body == ICO
    # a busy favicon of the lab is branded too (the whole folder is routed)
    r = requests.get(f"{hub.url}/user/{username}/static/favicons/favicon-busy-1.ico", timeout=10)
    assert r.content == ICO

    page.goto("about:blank")  # the lab closed first: its requests would fail once the server stops
    user.stop_server()
    r = requests.get(f"{hub.url}/user/{username}/static/favicons/favicon.ico", timeout=10, allow_redirects=False)
    assert r.content != ICO  # the route went with the server: the proxy's default (the hub) answers


def test_favicon_routes_come_back_after_a_hub_restart(hub, admin, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    hub.stop()
    # a new proxy pod: every route is gone, the restarted hub puts them back
    hub.kubectl("delete", "pod", "-l", "component=proxy", "--wait=true", "--timeout=90s")
    hub.start()
    deadline = time.monotonic() + 30
    while True:
        r = requests.get(f"{hub.url}/user/{username}/static/favicons/favicon.ico", timeout=10,
                         allow_redirects=False)
        if r.content == ICO or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.content == ICO
    user.stop_server()
    r = requests.get(f"{hub.url}/user/{username}/static/favicons/favicon.ico", timeout=10, allow_redirects=False)
    assert r.content != ICO


# ---------------------------------------------------------------- starting, failing: what the dashboard says


def test_dashboard_shows_phase_and_events_while_starting(trouble_hub, new_page):
    admin = admin_client(trouble_hub.url)
    user = new_user(trouble_hub.url, admin, "gina")
    svc = ServiceClient(trouble_hub.url, trouble_hub.service_token)
    assert svc.api("POST", "/groups/bigpu", json={}).status_code in (201, 409)
    assert svc.api("POST", "/groups/bigpu/users", json={"users": ["gina"]}).status_code == 200

    r = user.api("POST", "/users/gina/server")
    assert r.status_code == 202, r.text  # 8 GPUs: no node has them, the pod stays Pending
    page = new_page()
    login(page, trouble_hub.url, "gina")
    expect(page.locator("#ds-server-status")).to_have_text("Starting")
    expect(page.locator("#ds-pod-phase")).to_have_text("Pending", timeout=20_000)
    expect(page.locator("#ds-pod-events")).to_contain_text("Insufficient nvidia.com/gpu", timeout=20_000)
    expect(page.locator('[data-ds-capability="gpu"]')).to_contain_text("GPU: yes")

    doc = user.api("GET", "/users/gina/dashboard").json()
    assert doc["server"]["state"] == "pending" and doc["pod"]["phase"] == "Pending"
    assert doc["pod"]["gpus"] == 8 and doc["usage"] is None
    assert any(e["reason"] == "FailedScheduling" for e in doc["events"])
    # the user for themselves, admins for anyone; others 404 (as JupyterHub answers a filtered scope)
    hank = new_user(trouble_hub.url, admin, "hank")
    assert hank.api("GET", "/users/gina/dashboard").status_code == 404
    assert admin.api("GET", "/users/gina/dashboard").status_code == 200
    assert admin.api("GET", "/users/nobody-here/dashboard").status_code == 404


def test_dashboard_shows_the_log_tail_of_a_failing_server(trouble_hub, new_page):
    admin = admin_client(trouble_hub.url)
    user = new_user(trouble_hub.url, admin, "crashy")
    r = user.api("POST", "/users/crashy/server")
    # 202, or the failure itself when it comes within JupyterHub's slow_spawn_timeout (10 s)
    assert r.status_code in (202, 500), r.text
    deadline = time.monotonic() + 90
    doc = {}
    while time.monotonic() < deadline:
        doc = user.api("GET", "/users/crashy/dashboard").json()
        if doc["server"]["state"] == "stopped" and doc["last_failure"]:
            break
        time.sleep(1)
    failure = doc["last_failure"]
    assert failure, doc
    log = "\n".join(failure["log_tail"])
    assert "jhds-crash: cannot start, bad configuration" in log, failure

    page = new_page()
    login(page, trouble_hub.url, "crashy")
    box = page.locator("#ds-last-failure")
    expect(box).to_be_visible()
    # the server exits at once: JupyterHub gives up waiting for it to answer, or KubeSpawner for the pod to be
    # running (between two runs the container is waiting in back-off), whichever comes first
    expect(box).to_contain_text(re.compile(r"did not answer|did not start"))
    expect(page.locator("#ds-failure-log")).to_contain_text("jhds-crash: cannot start")
