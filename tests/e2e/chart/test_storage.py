"""Per-user claims on the installed chart's hub, under the RBAC the chart gives the hub ServiceAccount."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import requests

import hub_extensions

from ..hubclient import HubClient, new_user

STATIC = Path(hub_extensions.__file__).parent / "static"


def reset(client: HubClient, owner: str, volumes) -> tuple[int, dict]:
    r = client.api("DELETE", f"/users/{owner}/manage-volumes", json={"volumes": volumes})
    return r.status_code, r.json()


def test_start_creates_all_claims_and_mounts_them(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    claims = kube.user_claims(username)
    assert set(claims) == {"home", "workspace", "cache"}
    pod = kube.user_pod(username)
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    claim_of_volume = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                       if "persistentVolumeClaim" in v}
    expected = {"home": "/home", "workspace": "/home/lab/workspace", "cache": "/home/lab/.cache"}
    for volume, path in expected.items():
        pod_volume = next(n for n, c in claim_of_volume.items() if c == claims[volume]["metadata"]["name"])
        assert mounts[pod_volume] == path
    assert claim_of_volume["ds-shared"] == "jupyterhub-ds-shared"
    assert mounts["ds-shared"] == "/mnt/shared"
    for c in claims.values():
        assert c["metadata"]["annotations"]["hub.jupyter.org/username"] == username
        assert c["metadata"]["name"].startswith("claim-u")


def test_reset_lifecycle(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    before = kube.user_claims(username)

    # refused while running, nothing deleted
    status, body = reset(user, username, ["cache"])
    assert status == 409 and "stopped" in body["message"]
    assert kube.user_claims(username).keys() == before.keys()

    user.stop_server()
    kube.wait_user_pod_gone(username)
    listing = user.api("GET", f"/users/{username}/manage-volumes").json()
    assert listing["server"] == "stopped"
    assert {v["volume"]: v["status"] for v in listing["volumes"]} == {
        "home": "Bound", "workspace": "Bound", "cache": "Bound"}

    status, body = reset(user, username, ["cache", "workspace"])
    assert status == 200, body
    assert sorted(body["reset_volumes"]) == ["cache", "workspace"] and body["failed_volumes"] == []
    after = kube.user_claims(username)
    assert set(after) == {"home"}
    assert after["home"]["metadata"]["uid"] == before["home"]["metadata"]["uid"]
    shared = kube.json("pvc", "jupyterhub-ds-shared")
    assert not shared["metadata"].get("deletionTimestamp")

    # the next start recreates exactly the reset claims (new objects), keeps home
    user.start_server()
    again = kube.user_claims(username)
    assert set(again) == {"home", "workspace", "cache"}
    assert again["home"]["metadata"]["uid"] == before["home"]["metadata"]["uid"]
    assert again["cache"]["metadata"]["uid"] != before["cache"]["metadata"]["uid"]
    user.stop_server()


def test_restart_gives_new_pod_with_same_claims(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    r = user.api("POST", f"/users/{username}/restart-server")
    assert r.status_code == 409 and r.json()["message"] == "Server is not running"
    user.start_server()
    old_pod = kube.user_pod(username)
    old_claims = {k: c["metadata"]["uid"] for k, c in kube.user_claims(username).items()}
    r = user.api("POST", f"/users/{username}/restart-server")
    # Z2JH's slow_spawn_timeout 0: the answer comes while the new pod starts (of the new Spawner: JupyterHub drops
    # the stopped one, whose answer would say "running")
    assert r.status_code == 202 and r.json()["server"] == "pending", r.text
    user.wait_server(ready=True)
    new_pod = kube.user_pod(username)
    assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
    assert {k: c["metadata"]["uid"] for k, c in kube.user_claims(username).items()} == old_claims
    # the start that finished after the answer still knows it was Restart Server's
    deadline = time.monotonic() + 30
    while not [e for e in kube.items("events") if e["reason"] == "ServerRestarted"
               and e["involvedObject"].get("uid") == new_pod["metadata"]["uid"]]:
        assert time.monotonic() < deadline, "no ServerRestarted event on the new pod"
        time.sleep(0.5)
    user.stop_server()


def test_errors_are_json_and_delete_nothing(hub, admin, kube, username, service):
    user = new_user(hub.url, admin, username)
    other = new_user(hub.url, admin, f"{username}x")
    user.start_server()
    # the single-user server's own token (in its pod) holds no custom:ds-volumes:reset: it cannot reset
    env = {e["name"]: e.get("value") for e in kube.user_pod(username)["spec"]["containers"][0]["env"]}
    r = requests.delete(f"{hub.url}/hub/api/users/{username}/manage-volumes", json={"volumes": ["home"]},
                        headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}, timeout=30)
    assert r.status_code == 403, r.text
    user.stop_server()
    other.start_server()
    other.stop_server()
    kube.wait_user_pod_gone(username)
    before = set(kube.user_claims(username))

    cases = [
        (user, username, {"volumes": ["bogus"]}, 400, "Invalid volume types: bogus"),
        (user, username, {"volumes": ["shared"]}, 400, "Invalid volume types: shared"),
        (user, username, {"volumes": []}, 400, "No volumes specified"),
        (user, username, {"volumes": "home"}, 400, "No volumes specified"),
        (user, username, {"nothing": 1}, 400, "Expected a JSON object"),
        # JupyterHub answers another user's resources with 404, not revealing whether they exist
        (user, f"{username}x", {"volumes": ["home"]}, 404, "No access to resources"),
        (admin, "nosuchuser", {"volumes": ["home"]}, 404, "No such user"),
    ]
    for client, owner, body, code, text in cases:
        r = client.api("DELETE", f"/users/{owner}/manage-volumes", json=body)
        assert r.status_code == code, (owner, body, r.text)
        payload = r.json()
        assert payload["status"] == code and text in payload["message"], payload

    r = user.api("DELETE", f"/users/{username}/manage-volumes", data="{not json")
    assert r.status_code == 400 and r.json()["status"] == 400

    # a cookie-authenticated write without XSRF is not authenticated
    r = user.session.delete(f"{hub.url}/hub/api/users/{username}/manage-volumes", json={"volumes": ["home"]},
                            timeout=30)
    assert r.status_code == 403, r.text

    assert set(kube.user_claims(username)) == before
    assert set(kube.user_claims(f"{username}x")) == before


def test_admin_resets_another_users_volume(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    claim = kube.user_claims(username)["cache"]["metadata"]["name"]
    user.stop_server()
    kube.wait_user_pod_gone(username)
    status, body = reset(admin, username, ["cache"])
    assert status == 200, body
    assert set(kube.user_claims(username)) == {"home", "workspace"}

    # the reset is in the event trail and, on the deleted claim, a VolumeReset Kubernetes Event
    trail = admin.api("GET", "/ds/events", params={"user": username, "kind": "volume-reset"}).json()["events"]
    assert [(e["volumes"], e["by"]) for e in trail] == [(["cache"], "admin")]
    deadline = time.monotonic() + 15
    while not (events := [e for e in kube.items("events") if e["reason"] == "VolumeReset"
                          and e["involvedObject"]["name"] == claim]):
        assert time.monotonic() < deadline, f"no VolumeReset event on {claim}"
        time.sleep(0.5)
    assert events[0]["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert "reset by admin" in events[0]["message"]


def test_reset_of_missing_claim_reports_not_found(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    status, body = reset(user, username, ["home"])  # never started: no claims yet
    assert status == 404
    assert body["failed_volumes"] == [{"volume": "home", "reason": "not found"}]


def test_user_deletion_retains_claims_and_name_reuse_gets_fresh_storage(hub, admin, kube, username, service):
    user = new_user(hub.url, admin, username)
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(username)
    old = kube.user_claims(username)
    r = service.api("DELETE", f"/users/{username}")
    assert r.status_code == 204, r.text
    retained = kube.user_claims(username)
    assert {c["metadata"]["uid"] for c in retained.values()} == {c["metadata"]["uid"] for c in old.values()}
    assert all(c["metadata"]["labels"]["jupyterhub-ds/orphaned"] == "true" for c in retained.values())

    again = new_user(hub.url, admin, username)
    again.start_server()
    pod = kube.user_pod(username)
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
               if "persistentVolumeClaim" in v}
    assert not mounted & {c["metadata"]["name"] for c in old.values()}
    again.stop_server()


def test_rename_keeps_data_reachable(hub, admin, kube, username, service):
    user = new_user(hub.url, admin, username)
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(username)
    old = {c["metadata"]["name"] for c in kube.user_claims(username).values()}
    renamed = f"{username}r"
    r = service.api("PATCH", f"/users/{username}", json={"name": renamed})
    assert r.status_code == 200, r.text
    r = service.api("POST", f"/users/{renamed}/server")
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 120
    while not kube.user_pod(renamed) and time.monotonic() < deadline:
        time.sleep(0.5)
    pod = kube.user_pod(renamed)
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
               if "persistentVolumeClaim" in v}
    assert old <= mounted
    # the claims' admin-facing labels follow the new name
    assert {c["metadata"]["name"] for c in kube.user_claims(renamed).values()} == old
    service.api("DELETE", f"/users/{renamed}/server")



def test_reset_waits_for_the_pod_to_be_gone(hub, admin, kube, username):
    """A stopped server whose pod is still terminating (here: held by a finalizer) blocks the reset."""
    user = new_user(hub.url, admin, username)
    user.start_server()
    pod_name = kube.user_pod(username)["metadata"]["name"]
    user.stop_server()
    kube.wait_user_pod_gone(username)
    kube("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: Pod
metadata:
  name: {pod_name}
  finalizers: [example.com/hold]
spec:
  containers: [{{name: notebook, image: busybox}}]
""")
    kube("delete", "pod", pod_name, "--wait=false")
    try:
        status, body = reset(user, username, ["cache"])
        assert status == 409 and "still terminating" in body["message"], body
        assert set(kube.user_claims(username)) == {"home", "workspace", "cache"}
    finally:
        kube("patch", "pod", pod_name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    deadline = time.monotonic() + 30
    while kube("get", "pod", pod_name, "--ignore-not-found", "-o", "name").strip() and time.monotonic() < deadline:
        time.sleep(0.3)
    status, body = reset(user, username, ["cache"])
    assert status == 200, body


def test_ui_assets_are_versioned_by_their_content(hub, admin):
    """A changed storage.js gets a new URL: the ?v= of a ten-year cache is the file's hash, not our version."""
    html = admin.get("/hub/home").text
    for name in ("storage.js", "storage.css"):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]
        url = f"/hub/ds-static/{name}?v={digest}"
        assert url in html, name
        r = admin.get(url)
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
        assert "max-age=315360000" in r.headers["Cache-Control"]
