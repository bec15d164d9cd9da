"""The in-hub culler and session extensions on the installed chart: its hub, proxy and the control plane.

Timeout 20 s, a pass every 2 s (over values.example.yaml's 3600 s / 300 s): an idle server goes within 35 s, an
extended one stays. The max-age test upgrades the release last (the hub restarts with a 15 s max age).
"""

from __future__ import annotations

import time

import pytest
import requests

from ..hubclient import HubClient, admin_client, new_user

CULLER = {"enabled": True, "timeoutSeconds": 20, "everySeconds": 2, "maxExtensionHours": 2, "concurrency": 5}


@pytest.fixture(scope="module")
def hub(release):
    return release.install({"gpu": {"mode": 0}, "culler": CULLER})


def info(client: HubClient, owner: str) -> dict:
    r = client.api("GET", f"/users/{owner}/session-info")
    assert r.status_code == 200, r.text
    return r.json()


def extend(client: HubClient, owner: str, body) -> requests.Response:
    kwargs = {"json": body} if not isinstance(body, (str, bytes)) else {"data": body}
    return client.api("POST", f"/users/{owner}/extend-session", **kwargs)


def wait_events(kube, pod: str, reason: str, timeout: float = 15) -> list[dict]:
    """Events about a pod with a reason (they are recorded in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in kube.items("events") if e["involvedObject"].get("name") == pod and e["reason"] == reason]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def running(client: HubClient) -> bool:
    server = client.api("GET", f"/users/{client.username}").json().get("servers", {}).get("")
    return bool(server and server.get("ready"))


def test_idle_server_is_culled_and_an_extended_one_is_not(hub, admin, kube, username):
    idle = new_user(hub.url, admin, username)
    kept = new_user(hub.url, admin, username + "x")
    # one after the other, each timed from its own start: under load the second start may take longer than the
    # first server's idle timeout
    idle.start_server()
    idle_started = time.monotonic()
    idle_pod = kube.user_pod(idle.username)["metadata"]["name"]
    kept.start_server()
    kept_started = time.monotonic()
    kept_pod = kube.user_pod(kept.username)["metadata"]["name"]

    before = info(kept, kept.username)
    assert before["culler_enabled"] and before["server_active"] and before["timeout_seconds"] == 20
    assert 0 < before["time_remaining_seconds"] <= 20
    assert before["extensions_available_hours"] == 2
    r = extend(kept, kept.username, {"hours": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] and body["message"] == "Added 1 hour(s) to session" and body["truncated"] is False
    remaining = body["session_info"]["time_remaining_seconds"]
    assert before["time_remaining_seconds"] + 3600 - 5 <= remaining <= before["time_remaining_seconds"] + 3600 + 5
    # a second request for 2 h is truncated to the 1 h left under the ceiling, and says so
    r = extend(kept, kept.username, {"hours": 2})
    assert r.status_code == 200 and r.json()["truncated"] is True
    assert r.json()["message"] == "Added 1 hour(s) to session (requested 2 h, limited to available 1 h)"
    assert r.json()["session_info"]["extensions_available_hours"] == 0
    r = extend(kept, kept.username, {"hours": 1})
    assert r.status_code == 409 and r.json()["error"].startswith("Session already at maximum")

    while running(idle):
        assert time.monotonic() - idle_started < 35, "idle server not culled within 35 s"
        time.sleep(1)
    kube.wait_user_pod_gone(idle.username, timeout=60)
    hub.wait_log("Culler: stopping")
    deadline = time.monotonic() + 15  # the hub finishes the stop (route, database) once the kubelet removed the pod
    while (gone := info(idle, idle.username))["server_active"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert gone["server_active"] is False and gone["time_remaining_seconds"] is None
    culled = wait_events(kube, idle_pod, "Culled")
    assert len(culled) == 1 and "(idle:" in culled[0]["message"]
    assert culled[0]["source"]["component"] == "jupyterhub-ds"
    assert len(wait_events(kube, kept_pod, "SessionExtended")) == 2

    time.sleep(max(0.0, 60 - (time.monotonic() - kept_started)))  # three idle timeouts: it stays
    assert running(kept), "extended server was culled"
    assert kube.user_pod(kept.username) is not None

    # stop + start: a new session, no extension
    kept.stop_server()
    kept.start_server()
    fresh = info(kept, kept.username)
    assert fresh["extensions_used_hours"] == 0 and fresh["extended_until"] is None
    assert fresh["time_remaining_seconds"] <= 20
    kept.stop_server()


def test_restart_server_and_a_hub_restart_keep_the_extension(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    assert extend(user, username, {"hours": 2}).status_code == 200
    extended = info(user, username)
    assert extended["extensions_used_hours"] == 2

    old_pod = kube.user_pod(username)["metadata"]["uid"]
    r = user.api("POST", f"/users/{username}/restart-server")
    assert r.status_code in (200, 202), r.text
    user.wait_server(ready=True)
    new_pod = kube.user_pod(username)["metadata"]
    assert new_pod["uid"] != old_pod
    assert [e["involvedObject"].get("uid") for e in wait_events(kube, new_pod["name"], "ServerRestarted")] == [
        new_pod["uid"]]
    after = info(user, username)
    assert after["extended_until"] == extended["extended_until"] and after["extensions_used_hours"] == 2

    hub.stop()  # the hub Deployment scaled to 0; Z2JH's cleanup_servers is false: the server keeps running
    assert kube.user_pod(username)["metadata"]["uid"] == new_pod["uid"]
    hub.start()
    user = HubClient(hub.url, username).login()
    after = info(user, username)
    assert after["server_active"] and after["extended_until"] == extended["extended_until"]
    assert after["time_remaining_seconds"] > 3600

    time.sleep(25)  # past the idle timeout: the reloaded extension still holds
    assert running(user)
    user.stop_server()


def test_bad_requests_are_json_400_and_change_nothing(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()
    assert extend(user, username, {"hours": 1}).status_code == 200
    before = info(user, username)
    for body in ({"hours": -1}, {"hours": 0}, {"hours": 0.5}, {"hours": 10**9}, {"hours": "1"}, "not json",
                 [1]):
        r = extend(user, username, body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["success"] is False and r.json()["message"].startswith("Invalid request"), body
    after = info(user, username)
    assert after["extended_until"] == before["extended_until"]
    assert after["extensions_used_hours"] == before["extensions_used_hours"] == 1

    # another user: cannot see or extend it
    other = new_user(hub.url, admin, username + "o")
    for method, path, kwargs in (("POST", "extend-session", {"json": {"hours": 1}}), ("GET", "session-info", {})):
        r = other.api(method, f"/users/{username}/{path}", **kwargs)
        assert r.status_code in (403, 404), (path, r.status_code)
    # the server's own token (a notebook) cannot keep itself alive
    env = {e["name"]: e.get("value") for e in kube.user_pod(username)["spec"]["containers"][0]["env"]}
    r = requests.post(f"{hub.url}/hub/api/users/{username}/extend-session", json={"hours": 1}, timeout=30,
                      headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"})
    assert r.status_code == 403, r.text
    # an admin may extend anyone's
    r = extend(admin, username, {"hours": 1})
    assert r.status_code == 200 and r.json()["session_info"]["extensions_used_hours"] == 2
    assert info(user, username)["extended_until"] != before["extended_until"]
    user.stop_server()


def test_event_trail_for_admins(hub, admin, kube, username, service):
    user = new_user(hub.url, admin, username)
    user.start_server()
    assert extend(user, username, {"hours": 1}).status_code == 200
    r = user.api("POST", f"/users/{username}/restart-server")
    assert r.status_code in (200, 202), r.text
    user.wait_server(ready=True)
    user.stop_server()

    r = admin.api("GET", "/ds/events", params={"user": username})
    assert r.status_code == 200, r.text
    kinds = [e["kind"] for e in reversed(r.json()["events"])]
    assert kinds == ["spawn", "extension", "restart", "spawn", "stop"], kinds
    assert [e["kind"] for e in admin.api("GET", "/ds/events", params={"user": username, "kind": "extension"})
            .json()["events"]] == ["extension"]
    assert admin.api("GET", "/ds/events", params={"kind": "bogus"}).status_code == 400
    assert user.api("GET", "/ds/events").status_code == 403  # admins only
    assert user.api("DELETE", "/ds/events").status_code == 403
    r = service.api("DELETE", "/ds/events")
    assert r.status_code == 200 and r.json()["deleted"] >= 5
    assert admin.api("GET", "/ds/events", params={"user": username}).json()["events"] == []


def test_max_age_culls_whatever_the_activity_and_extension(release, kube, username):
    """Last in this module: it upgrades the release to a 15 s max age (the hub restarts; its database stays)."""
    hub = release.install({"gpu": {"mode": 0}, "culler": {**CULLER, "timeoutSeconds": 3600, "maxAgeSeconds": 15}})
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    user.start_server()
    started = time.monotonic()
    pod = kube.user_pod(username)["metadata"]["name"]
    assert extend(user, username, {"hours": 1}).status_code == 200
    while running(user):
        assert time.monotonic() - started < 40, "server not culled at its max age"
        time.sleep(1)
    kube.wait_user_pod_gone(username, timeout=60)
    hub.wait_log("older than maxAgeSeconds=15")
    (culled,) = wait_events(kube, pod, "Culled")
    assert "(max-age:" in culled["message"]
