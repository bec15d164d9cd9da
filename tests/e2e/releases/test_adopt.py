"""Data survives a lost hub database: the claims record user name and owner key, and an admin re-attaches
them explicitly (``adoptable-volumes`` / ``adopt-volumes``); a name alone never gets them.

The chart is installed in a namespace of its own; the hub database is lost by stopping its hub Deployment and
deleting jupyterhub.sqlite from the hub-db-dir claim's directory before it starts again.

"The user's data" is a marker file written into the directory of the claim's PersistentVolume (the local
cluster's hostPath provisioner keeps it on this machine, see ci/dev/cluster/storageclass.yaml): it is there as long
as that PV, and so that claim, is. (tests/e2e/test_installed.py writes through a running server instead.)
"""

from __future__ import annotations

import uuid

import pytest

from ..hubclient import HubClient, admin_client, new_user

SETTINGS = {"gpu": {"mode": 0}, "storage": {"resetTimeoutSeconds": 60}}


@pytest.fixture(scope="module")
def hub(release):
    return release.install(SETTINGS)


def mounted_claims(kube, username: str) -> set[str]:
    pod = kube.user_pod(username)
    assert pod is not None, f"no pod for {username}"
    return {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}


def claims_by_owner(kube, username: str) -> dict[str, dict[str, dict]]:
    """The claims labelled with the user's name: {owner key: {volume: claim}} (old and new keys side by side)."""
    result: dict[str, dict[str, dict]] = {}
    for c in kube.items("pvc", f"hub.jupyter.org/username={username}"):
        labels = c["metadata"]["labels"]
        result.setdefault(labels["jupyterhub-ds/owner"], {})[labels["jupyterhub-ds/volume"]] = c
    return result


def owner_of(claims: dict[str, dict]) -> str:
    (owner,) = {c["metadata"]["labels"]["jupyterhub-ds/owner"] for c in claims.values()}
    return owner


def stop(user: HubClient, kube) -> None:
    user.stop_server()
    kube.wait_user_pod_gone(user.username)


def adopt(admin: HubClient, username: str, **body):
    r = admin.api("POST", f"/users/{username}/adopt-volumes", json=body)
    return r.status_code, r.json()


def test_adopt_after_the_hub_database_is_lost(hub, kube, username):
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    user.start_server()
    stop(user, kube)
    old = kube.user_claims(username)
    old_key, old_names = owner_of(old), {c["metadata"]["name"] for c in old.values()}
    for c in old.values():  # what an admin finds the claims by, without the hub database
        assert c["metadata"]["annotations"]["hub.jupyter.org/username"] == username
        assert c["metadata"]["labels"]["hub.jupyter.org/username"] == username
    marker = f"data of {username} {uuid.uuid4().hex}"
    (kube.pv_dir(old["home"]) / "marker.txt").write_text(marker)

    # the hub database is lost: same cluster, same release, empty database (the hub-db-dir claim keeps its
    # directory, the SQLite file in it is gone)
    db_file = hub.db_file
    hub.stop()
    db_file.unlink()
    hub.start()
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    user.start_server()
    assert not mounted_claims(kube, username) & old_names  # fresh claims, never matched by name
    by_owner = claims_by_owner(kube, username)
    assert set(by_owner[old_key]) == set(old)  # the old claims are untouched
    (fresh_key,) = set(by_owner) - {old_key}
    fresh = by_owner[fresh_key]
    assert set(fresh) == {"home", "workspace", "cache"} and fresh_key != old_key
    assert not (kube.pv_dir(fresh["home"]) / "marker.txt").exists()

    # refused while the server runs; users cannot adopt
    status, body = adopt(admin, username, owner=old_key, current="orphan")
    assert status == 409 and "stopped" in body["message"], body
    stop(user, kube)
    status, body = adopt(user, username, owner=old_key)
    assert status == 403, body

    r = admin.api("GET", f"/users/{username}/adoptable-volumes")
    assert r.status_code == 200, r.text
    listing = r.json()
    assert listing["current_owner"] == fresh_key
    (group,) = listing["adoptable"]
    assert group["owner"] == old_key and group["orphaned"] is False
    assert {v["volume"]: v["claim"] for v in group["volumes"]} == {v: c["metadata"]["name"] for v, c in old.items()}

    status, body = adopt(admin, username, owner="u99-00000000")
    assert status == 404 and "No volumes with owner key" in body["message"], body
    status, body = adopt(admin, username, owner=old_key)  # the fresh claims exist: say what to do with them
    assert status == 409 and '"current": "orphan"' in body["message"], body
    status, body = adopt(admin, username, owner=old_key, current="delete")
    assert status == 400, body

    # the user's variables, set under the fresh key, follow them to the adopted one
    env = {"env_vars": [{"name": "KEPT", "value": "across adoption"}]}
    assert user.api("PUT", f"/users/{username}/env-vars", json=env).status_code == 200
    status, body = adopt(admin, username, owner=old_key, current="orphan")
    assert status == 200, body
    assert body["owner"] == old_key and body["previous_owner"] == fresh_key and body["adopted_by"] == "admin"
    assert body["variables_moved"] is True
    assert kube("get", "secret", f"jupyterhub-ds-env-{fresh_key}", "--ignore-not-found").strip() == ""
    assert user.api("GET", f"/users/{username}/env-vars").json()["env_vars"][0]["value"] == "across adoption"
    assert set(body["adopted_claims"]) == old_names
    assert "Volume adoption: admin made owner key " + old_key in hub.log_text()

    user.start_server()
    assert old_names <= mounted_claims(kube, username)
    assert set(claims_by_owner(kube, username)) == {old_key, fresh_key}  # nothing deleted
    adopted = kube.json("pvc", old["home"]["metadata"]["name"])
    assert adopted["metadata"]["uid"] == old["home"]["metadata"]["uid"]
    assert adopted["metadata"]["annotations"]["jupyterhub-ds/adopted-by"] == "admin"
    assert (kube.pv_dir(adopted) / "marker.txt").read_text() == marker
    # nothing was deleted: the fresh claims are kept, labelled orphaned, and can be adopted back
    for c in fresh.values():
        kept = kube.json("pvc", c["metadata"]["name"])
        assert kept["metadata"]["labels"]["jupyterhub-ds/orphaned"] == "true"
        assert not kept["metadata"].get("deletionTimestamp")
    stop(user, kube)
    (group,) = admin.api("GET", f"/users/{username}/adoptable-volumes").json()["adoptable"]
    assert group["owner"] == fresh_key and group["orphaned"] is True


def test_a_new_user_with_the_same_name_does_not_get_them_without_adoption(hub, kube, username):
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    user.start_server()
    stop(user, kube)
    (old_key,) = claims_by_owner(kube, username)
    old_names = {c["metadata"]["name"] for c in claims_by_owner(kube, username)[old_key].values()}
    r = admin.api("DELETE", f"/users/{username}")
    assert r.status_code == 204, r.text

    again = new_user(hub.url, admin, username)
    again.start_server()
    assert not mounted_claims(kube, username) & old_names
    stop(again, kube)
    (group,) = admin.api("GET", f"/users/{username}/adoptable-volumes").json()["adoptable"]
    assert group["owner"] == old_key and group["orphaned"] is True  # there for an admin, not for the name

    # another account's current key is never handed over
    assert admin.api("GET", "/users/admin/manage-volumes").status_code == 200  # the admin now has a key
    admin_key = admin.api("GET", "/users/admin/adoptable-volumes").json()["current_owner"]
    status, body = adopt(admin, username, owner=admin_key)
    assert status == 409 and "another account" in body["message"], body

