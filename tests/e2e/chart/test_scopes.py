"""Who may read and reset volumes, decided by our custom scopes on a real hub.

`servers` ("start and stop servers") no longer destroys data: only `custom:ds-volumes:reset` (every user
for themselves, or a role filtered to a group) or `admin:users` (admins) may reset. The hub loads a
user-configured `user` role and a group-scoped role through Z2JH's `hub.loadRoles` (conftest.E2E_ROLES).
"""

from __future__ import annotations

import pytest
import requests

from ..hubclient import HubClient, new_user
from .conftest import SCOPES_GROUP as GROUP
from .conftest import SCOPES_HELPER as HELPER  # holds custom:ds-volumes:reset for the group only


def with_claims(hub, admin, kube, name: str) -> HubClient:
    """A user whose three claims exist (one start and stop)."""
    user = new_user(hub.url, admin, name)
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(name)
    assert set(kube.user_claims(name)) == {"home", "workspace", "cache"}
    return user


@pytest.fixture(scope="module")
def member(hub, admin, kube) -> HubClient:
    user = with_claims(hub, admin, kube, "member1")
    r = admin.api("POST", f"/groups/{GROUP}")
    assert r.status_code in (201, 409), r.text
    r = admin.api("POST", f"/groups/{GROUP}/users", json={"users": ["member1"]})
    assert r.status_code == 200, r.text
    return user


@pytest.fixture(scope="module")
def outsider(hub, admin, kube) -> HubClient:
    return with_claims(hub, admin, kube, "outsider1")


def token(admin: HubClient, scopes: list[str]) -> dict[str, str]:
    r = admin.api("POST", "/users/admin/tokens", json={"scopes": scopes, "note": "test_scopes"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"token {r.json()['token']}"}


def reset(hub, name: str, headers: dict[str, str], volumes=("cache",)) -> requests.Response:
    return requests.delete(f"{hub.url}/hub/api/users/{name}/manage-volumes", json={"volumes": list(volumes)},
                           headers=headers, timeout=60)


@pytest.mark.parametrize("scopes", [["servers"], [f"servers!group={GROUP}"], ["servers", "read:servers", "users"]])
def test_servers_scope_cannot_reset_or_read(hub, admin, kube, member, scopes):
    headers = token(admin, scopes)
    r = reset(hub, "member1", headers)
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["status"] == 403 and "custom:ds-volumes:reset" in body["message"], body
    r = requests.get(f"{hub.url}/hub/api/users/member1/manage-volumes", headers=headers, timeout=30)
    assert r.status_code == 403 and "custom:ds-volumes:read" in r.json()["message"], r.text
    assert set(kube.user_claims("member1")) == {"home", "workspace", "cache"}
    # the same token still starts and stops servers: only data is out of its reach
    r = requests.post(f"{hub.url}/hub/api/users/member1/restart-server", headers=headers, timeout=60)
    assert r.status_code == 409 and r.json()["message"] == "Server is not running", r.text


def test_user_resets_their_own_volumes_and_keeps_the_configured_user_role(hub, admin, kube, member):
    r = member.api("GET", "/info")  # read:hub, from the admin's own `user` role entry
    assert r.status_code == 200, r.text
    r = member.api("GET", "/users/member1/manage-volumes")
    assert r.status_code == 200, r.text
    r = member.api("DELETE", "/users/member1/manage-volumes", json={"volumes": ["cache"]})
    assert r.status_code == 200 and r.json()["reset_volumes"] == ["cache"], r.text
    # a user's own API token inherits the same scopes
    r = reset(hub, "member1", {"Authorization": f"token {member.token()}"}, ["cache"])
    assert r.status_code == 404 and r.json()["failed_volumes"][0]["reason"] == "not found", r.text


def test_admin_resets_through_admin_users(hub, admin, kube, outsider):
    r = admin.api("DELETE", "/users/outsider1/manage-volumes", json={"volumes": ["workspace"]})
    assert r.status_code == 200, r.text
    r = reset(hub, "outsider1", token(admin, ["admin:users"]), ["home"])  # admin:users alone is enough
    assert r.status_code == 200, r.text
    assert set(kube.user_claims("outsider1")) == {"cache"}


def test_group_scoped_reset_role_works_for_members_only(hub, admin, kube, member, outsider):
    helper = new_user(hub.url, admin, HELPER)
    with_claims(hub, admin, kube, "member2")
    r = admin.api("POST", f"/groups/{GROUP}/users", json={"users": ["member2"]})
    assert r.status_code == 200, r.text
    before_outsider = set(kube.user_claims("outsider1"))

    r = helper.api("GET", "/users/member2/manage-volumes")  # reset implies read
    assert r.status_code == 200 and {v["volume"] for v in r.json()["volumes"]} == {"home", "workspace", "cache"}
    r = helper.api("DELETE", "/users/member2/manage-volumes", json={"volumes": ["home"]})
    assert r.status_code == 200, r.text
    assert set(kube.user_claims("member2")) == {"workspace", "cache"}

    # not a member: JupyterHub answers filtered scopes with 404, revealing nothing
    r = helper.api("DELETE", "/users/outsider1/manage-volumes", json={"volumes": sorted(before_outsider)})
    assert r.status_code == 404 and r.json()["status"] == 404, r.text
    assert set(kube.user_claims("outsider1")) == before_outsider
    # and the role gives no server control
    r = helper.api("POST", "/users/member2/restart-server")
    assert r.status_code in (403, 404), r.text


def test_single_user_server_token_cannot_reset(hub, admin, kube):
    user = new_user(hub.url, admin, "server1")
    user.start_server()  # creates the claims
    try:
        env = {e["name"]: e.get("value") for e in kube.user_pod("server1")["spec"]["containers"][0]["env"]}
        headers = {"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}
        r = reset(hub, "server1", headers, ["home"])
        assert r.status_code == 403, r.text
        r = requests.get(f"{hub.url}/hub/api/users/server1/manage-volumes", headers=headers, timeout=30)
        assert r.status_code == 403, r.text
    finally:
        user.stop_server()
    assert set(kube.user_claims("server1")) == {"home", "workspace", "cache"}
