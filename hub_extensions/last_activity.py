"""The last-activity pass in batches: JupyterHub's ``update_last_activity`` with a fixed number of queries.

Every ``last_activity_interval`` (60 s in Z2JH) JupyterHub reads the proxy's routes and, per route, runs
``orm.User.find`` and loads that user's spawners: two synchronous queries per running server on the event loop,
which stalled a hub with 1,000 running servers for seconds every minute (ci/README.md, "1,000 running servers").
:func:`update_last_activity` does the same work with one query for every route's user and their spawners
(``selectinload``, in chunks of :data:`CHUNK` names: the same few queries for 10 servers or 1,000), assigns only
what changes, and commits once; then, as
upstream, hands the routes to ``proxy.check_routes``. Its results equal upstream's on the same routes
(``tests/unit/test_last_activity.py`` runs both). :func:`install` puts it on the running application, so
JupyterHub's own periodic callback calls it; nothing of JupyterHub is forked.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from dateutil.parser import parse as parse_date
from jupyterhub import orm
from jupyterhub.utils import utcnow
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

log = logging.getLogger("JupyterHub.ds.last_activity")

CHUNK = 500  # names per IN (...) query: well under SQLite's 999 bound parameters


def parse_stamp(value: str) -> datetime:
    """A proxy's time as the naive UTC datetime JupyterHub stores (upstream's parser: dateutil)."""
    stamp = parse_date(value)
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


def user_routes(routes: Mapping[str, Mapping[str, Any]]) -> tuple[int, list[tuple[str, str, Any]]]:
    """(user routes counted, [(user, server name, last activity as the proxy wrote it)]) from the proxy's routes
    (pure), as upstream reads them: routes without ``user``/``server_name`` are not users'; without
    ``last_activity`` they count but carry nothing. Times are parsed later, for routes whose server exists, as
    upstream does."""
    counted, found = 0, []
    for route in routes.values():
        data = route.get("data") or {}
        if "user" not in data or "server_name" not in data:
            continue
        counted += 1
        if "last_activity" in data:
            found.append((data["user"], data["server_name"], data["last_activity"]))
    return counted, found


def load_users(db: Any, names: Iterable[str]) -> dict[str, orm.User]:
    """The users named, with their spawners, in a fixed number of queries per :data:`CHUNK` names (the users, their
    spawners and OAuth clients, and what JupyterHub's models load with every user: groups, roles, shares)."""
    names = sorted(set(names))
    users: dict[str, orm.User] = {}
    for i in range(0, len(names), CHUNK):
        # the spawners' OAuth clients too: flushing a changed spawner checks its delete-orphan cascade
        spawners = selectinload(orm.User._orm_spawners)
        query = (db.query(orm.User).options(spawners, spawners.selectinload(orm.Spawner.oauth_client))
                 .filter(orm.User.name.in_(names[i:i + CHUNK])))
        users.update((u.name, u) for u in query)
    return users


def _later(current: datetime | None, stamp: datetime) -> datetime:
    return stamp if current is None else max(current, stamp)


async def update_last_activity(app: Any) -> None:
    """JupyterHub's pass (``JupyterHub.update_last_activity`` in 5.5) with a fixed number of queries."""
    routes = await app.proxy.get_all_routes()
    now = utcnow(with_tz=False)
    counted, found = user_routes(routes)
    users = load_users(app.db, (name for name, _, _ in found))
    active = 0
    for name, server_name, text in found:
        user = users.get(name)
        if user is None:
            app.log.warning("Found no user for route: %s/%s", name, server_name)
            continue
        spawner = user.orm_spawners.get(server_name)
        if spawner is None:
            app.log.warning("Found no spawner for route: %s/%s", name, server_name)
            continue
        stamp = parse_stamp(text)
        if user.last_activity != (later := _later(user.last_activity, stamp)):
            user.last_activity = later
        if spawner.last_activity != (later := _later(spawner.last_activity, stamp)):
            spawner.last_activity = later
        if (now - user.last_activity).total_seconds() < app.active_user_window:
            active += 1  # per route, as upstream counts them
    app.statsd.gauge("users.running", counted)
    app.statsd.gauge("users.active", active)
    try:
        app.db.commit()
    except SQLAlchemyError:
        app.log.exception("Rolling back session due to database error")
        app.db.rollback()
        return
    await app.proxy.check_routes(app.users, app._service_map, routes)


def install(app: Any) -> None:
    """Make ``app`` (the JupyterHub application, before ``start``) run the batched pass."""
    app.update_last_activity = types.MethodType(update_last_activity, app)
    log.info("jupyterhub-ds: the last-activity pass runs in batches (%d s interval)", app.last_activity_interval)
