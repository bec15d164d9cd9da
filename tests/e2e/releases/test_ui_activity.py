"""Browser flow of the activity monitor: 50 users render, columns sort, Refresh reloads, Reset asks first,
and the page is readable on a phone. Headless Debian Chromium (Playwright) against the installed chart."""

from __future__ import annotations

import pytest

from ..browser import login, sync_api
from .test_activity import first_tick

expect = sync_api.expect

pytestmark = pytest.mark.browser

USERS = [f"act{i:02d}" for i in range(50)]


@pytest.fixture(scope="module")
def hub(release):
    return first_tick(release.install({"activity": {"resourcesUpdateSeconds": 5, "sampleIntervalSeconds": 3600}}))


@pytest.fixture(scope="module")
def fifty(hub, admin):
    for i in range(0, len(USERS), 10):  # each admin-created user gets a bcrypt-hashed generated password
        r = admin.api("POST", "/users", json={"usernames": USERS[i:i + 10]})
        assert r.status_code == 201, r.text
    assert admin.api("POST", "/activity/sample").status_code == 200  # every user now has a sample
    return USERS


def names(page) -> list[str]:
    return page.locator("#ds-activity-table tbody tr td.ds-user").all_inner_texts()


def open_reset_dialog(page) -> None:
    """Click Reset and wait for Bootstrap's ``shown.bs.modal``: while the fade-in runs, Bootstrap ignores a hide
    (a Cancel clicked as soon as the dialog is visible would be lost)."""
    page.evaluate("""() => { window.dsResetShown = new Promise(resolve => document.getElementById(
        "ds-activity-reset-modal").addEventListener("shown.bs.modal", () => resolve(true), {once: true})); }""")
    page.click("#ds-activity-reset")
    assert page.evaluate("() => window.dsResetShown") is True


def test_page_renders_sorts_refreshes_and_resets(hub, fifty, new_page):
    page = new_page()
    login(page, hub.url, "admin")
    page.click("#ds-nav-activity")
    page.wait_for_url("**/hub/activity")
    rows = page.locator("#ds-activity-table tbody tr")
    expect(rows).to_have_count(51)  # the 50 and the admin
    expect(page.locator("#ds-activity-summary")).to_have_text("51 users (0 active, 0 inactive, 51 offline)")
    assert set(fifty) <= set(names(page))

    header = page.locator('#ds-activity-table th[data-sort="username"]')
    header.click()  # desc
    expect(header).to_have_attribute("aria-sort", "descending")
    assert names(page)[0] == "admin" and names(page)[1] == "act49"
    header.click()  # asc
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert names(page)[:2] == ["act00", "act01"]

    loaded = page.locator("body").get_attribute("data-ds-activity-loaded")
    page.wait_for_timeout(1100)
    page.click("#ds-activity-refresh")
    expect(page.locator("body")).not_to_have_attribute("data-ds-activity-loaded", loaded)

    # Reset asks first; Cancel changes nothing, Reset deletes every sample
    open_reset_dialog(page)
    modal = page.locator("#ds-activity-reset-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("This will clear all historical samples.")
    modal.get_by_role("button", name="Cancel").click()
    expect(modal).to_be_hidden()
    open_reset_dialog(page)
    page.click("#ds-activity-reset-confirm")
    # 52: the sampler's first tick (the admin alone) and the 51 of the fixture's sample
    expect(page.locator("#ds-activity-flash")).to_have_text("Deleted 52 sample(s).")
    expect(modal).to_be_hidden()
    expect(page.locator("#ds-activity-sampling")).to_have_text("No samples yet")
    # the cluster panel renders GET /hub/api/ds/cluster (merged from branch capacity): the control plane's nodes
    panel = page.locator("#ds-cluster")
    expect(panel).to_be_visible()
    expect(panel.locator("tbody")).to_contain_text("cpu-1")
    expect(panel.locator("tbody")).to_contain_text("gpu-1")


def test_readable_on_a_phone(hub, fifty, admin, browser):
    assert admin.api("POST", "/activity/sample").status_code == 200  # rows again after the reset above
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        login(page, hub.url, "admin")
        page.goto(f"{hub.url}/hub/activity")
        expect(page.locator("#ds-activity-table tbody tr").first).to_be_visible()
        # nothing pushes the page wider than the screen: the table scrolls inside its own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 375 + 1
        user_cell = page.locator("#ds-activity-table tbody tr td.ds-user").first
        box = user_cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#ds-activity-table')).fontSize)")
        assert size >= 12
        expect(page.locator('#ds-activity-table th[data-sort="last_activity"]')).to_be_hidden()  # less important
        expect(page.locator('#ds-activity-table th[data-sort="activity_score"]')).to_be_visible()
    finally:
        context.close()


def test_cluster_panel_renders_the_documented_shape(hub, fifty, new_page):
    """The panel's rendering of fixed figures (route fulfilment of ``GET /hub/api/ds/cluster``), including a
    metrics outage the real control plane does not have."""
    import json

    page = new_page()
    login(page, hub.url, "admin")
    cluster = {"nodes": [{"name": "gpu-1", "allocatable": {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 2},
                          "requested": {"cpu_millicores": 1500, "memory_mb": 2048, "gpus": 1},
                          "usage": {"cpu_millicores": 250, "memory_mb": None}}],
               "metrics_available": False, "timestamp": "2026-11-30T00:00:00Z"}
    page.route("**/hub/api/ds/cluster", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                      body=json.dumps(cluster)))
    page.goto(f"{hub.url}/hub/activity")
    panel = page.locator("#ds-cluster")
    expect(panel).to_be_visible()
    cells = panel.locator("tbody tr").first.locator("td")
    expect(cells).to_have_text(["gpu-1", "1.5 / 8.0 cores", "2.0 GB / 32.0 GB", "1 / 2", "0.25 cores, --"])
    expect(page.locator("#ds-cluster-note")).to_have_text("Node usage unavailable (metrics API).")
