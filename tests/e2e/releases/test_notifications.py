"""Notification broadcast on the installed chart's hub into real single-user servers (jupyterhub-singleuser with
the notifications extension, in the single-user image on the real node), in a release of its own: named servers on,
a role for the TA through ``hub.loadRoles``, and the hub's SQLite database read for token counts.

Each lab's pending notifications are read back through the extension's own GET endpoint with the user's
token (through the proxy, as the lab does); that GET drains the queue, so each test starts from empty.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import requests

from ..hubclient import HubClient, new_user

GROUP = "nf-team"
TA = "tina"  # holds custom:ds-notifications:send for GROUP only, through Z2JH's hub.loadRoles
LOAD_ROLES = {"ta-notifier": {"scopes": [f"custom:ds-notifications:send!group={GROUP}"], "users": [TA]}}


@pytest.fixture(scope="module")
def hub(release):
    return release.install({"gpu": {"mode": 0}}, hub_config={"JupyterHub": {"allow_named_servers": True}},
                           values={"hub": {"loadRoles": LOAD_ROLES}})


@pytest.fixture(scope="module")
def users(hub, admin) -> dict[str, HubClient]:
    """alice (in GROUP) and bob running, carol stopped after one start."""
    clients = {name: new_user(hub.url, admin, name) for name in ("alice", "bob", "carol")}
    for c in clients.values():
        c.start_server()
    clients["carol"].stop_server()
    assert admin.api("POST", f"/groups/{GROUP}").status_code in (201, 409)
    assert admin.api("POST", f"/groups/{GROUP}/users", json={"users": ["alice"]}).status_code == 200
    return clients


@pytest.fixture(scope="module")
def tokens(users) -> dict[str, str]:
    return {name: c.token() for name, c in users.items()}


def pending(hub, tokens, name: str) -> list[dict]:
    """The lab's pending notifications (and drains them), read with the user's own token."""
    r = requests.get(f"{hub.url}/user/{name}/jupyterlab-notifications-extension/notifications",
                     headers={"Authorization": f"token {tokens[name]}"}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()["notifications"]


@pytest.fixture
def drained(hub, tokens):
    for name in ("alice", "bob"):
        pending(hub, tokens, name)


def broadcast(admin: HubClient, body: dict) -> requests.Response:
    return admin.api("POST", "/notifications/broadcast", json=body)


def token_rows(hub) -> int:
    with sqlite3.connect(hub.db_file) as db:
        return db.execute("select count(*) from api_tokens").fetchone()[0]


def test_active_servers_lists_running_servers_only(admin, users):
    r = admin.api("GET", "/notifications/active-servers")
    assert r.status_code == 200, r.text
    servers = r.json()["servers"]
    assert {(s["username"], s["server_name"]) for s in servers} == {("alice", ""), ("bob", "")}
    assert next(s for s in servers if s["username"] == "alice")["groups"] == [GROUP]


def test_recipient_receives_the_message_and_a_non_recipient_nothing(hub, admin, tokens, drained):
    r = broadcast(admin, {"message": "  Maintenance at 18:00  ", "variant": "warning", "autoClose": 8000,
                          "recipients": ["alice", "carol", "nobody"]})
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["total"], result["successful"], result["failed"]) == (1, 1, 0), result
    assert result["details"] == [{"username": "alice", "server_name": "", "status": "success"}]
    (got,) = pending(hub, tokens, "alice")
    assert (got["message"], got["type"], got["autoClose"]) == ("Maintenance at 18:00", "warning", 8000)
    assert got["actions"][0]["label"] == "Dismiss"
    assert pending(hub, tokens, "bob") == []


def test_broadcast_to_all_skips_the_stopped_server(hub, admin, tokens, drained):
    r = broadcast(admin, {"message": "hello all", "autoClose": False})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["total"] == result["successful"] == 2, result
    assert {d["username"] for d in result["details"]} == {"alice", "bob"}  # carol's server is stopped
    assert [n["autoClose"] for n in pending(hub, tokens, "alice")] == [False]
    assert [n["message"] for n in pending(hub, tokens, "bob")] == ["hello all"]


def test_group_broadcast_reaches_only_the_group(hub, admin, tokens, drained):
    r = broadcast(admin, {"message": "team only", "recipients": {"group": GROUP}})
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    assert [n["message"] for n in pending(hub, tokens, "alice")] == ["team only"]
    assert pending(hub, tokens, "bob") == []
    r = broadcast(admin, {"message": "x", "recipients": {"group": "no-such-group"}})
    assert r.status_code == 400 and "No such group" in r.json()["message"], r.text


def test_no_active_servers_answer(admin, users):
    r = broadcast(admin, {"message": "anyone?", "recipients": ["carol"]})
    assert r.status_code == 200
    assert r.json() == {"total": 0, "successful": 0, "failed": 0, "details": [], "message": "No active servers found"}


@pytest.mark.parametrize("body, fragment", [
    ({"message": "x" * 141}, "cannot exceed 140"),
    ({"message": "   "}, "cannot be empty"),
    ({"message": "hi", "autoClose": True}, "autoClose"),
    ({"message": "hi", "variant": "loud"}, "Variant"),
])
def test_bad_bodies_are_json_400(hub, admin, tokens, drained, body, fragment):
    r = broadcast(admin, body)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json"), r.text
    assert r.json()["status"] == 400 and fragment in r.json()["message"]
    assert pending(hub, tokens, "alice") == [] and pending(hub, tokens, "bob") == []


def test_non_admin_is_refused(users):
    bob = users["bob"]
    r = bob.api("POST", "/notifications/broadcast", json={"message": "spam"})
    assert r.status_code == 403 and "custom:ds-notifications:send" in r.json()["message"], r.text
    assert bob.api("GET", "/notifications/active-servers").status_code == 403


def test_a_group_filtered_scope_reaches_only_the_group(hub, admin, users, tokens, drained):
    ta = new_user(hub.url, admin, TA)
    servers = ta.api("GET", "/notifications/active-servers").json()["servers"]
    assert [s["username"] for s in servers] == ["alice"]
    r = ta.api("POST", "/notifications/broadcast", json={"message": "from the TA"})
    assert r.status_code == 200 and r.json()["total"] == 1 and r.json()["details"][0]["username"] == "alice", r.text
    assert [n["message"] for n in pending(hub, tokens, "alice")] == ["from the TA"]
    assert pending(hub, tokens, "bob") == []
    assert 'id="ds-nav-notifications"' in ta.get("/hub/home").text  # the navbar link for scope holders


def test_a_named_server_receives_too(hub, admin, users, tokens, drained):
    alice = users["alice"]
    r = alice.api("POST", "/users/alice/servers/second")
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 120
    while not (alice.api("GET", "/users/alice").json()["servers"].get("second") or {}).get("ready"):
        assert time.monotonic() < deadline, "named server not ready"
        time.sleep(0.5)
    try:
        r = broadcast(admin, {"message": "both labs", "recipients": ["alice"]})
        assert r.status_code == 200, r.text
        assert {d["server_name"] for d in r.json()["details"]} == {"", "second"} and r.json()["successful"] == 2
        got = requests.get(f"{hub.url}/user/alice/second/jupyterlab-notifications-extension/notifications",
                           headers={"Authorization": f"token {tokens['alice']}"}, timeout=30).json()
        assert [n["message"] for n in got["notifications"]] == ["both labs"]
        assert [n["message"] for n in pending(hub, tokens, "alice")] == ["both labs"]
    finally:
        alice.api("DELETE", "/users/alice/servers/second")
        deadline = time.monotonic() + 120
        while "second" in alice.api("GET", "/users/alice").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.5)


def notifier_tokens(hub) -> int:
    with sqlite3.connect(hub.db_file) as db:
        return db.execute("select count(*) from api_tokens t join services s on t.service_id = s.id "
                          "where s.name = 'jupyterhub-ds-notifier'").fetchone()[0]


def test_broadcasts_leave_no_tokens(hub, admin, tokens, drained):
    """Each delivery has a token of its own, deleted when the broadcast ends: none at rest, none after."""
    before = token_rows(hub)
    assert notifier_tokens(hub) == 0
    for i in range(3):
        assert broadcast(admin, {"message": f"n{i}"}).json()["successful"] == 2
    assert token_rows(hub) == before and notifier_tokens(hub) == 0
    assert len(pending(hub, tokens, "alice")) == 3


def test_the_notifier_service_has_access_servers_and_no_token(hub, admin):
    r = admin.api("GET", "/services/jupyterhub-ds-notifier")
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["jupyterhub-ds-notifier"]
    with sqlite3.connect(hub.db_file) as db:
        (scopes,) = db.execute("select scopes from roles where name = 'jupyterhub-ds-notifier'").fetchone()
    assert json.loads(scopes) == ["access:servers", "read:services:name!service=jupyterhub-ds-notifier"]
    assert notifier_tokens(hub) == 0


def test_a_restart_purges_tokens_left_behind(hub, admin, tokens):
    """Runs last: restarts the hub. A token left by an earlier version (its standing config token) or by a hub
    that died mid-broadcast is deleted at start; broadcasts still reach the servers."""
    with sqlite3.connect(hub.db_file) as db:
        (service_id,) = db.execute("select id from services where name = 'jupyterhub-ds-notifier'").fetchone()
        db.execute("insert into api_tokens (service_id, hashed, prefix, client_id, scopes, note, created) values "
                   "(?, 'sha512:1:00:left-behind', 'left', 'jupyterhub', '[\"access:servers\"]', 'from config', "
                   "'2020-01-01 00:00:00')", (service_id,))
    assert notifier_tokens(hub) == 1
    hub.stop()
    hub.start()
    deadline = time.monotonic() + 30
    while notifier_tokens(hub) != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert notifier_tokens(hub) == 0
    pending(hub, tokens, "alice")
    r = admin.api("POST", "/notifications/broadcast", json={"message": "after restart", "recipients": ["alice"]})
    assert r.status_code == 200 and r.json()["successful"] == 1, r.text
    assert [n["message"] for n in pending(hub, tokens, "alice")] == ["after restart"]
    assert notifier_tokens(hub) == 0
