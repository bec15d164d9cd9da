"""Unit tests of hub_extensions.notifications: validation, target selection, bounded delivery."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from hub_extensions import notifications as n


def test_valid_body_defaults_and_strip():
    b = n.check_broadcast({"message": "  hello  "})
    assert (b.message, b.variant, b.auto_close, b.users, b.group) == ("hello", "info", 5000, None, None)
    assert b.payload()["type"] == "info" and b.payload()["autoClose"] == 5000


@pytest.mark.parametrize("body, fragment", [
    ([], "JSON object"),
    ({}, "must be a string"),
    ({"message": "   "}, "cannot be empty"),
    ({"message": "x" * 141}, "cannot exceed 140"),
    ({"message": "hi", "variant": "loud"}, "Variant must be one of"),
    ({"message": "hi", "autoClose": True}, "autoClose"),
    ({"message": "hi", "autoClose": 0}, "autoClose"),
    ({"message": "hi", "autoClose": "5000"}, "autoClose"),
    ({"message": "hi", "recipients": "alice"}, "recipients"),
    ({"message": "hi", "recipients": ["alice", 3]}, "recipients"),
    ({"message": "hi", "recipients": {"group": ""}}, "recipients"),
    ({"message": "hi", "recipients": {"group": "g", "x": 1}}, "recipients"),
])
def test_bad_bodies_are_400_with_a_reason(body, fragment):
    with pytest.raises(n.NotificationError) as e:
        n.check_broadcast(body)
    assert e.value.status == 400 and fragment in e.value.message


def test_limit_counts_code_points_not_utf16_units():
    assert n.check_broadcast({"message": "😀" * 140}).message == "😀" * 140  # 280 UTF-16 units
    with pytest.raises(n.NotificationError):
        n.check_broadcast({"message": "😀" * 141})


def test_auto_close_false_and_recipients_forms():
    b = n.check_broadcast({"message": "m", "autoClose": False, "recipients": ["a", "b", "a"]})
    assert b.auto_close is False and b.users == ("a", "b")
    assert n.check_broadcast({"message": "m", "recipients": []}).users is None
    assert n.check_broadcast({"message": "m", "recipients": {"group": "g"}}).group == "g"


def spawner(ready=True, host="http://10.0.0.1:8888", base_url="/user/x/"):
    server = SimpleNamespace(host=host, base_url=base_url) if ready else None
    return SimpleNamespace(ready=ready, server=server, orm_spawner=None)


def user(name, groups=(), **spawners):
    return SimpleNamespace(name=name, spawners=spawners, groups=[SimpleNamespace(name=g) for g in groups],
                           server_url=lambda s, name=name: f"/user/{name}/{s}")


USERS = [
    user("carol", ["course"], **{"": spawner(base_url="/user/carol/")}),
    user("alice", [], **{"": spawner(host="http://10.0.0.2:8888", base_url="/user/alice/"),
                         "gpu": spawner(host="http://10.0.0.3:8888", base_url="/user/alice/gpu/")}),
    user("bob", ["course"], **{"": spawner(ready=False)}),
]


def test_targets_every_ready_server_including_named():
    t = n.select_targets(USERS, n.check_broadcast({"message": "m"}))
    assert [(x.username, x.server_name) for x in t] == [("alice", ""), ("alice", "gpu"), ("carol", "")]
    assert t[1].url == "http://10.0.0.3:8888/user/alice/gpu/jupyterlab-notifications-extension/ingest"


def test_targets_recipients_group_and_scope_filter():
    t = n.select_targets(USERS, n.check_broadcast({"message": "m", "recipients": ["carol", "bob", "nobody"]}))
    assert [x.username for x in t] == ["carol"]  # bob is stopped, nobody unknown: left out
    t = n.select_targets(USERS, n.check_broadcast({"message": "m", "recipients": {"group": "course"}}))
    assert [x.username for x in t] == ["carol"]
    t = n.select_targets(USERS, n.check_broadcast({"message": "m"}), allowed=lambda u: u.name == "alice")
    assert {x.username for x in t} == {"alice"}


def test_deliver_bounded_isolated_and_one_token():
    in_flight, peak, seen = 0, 0, []

    async def fetch(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(request.headers["Authorization"])
        await asyncio.sleep(0.01)
        in_flight -= 1
        if "down" in request.url:
            raise HTTPClientError(599, "Timeout while connecting")
        if "old" in request.url:
            raise HTTPClientError(404)
        if "boom" in request.url:
            raise RuntimeError("boom")
        return SimpleNamespace(code=200)

    targets = [n.Target(f"u{i}", "", f"http://h{i}/ingest") for i in range(50)]
    targets += [n.Target("down", "", "http://down/ingest"), n.Target("old", "", "http://old/ingest"),
                n.Target("boom", "", "http://boom/ingest")]
    result = asyncio.run(n.deliver(targets, n.check_broadcast({"message": "m"}), "T", fetch=fetch, concurrency=20))
    assert peak == 20 and set(seen) == {"token T"}
    assert (result["total"], result["successful"], result["failed"]) == (53, 50, 3)
    errors = {d["username"]: d.get("error") for d in result["details"]}
    assert errors["down"].startswith("Server not responding")
    assert errors["old"].startswith("Notification extension not installed")
    assert "boom" in errors["boom"] and errors["u0"] is None


def test_deliver_nothing_says_no_active_servers():
    result = asyncio.run(n.deliver([], n.check_broadcast({"message": "m"}), "T", fetch=None))
    assert result == {"total": 0, "successful": 0, "failed": 0, "details": [], "message": "No active servers found"}


def test_register_adds_one_service_with_access_servers_only():
    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    first = n.register(c)
    second = n.register(c)  # a fresh token each start, never a second service
    assert first != second and len(first) == 64
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["other", n.SERVICE_NAME] and c.JupyterHub.services[-1]["api_token"] == second
    role = [r for r in c.JupyterHub.load_roles if r["name"] == n.ROLE_NAME]
    assert role == [{"name": n.ROLE_NAME, "description": role[0]["description"], "scopes": ["access:servers"],
                     "services": [n.SERVICE_NAME]}]
    assert c.JupyterHub.tornado_settings.get_value({})[n.TOKEN_SETTING] == second
