"""A delegate's grants filtered to one group stay filtered on every jupyterhub-ds endpoint (issue 20, item 4).

``dora`` holds ``admin:users``, ``admin:servers``, ``custom:ds-notifications:send``, ``custom:ds-activity:admin`` and
``custom:ds-volumes:reset``, each ``!group=course-x`` (conftest.ADVERSARY_ROLES). JupyterHub's ``needs_scope`` on a
handler without a user argument lets any filtered grant through: before issue 20 she cleared the whole event trail,
read it, reset and sampled everyone's activity, read the activity monitor and the settings page (the hub's whole
configuration) and listed and adopted volumes of other owner keys. Now every hub-wide endpoint needs the unfiltered
scope (403 naming it), and the per-user ones answer for course-x members only (JupyterHub's 404 for anyone else).
Each attack runs as her browser session (cookies and XSRF) and with her API token.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from ..hubclient import HubClient, new_user
from .conftest import COURSE, DELEGATE

pytestmark = pytest.mark.cluster


class Token:
    """dora's API token (every scope she holds): the same calls as her browser session, without cookies."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.headers = {"Authorization": f"token {token}"}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", headers=self.headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=self.headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def dora(hub, admin) -> HubClient:
    return new_user(hub.url, admin, DELEGATE)


@pytest.fixture(scope="module")
def people(hub, admin, kube, dora) -> dict[str, HubClient]:
    """A course-x member and an outsider, both with a running server (claims exist)."""
    suffix = uuid.uuid4().hex[:6]
    member, outsider = new_user(hub.url, admin, f"fgm{suffix}"), new_user(hub.url, admin, f"fgo{suffix}")
    admin.api("POST", f"/groups/{COURSE}")  # 201, or 409 when another module made it
    r = admin.api("POST", f"/groups/{COURSE}/users", json={"users": [member.username]})
    assert r.status_code == 200, r.text
    member.start_server()
    outsider.start_server()
    return {"member": member, "outsider": outsider}


@pytest.fixture(params=["session", "token"])
def as_dora(request, hub, dora):
    return dora if request.param == "session" else Token(hub.url, dora.token())


def page_refused(as_dora, path: str) -> None:
    """A page refused: the hub's 403 page for her session; a token is no login for pages (a redirect to it)."""
    r = as_dora.get(path, allow_redirects=False)
    assert r.status_code == (403 if isinstance(as_dora, HubClient) else 302), (path, r.status_code)
    assert 'id="ds-settings"' not in r.text and 'id="ds-activity"' not in r.text


def refused(r: requests.Response, scope: str) -> None:
    assert r.status_code == 403, (r.status_code, r.text[:300])
    body = r.json()
    assert body["status"] == 403 and scope in body["message"] and "without a filter" in body["message"], body


def trail_total(admin) -> int:
    r = admin.api("GET", "/ds/events?limit=1")
    assert r.status_code == 200, r.text
    return r.json()["total"]


def sample_count(admin) -> int:
    r = admin.api("GET", "/activity")
    assert r.status_code == 200, r.text
    return sum(u["sample_count"] for u in r.json()["users"])


def test_delegate_can_neither_read_nor_clear_the_trail(admin, people, as_dora):
    before = trail_total(admin)
    assert before > 0  # the servers' spawns
    refused(as_dora.api("DELETE", "/ds/events"), "admin:users")
    refused(as_dora.api("GET", "/ds/events"), "admin:users")
    refused(as_dora.api("GET", f"/ds/events?user={people['member'].username}"), "admin:users")
    assert trail_total(admin) >= before


def test_delegate_can_neither_reset_nor_sample_nor_read_everyones_activity(admin, people, as_dora):
    r = admin.api("POST", "/activity/sample")
    assert r.status_code == 200, r.text
    before = sample_count(admin)
    assert before > 0
    refused(as_dora.api("POST", "/activity/reset"), "custom:ds-activity:admin")
    refused(as_dora.api("POST", "/activity/sample"), "custom:ds-activity:admin")
    refused(as_dora.api("GET", "/activity"), "custom:ds-activity:read")
    refused(as_dora.api("GET", "/ds/cluster"), "custom:ds-activity:read")
    page_refused(as_dora, "/hub/activity")
    assert sample_count(admin) == before


def test_delegate_sees_no_settings_page_and_no_health_details(as_dora):
    page_refused(as_dora, "/hub/settings")
    r = as_dora.api("GET", "/ds/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text


def test_delegate_cannot_touch_an_outsiders_volumes_or_adopt_any(kube, people, as_dora):
    outsider, member = people["outsider"].username, people["member"].username
    claims = {v: c["metadata"]["uid"] for v, c in kube.user_claims(outsider).items()}
    assert claims
    for method in ("GET", "DELETE"):
        r = as_dora.api(method, f"/users/{outsider}/manage-volumes", json={"volumes": ["cache"]})
        assert r.status_code == 404 and r.json()["status"] == 404, r.text
    # adoption moves another owner key's claims: hub-wide, refused even for a member (for an outsider JupyterHub's
    # own check answers first, with its 404)
    refused(as_dora.api("GET", f"/users/{member}/adoptable-volumes"), "admin:users")
    refused(as_dora.api("POST", f"/users/{member}/adopt-volumes", json={"owner": "x" * 16}), "admin:users")
    for method, path in (("GET", "adoptable-volumes"), ("POST", "adopt-volumes")):
        assert as_dora.api(method, f"/users/{outsider}/{path}", json={"owner": "x" * 16}).status_code == 404
    assert {v: c["metadata"]["uid"] for v, c in kube.user_claims(outsider).items()} == claims
    # a member's volumes are hers to see (and to reset once the server is stopped)
    r = as_dora.api("GET", f"/users/{member}/manage-volumes")
    assert r.status_code == 200 and {v["volume"] for v in r.json()["volumes"]} >= {"cache"}, r.text


def test_delegate_cannot_restart_extend_or_inspect_an_outsiders_server(kube, people, as_dora):
    outsider, member = people["outsider"].username, people["member"].username
    pod = kube.user_pod(outsider)
    assert pod is not None
    for method, path in (("POST", "restart-server"), ("POST", "extend-session"), ("GET", "session-info"),
                         ("GET", "dashboard")):
        r = as_dora.api(method, f"/users/{outsider}/{path}", json={"hours": 1})
        assert r.status_code == 404 and r.json()["status"] == 404, (path, r.text)
    assert kube.user_pod(outsider)["metadata"]["uid"] == pod["metadata"]["uid"]
    # the member's: allowed
    assert as_dora.api("GET", f"/users/{member}/session-info").status_code == 200
    assert as_dora.api("GET", f"/users/{member}/dashboard").status_code == 200
    r = as_dora.api("POST", f"/users/{member}/extend-session", json={"hours": 1})
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    servers = as_dora.api("GET", "/notifications/active-servers").json()["servers"]
    assert {s["username"] for s in servers} == {member}


def test_delegate_restarts_and_resets_a_members_server(kube, people, dora):
    member = people["member"]
    pod = kube.user_pod(member.username)
    r = dora.api("POST", f"/users/{member.username}/restart-server")
    assert r.status_code in (200, 202), r.text
    member.wait_server(ready=True, timeout=120)
    assert kube.user_pod(member.username)["metadata"]["uid"] != pod["metadata"]["uid"]
    member.stop_server()
    kube.wait_user_pod_gone(member.username)
    cache = kube.user_claims(member.username)["cache"]["metadata"]["uid"]
    r = dora.api("DELETE", f"/users/{member.username}/manage-volumes", json={"volumes": ["cache"]})
    assert r.status_code == 200 and r.json()["reset_volumes"] == ["cache"], r.text
    assert kube.user_claims(member.username).get("cache", {}).get("metadata", {}).get("uid") != cache


def test_delegate_sees_and_reaches_only_her_groups_in_notifications(admin, people, dora):
    """The notifications form lists only the groups her grant names, and a broadcast to any other group is refused
    the same way whether the group exists or not (the answer tells her nothing about other groups)."""
    assert admin.api("POST", "/groups/adv-secret-team").status_code in (201, 409)
    page = dora.get("/hub/notifications")
    assert page.status_code == 200 and f'value="{COURSE}"' in page.text, page.text[-500:]
    assert "adv-secret-team" not in page.text and "docker-privileged" not in page.text
    answers = [dora.api("POST", "/notifications/broadcast", json={"message": "hi", "recipients": {"group": g}})
               for g in ("adv-secret-team", "adv-no-such-group")]
    assert [r.status_code for r in answers] == [403, 403], [r.text for r in answers]
    assert answers[0].json()["message"].replace("adv-secret-team", "X") == \
        answers[1].json()["message"].replace("adv-no-such-group", "X")
    r = dora.api("POST", "/notifications/broadcast", json={"message": "hi", "recipients": {"group": COURSE}})
    assert r.status_code == 200 and {d["username"] for d in r.json()["details"]} <= {people["member"].username}


def test_delegate_gets_no_links_to_hub_wide_pages(dora):
    home = dora.get("/hub/home").text
    assert 'id="ds-nav-notifications"' in home
    assert 'id="ds-nav-authorize"' not in home and 'id="ds-nav-activity"' not in home
    assert 'id="ds-nav-settings"' not in home
