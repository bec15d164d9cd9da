"""The batched last-activity pass gives exactly what JupyterHub 5.5's own pass gives on the same routes and the
same database, with a fixed number of queries instead of two per route."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub import orm
from jupyterhub.app import JupyterHub
from sqlalchemy import event

from hub_extensions import last_activity

NOW = datetime.utcnow().replace(microsecond=0)


class Proxy:
    def __init__(self, routes: dict) -> None:
        self.routes = routes
        self.checked: list = []

    async def get_all_routes(self) -> dict:
        return self.routes

    async def check_routes(self, users: Any, service_map: Any, routes: dict) -> None:
        self.checked.append(routes)


class Gauges:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def gauge(self, name: str, value: int) -> None:
        self.values[name] = value


def seeded_db(url: str, users: int) -> Any:
    """Users u0..u{n-1}, each with a default server (u0 also a named one, "gpu"), some with activity already."""
    db = orm.new_session_factory(url)()
    for i in range(users):
        user = orm.User(name=f"u{i}", last_activity=NOW - timedelta(hours=2) if i % 3 == 0 else None)
        db.add(user)
        db.flush()
        db.add(orm.Spawner(user_id=user.id, name="", last_activity=NOW - timedelta(minutes=i % 50)))
        if i == 0:
            db.add(orm.Spawner(user_id=user.id, name="gpu", last_activity=None))
    db.commit()
    return db


def routes_for(users: int) -> dict:
    routes = {"/": {"data": {"hub": True}},
              "/services/notifier/": {"data": {"service": "notifier"}},
              "/user/ghost/": {"data": {"user": "ghost", "server_name": "", "last_activity": NOW.isoformat() + "Z"}},
              "/user/u1/nope/": {"data": {"user": "u1", "server_name": "nope", "last_activity": NOW.isoformat()}},
              "/user/u2/": {"data": {"user": "u2", "server_name": ""}},  # counted, nothing to record
              # a time nobody parses: upstream never reads it for a user it does not find
              "/user/gone/": {"data": {"user": "gone", "server_name": "", "last_activity": "not a time"}},
              "/user/u0/gpu/": {"data": {"user": "u0", "server_name": "gpu",
                                          "last_activity": (NOW - timedelta(days=3)).isoformat() + "+00:00"}}}
    for i in range(users):
        if i == 2:
            continue
        stamp = NOW - timedelta(minutes=(i * 7) % 120)  # some older than the database's, some newer
        if i % 5 == 0:  # another zone, the same instant
            text = (stamp + timedelta(hours=1)).isoformat() + "+01:00"
        else:
            text = stamp.isoformat() + ("Z" if i % 2 else "+00:00")
        routes[f"/user/u{i}/"] = {"data": {"user": f"u{i}", "server_name": "", "last_activity": text}}
    return routes


def snapshot(db: Any) -> dict:
    db.expire_all()
    return {u.name: (u.last_activity, {s.name: s.last_activity for s in u._orm_spawners})
            for u in db.query(orm.User)}


def fake_app(db: Any, routes: dict) -> SimpleNamespace:
    return SimpleNamespace(db=db, proxy=Proxy(routes), statsd=Gauges(), active_user_window=30 * 60,
                           log=logging.getLogger("test"), users={}, _service_map={})


@pytest.mark.parametrize("users", [1, 40, 1200])  # 1,200: more than one chunk of names
def test_the_batched_pass_equals_jupyterhubs(tmp_path: Path, users: int) -> None:
    routes = routes_for(users)
    theirs = fake_app(seeded_db(f"sqlite:///{tmp_path / 'theirs.sqlite'}", users), routes)
    ours = fake_app(seeded_db(f"sqlite:///{tmp_path / 'ours.sqlite'}", users), routes)
    assert snapshot(theirs.db) == snapshot(ours.db)
    asyncio.run(JupyterHub.update_last_activity(theirs))
    asyncio.run(last_activity.update_last_activity(ours))
    assert snapshot(ours.db) == snapshot(theirs.db)
    assert ours.statsd.values == theirs.statsd.values
    assert ours.proxy.checked == theirs.proxy.checked == [routes]


def selects_of_a_pass(path: Path, users: int) -> list[str]:
    app = fake_app(seeded_db(f"sqlite:///{path}", users), routes_for(users))
    statements: list[str] = []
    event.listen(app.db.get_bind(), "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    asyncio.run(last_activity.update_last_activity(app))
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_a_fixed_number_of_queries(tmp_path: Path) -> None:
    """The same queries for 40 servers and for 400 (upstream: two per route and one per changed spawner)."""
    few, many = selects_of_a_pass(tmp_path / "few.sqlite", 40), selects_of_a_pass(tmp_path / "many.sqlite", 400)
    assert len(many) == len(few) <= 8, many


def test_install_replaces_the_method_jupyterhubs_periodic_callback_calls(tmp_path: Path) -> None:
    app = fake_app(seeded_db(f"sqlite:///{tmp_path / 'hub.sqlite'}", 3), routes_for(3))
    app.last_activity_interval = 60
    last_activity.install(app)
    asyncio.run(app.update_last_activity())
    # every user route counts, found or not: ghost, gone, u1/nope, u2 (no stamp), u0/gpu, u0, u1
    assert app.statsd.values["users.running"] == 7
