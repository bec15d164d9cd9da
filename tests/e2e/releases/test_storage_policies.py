"""Storage settings other than the shared release's (tests/e2e/chart/ keeps the shipped ``onUserDelete: retain``)."""

from __future__ import annotations

import time

from ..hubclient import admin_client, new_user


def test_delete_policy_deletes_claims(release, kube, username):
    hub = release.install({"storage": {"onUserDelete": "delete"}})
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(username)
    assert len(kube.user_claims(username)) == 3
    r = admin.api("DELETE", f"/users/{username}")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 60
    while kube.user_claims(username) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert kube.user_claims(username) == {}
    assert not kube.json("pvc", "jupyterhub-ds-shared")["metadata"].get("deletionTimestamp")
