"""The chart installed on kind with the built images: the same user journey as the e2e smoke and storage tests."""

from __future__ import annotations

import time

import requests

from tests.e2e.hubclient import new_user

from .conftest import NAMESPACE, items, kubectl


def test_hub_is_jupyterhub_5_5(hub_url):
    assert requests.get(f"{hub_url}/hub/api/", timeout=30).json()["version"] == "5.5.0"


def test_spawn_mounts_bound_claims_and_reset_recreates_them(hub_url, admin, username):
    user = new_user(hub_url, admin, username)
    user.start_server(timeout=600)  # the first start pulls nothing (images are loaded) but may be slow
    claims = user_claims(username)
    assert set(claims) == {"home", "workspace", "cache"}
    assert all(c["status"]["phase"] == "Bound" for c in claims.values())

    r = requests.get(f"{hub_url}/user/{username}/api/status",
                     headers={"Authorization": f"token {user.token()}"}, timeout=30)
    assert r.status_code == 200, r.text

    user.stop_server(timeout=300)
    deadline = time.monotonic() + 120
    while items("pods", f"hub.jupyter.org/username={username}") and time.monotonic() < deadline:
        time.sleep(1)
    r = user.api("DELETE", f"/users/{username}/manage-volumes", json={"volumes": ["cache"]})
    assert r.status_code == 200, r.text
    assert r.json()["reset_volumes"] == ["cache"]
    assert set(user_claims(username)) == {"home", "workspace"}

    # the next start re-creates exactly the reset claim (a new object, bound again), keeps the others
    user.start_server(timeout=600)
    again = user_claims(username)
    assert set(again) == {"home", "workspace", "cache"}
    assert all(c["status"]["phase"] == "Bound" for c in again.values())
    assert again["cache"]["metadata"]["uid"] != claims["cache"]["metadata"]["uid"]
    for volume in ("home", "workspace"):
        assert again[volume]["metadata"]["uid"] == claims[volume]["metadata"]["uid"]
    (pod,) = items("pods", f"hub.jupyter.org/username={username}")
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert {c["metadata"]["name"] for c in again.values()} <= mounted
    user.stop_server(timeout=300)


def user_claims(username: str) -> dict[str, dict]:
    return {c["metadata"]["labels"]["jupyterhub-ds/volume"]: c
            for c in items("pvc", f"hub.jupyter.org/username={username}")}


def test_hub_service_account_rbac(admin):
    sa = f"system:serviceaccount:{NAMESPACE}:hub"
    assert kubectl("auth", "can-i", "list", "nodes", "--as", sa, check=False).strip() == "yes"
    assert kubectl("auth", "can-i", "patch", "persistentvolumeclaims", "--as", sa, check=False).strip() == "yes"
    assert kubectl("auth", "can-i", "patch", "nodes", "--as", sa, check=False).strip() == "no"
