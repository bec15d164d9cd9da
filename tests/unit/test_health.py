"""Health details: uptime text, servers counted over named servers, database check in a thread, failures."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import sqlalchemy

from hub_extensions import health


def user(*servers: tuple[bool, str | None]) -> SimpleNamespace:
    return SimpleNamespace(spawners={f"s{i}": SimpleNamespace(ready=ready, pending=pending)
                                     for i, (ready, pending) in enumerate(servers)})


def test_uptime_text():
    assert health.uptime_text(0) == "0d 0h 0m"
    assert health.uptime_text(2 * 86400 + 3 * 3600 + 4 * 60 + 59) == "2d 3h 4m"


def test_servers_are_counted_with_named_servers():
    users = [user((True, None), (True, None)),  # default + a named server
             user((False, "spawn")),
             user((False, None)),
             SimpleNamespace(spawners={})]
    assert health.count_servers(users) == {"running_servers": 2, "pending_servers": 1, "users_with_servers": 2}


def _engine(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sqlalchemy.text("INSERT INTO users (name) VALUES ('a'), ('b'), ('c')"))
    return engine


async def ok() -> str:
    return "v1.34.4"


async def test_details_when_all_is_well(tmp_path):
    answer = await health.details(_engine(tmp_path), [user((True, None), (True, None))], "0.1.0", "5.5.0",
                                  k8s_probe=ok(), metrics=ok(), now=health.STARTED + 3700)
    assert answer["status"] == "ok"
    assert answer["version"] == {"jupyterhub_ds": "0.1.0", "jupyterhub": "5.5.0"}
    assert answer["uptime_seconds"] == 3700 and answer["uptime"] == "0d 1h 1m"
    assert answer["database"] == {"reachable": True}
    assert answer["kubernetes"] == {"reachable": True, "version": "v1.34.4"}
    assert answer["metrics"] == {"available": True}
    assert answer["users"] == {"total": 3, "active_servers": 2, "running_servers": 2, "pending_servers": 0,
                               "users_with_servers": 1}


async def test_details_report_each_failure_without_raising(tmp_path):
    async def refused():
        raise ConnectionError("refused")

    async def slow():
        await asyncio.sleep(10)

    broken = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'missing' / 'hub.sqlite'}")
    old = health.CHECK_TIMEOUT
    health.CHECK_TIMEOUT = 0.2
    try:
        answer = await health.details(broken, [], "0.1.0", "5.5.0", k8s_probe=refused(), metrics=slow())
    finally:
        health.CHECK_TIMEOUT = old
    assert answer["status"] == "degraded"
    assert answer["database"]["reachable"] is False and answer["database"]["error"]
    assert answer["kubernetes"] == {"reachable": False, "error": "ConnectionError: refused"}
    assert answer["metrics"]["available"] is False
    assert answer["users"]["total"] is None


async def test_metrics_down_alone_is_not_degraded(tmp_path):
    async def gone():
        raise ConnectionError("404")

    answer = await health.details(_engine(tmp_path), [], "0.1.0", "5.5.0", k8s_probe=ok(), metrics=gone())
    assert answer["status"] == "ok" and answer["metrics"]["available"] is False
