"""Unit tests of hub_extensions.notifications: validation, target selection, per-delivery tokens in a real
JupyterHub database (checked with JupyterHub's own scope resolution and jupyterhub-singleuser's check), and bounded
delivery with Tornado's client against a local server that misbehaves."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import ClassVar

import pytest
from jupyterhub import orm
from jupyterhub import scopes as jh_scopes
from jupyterhub.services.auth import check_scopes
from sqlalchemy import event
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
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


@pytest.fixture
def hub_db():
    """A real JupyterHub database with the notifier service and its role (as ``register`` has the hub load them),
    another service, and the hub's own OAuth client."""
    db = orm.new_session_factory("sqlite://")()
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    notifier, other = orm.Service(name=n.SERVICE_NAME), orm.Service(name="other")
    role = orm.Role(name=n.ROLE_NAME, scopes=n.ROLE_SCOPES)
    notifier.roles.append(role)
    for name in ("alice", "bob"):
        db.add(orm.User(name=name))
    db.add_all([notifier, other, role])
    db.commit()
    return db


def commits(db) -> list[int]:
    """A counter of the session's commits (appended to on each)."""
    seen: list[int] = []
    event.listen(db, "after_commit", lambda session: seen.append(1))
    return seen


def token_rows(db, service: str = n.SERVICE_NAME) -> int:
    return db.query(orm.APIToken).join(orm.Service).filter(orm.Service.name == service).count()


TARGETS = [n.Target("alice", "", "http://a/ingest"), n.Target("alice", "second", "http://a2/ingest"),
           n.Target("bob", "", "http://b/ingest")]
ALICE, ALICE_SECOND, BOB = ("access:servers!server=alice/", "access:servers!server=alice/second",
                            "access:servers!server=bob/")


def test_a_delivery_token_opens_exactly_its_recipients_server(hub_db):
    """Each token, resolved by JupyterHub as the hub does for ``/hub/api/user``, passes jupyterhub-singleuser's
    check (its ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``: ``access:servers!server=<user>/<name>``) on its own server
    only: not another user's, not the same user's other (named) server, and it reads nothing on the hub."""
    seen = commits(hub_db)
    minted = n.mint_tokens(hub_db, TARGETS)
    assert len(seen) == 1 and len(set(minted.tokens)) == 3 and token_rows(hub_db) == 3
    servers = {ALICE: ALICE, ALICE_SECOND: ALICE_SECOND, BOB: BOB}
    for target, token in zip(TARGETS, minted.tokens, strict=True):
        row = orm.APIToken.find(hub_db, token)  # JupyterHub finds it by value: our hashing is its own
        assert row is not None and row.service.name == n.SERVICE_NAME and row.user is None
        assert row.scopes == [n.delivery_scope(target)] and row.note == n.TOKEN_NOTE
        assert timedelta(seconds=55) < row.expires_at - orm.APIToken.now() <= timedelta(seconds=60)
        resolved = jh_scopes.get_scopes_for(row)
        own = n.delivery_scope(target)
        for server in servers:
            assert bool(check_scopes({server}, resolved)) is (server == own), (own, server, resolved)
        assert not any(s.split("!")[0] in {"list:users", "read:users", "admin:users", "admin:servers", "tokens",
                                           "read:tokens", "access:services", "servers"} for s in resolved)
        assert "access:servers" not in resolved  # never unfiltered


def test_later_waves_tokens_live_until_their_delivery_can_start(hub_db):
    """20 deliveries at a time, each at most 6 s: the 41st token can be sent 12 s after minting at the latest."""
    now = orm.APIToken.now()
    minted = n.mint_tokens(hub_db, [n.Target(f"u{i}", "", "http://x") for i in range(41)], now=now)
    rows = {r.hashed: r.expires_at for r in hub_db.query(orm.APIToken)}
    lives = [(rows[h] - now).total_seconds() for h in minted.hashed]
    assert lives[0] == lives[19] == 60 and lives[20] == 66 and lives[40] == 72


def test_tokens_are_deleted_in_one_transaction(hub_db):
    minted = n.mint_tokens(hub_db, TARGETS * 400)
    assert token_rows(hub_db) == 1200
    seen = commits(hub_db)
    assert n.delete_tokens(hub_db, minted.hashed) == 1200  # three DELETE statements, one commit
    assert len(seen) == 1 and token_rows(hub_db) == 0
    assert all(orm.APIToken.find(hub_db, t) is None for t in minted.tokens[:5])


def test_an_expired_token_is_refused_even_before_it_is_deleted(hub_db):
    minted = n.mint_tokens(hub_db, TARGETS[:1], now=orm.APIToken.now() - timedelta(seconds=61))
    assert token_rows(hub_db) == 1 and orm.APIToken.find(hub_db, minted.tokens[0]) is None


def test_the_start_purge_removes_earlier_tokens_only(hub_db):
    old = n.mint_tokens(hub_db, TARGETS[:2], lifetime=3600, now=orm.APIToken.now() - timedelta(minutes=5))
    standing = orm.Service.find(hub_db, n.SERVICE_NAME).new_api_token(note="from config")  # an earlier version's
    other = orm.Service.find(hub_db, "other").new_api_token()
    started = orm.APIToken.now() + timedelta(seconds=1)
    current = n.mint_tokens(hub_db, TARGETS[2:], now=started + timedelta(seconds=1))
    assert n.purge_service_tokens(hub_db, started) == 3
    assert all(orm.APIToken.find(hub_db, t) is None for t in [*old.tokens, standing])
    assert orm.APIToken.find(hub_db, current.tokens[0]) is not None and orm.APIToken.find(hub_db, other) is not None


def test_send_gives_each_delivery_its_own_live_token_and_leaves_none(hub_db):
    in_flight, peak, seen = 0, 0, {}

    async def fetch(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        token = request.headers["Authorization"].removeprefix("token ")
        row = orm.APIToken.find(hub_db, token)  # alive while its delivery is in flight
        seen[request.url] = row.scopes
        await asyncio.sleep(0.01)
        in_flight -= 1
        if "down" in request.url:
            raise HTTPClientError(599, "Timeout while connecting")
        if "old" in request.url:
            raise HTTPClientError(404)
        if "moved" in request.url:
            raise HTTPClientError(302, "Found")
        if "boom" in request.url:
            raise RuntimeError("boom")
        return SimpleNamespace(code=200)

    targets = [n.Target(f"u{i}", "", f"http://h{i}/ingest") for i in range(50)]
    targets += [n.Target(name, "", f"http://{name}/ingest") for name in ("down", "old", "moved", "boom")]
    seen_commits = commits(hub_db)
    result = asyncio.run(n.send(hub_db, targets, n.check_broadcast({"message": "m"}), fetch=fetch, concurrency=20))
    assert peak == 20 and len(seen_commits) == 2 and token_rows(hub_db) == 0  # one mint, one delete
    assert seen["http://h7/ingest"] == ["access:servers!server=u7/"] and len(seen) == 54
    assert (result["total"], result["successful"], result["failed"]) == (54, 50, 4)
    errors = {d["username"]: d.get("error") for d in result["details"]}
    assert errors["down"].startswith("Server not responding")
    assert errors["old"].startswith("Notification extension not installed")
    assert errors["moved"].startswith("Redirect refused")
    assert "boom" in errors["boom"] and errors["u0"] is None


def test_a_cancelled_broadcast_leaves_no_token(hub_db):
    started = asyncio.Event()

    async def fetch(request):
        started.set()
        await asyncio.sleep(60)

    async def cancel_midway():
        task = asyncio.ensure_future(n.send(hub_db, TARGETS, n.check_broadcast({"message": "m"}), fetch=fetch))
        await started.wait()
        assert token_rows(hub_db) == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert token_rows(hub_db) == 0


def test_deliver_nothing_says_no_active_servers(hub_db):
    result = asyncio.run(n.send(hub_db, [], n.check_broadcast({"message": "m"})))
    assert result == {"total": 0, "successful": 0, "failed": 0, "details": [], "message": "No active servers found"}
    assert token_rows(hub_db) == 0


class _Misbehaving(web.RequestHandler):
    """A user's server answering the ingest as it likes."""

    hits: ClassVar[list[str]] = []

    async def post(self, kind: str) -> None:
        self.hits.append(kind)
        if kind == "redirect":
            self.redirect("/elsewhere/ingest")
        elif kind == "big":
            self.write("x" * (n.MAX_ANSWER_BODY + 1))
        elif kind == "chunked":
            for _ in range(20):
                self.write("y" * 10_000)
                await self.flush()
        elif kind == "headers":
            self.set_header("X-Padding", "z" * (n.MAX_ANSWER_HEADERS + 1))
        else:
            self.write({"success": True})


def test_real_client_refuses_redirects_and_caps_answers():
    async def run() -> dict:
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(web.Application([(r"/(\w+)/ingest", _Misbehaving)]))
        server.add_sockets(sockets)
        base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        try:
            kinds = ("ok", "redirect", "big", "chunked", "headers")
            targets = [n.Target(k, "", f"{base}/{k}/ingest") for k in kinds]
            return await n.deliver(targets, n.check_broadcast({"message": "m"}), ["t"] * len(targets))
        finally:
            server.stop()

    result = asyncio.run(run())
    errors = {d["username"]: d.get("error") for d in result["details"]}
    assert errors["ok"] is None and result["successful"] == 1
    assert errors["redirect"].startswith("Redirect refused (HTTP 302)")
    assert "elsewhere" not in _Misbehaving.hits  # never followed
    assert errors["big"] == f"Answer over the {n.MAX_ANSWER_BODY}-byte limit (Content-Length {n.MAX_ANSWER_BODY + 1})"
    assert errors["chunked"] == f"Answer cut off or over the {n.MAX_ANSWER_BODY}-byte limit"
    assert errors["headers"] == f"Answer headers over the {n.MAX_ANSWER_HEADERS}-byte limit"


def test_register_adds_one_service_without_a_token_and_its_role():
    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    n.register(c)
    n.register(c)  # never a second service or role
    assert c.JupyterHub.services == [{"name": "other", "api_token": "x"}, {"name": n.SERVICE_NAME, "display": False}]
    role = [r for r in c.JupyterHub.load_roles if r["name"] == n.ROLE_NAME]
    assert role == [{"name": n.ROLE_NAME, "description": role[0]["description"], "scopes": n.ROLE_SCOPES,
                     "services": [n.SERVICE_NAME]}]
