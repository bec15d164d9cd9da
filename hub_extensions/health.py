"""``GET /hub/api/ds/health``: is the hub well, and what is it running (upstream's ``/health``, ported).

Upstream's handler sat at ``/hub/health``, where JupyterHub's own handler shadows it, and counted
``orm.User.running`` (which does not exist) so it always said 0 servers. Here:

- the path is ``/hub/api/ds/health``; JupyterHub's ``/hub/health`` stays what the probes use;
- anyone (no login) gets ``{"status": "ok"}`` and nothing else: a liveness-style answer that does not
  tell strangers how many users or servers there are, and costs no query;
- callers holding ``admin:users``, ``custom:ds-activity:read`` or ``custom:ds-health:read`` (unfiltered)
  get the details: versions, uptime, the database (``SELECT 1`` and a user count on a pool connection in
  a worker thread, never on the event loop), the Kubernetes API (``/version``), the metrics API (a
  NodeMetrics LIST with ``limit=1``), and the servers counted from the hub's own spawners, named servers
  included (``ready`` = running, ``pending`` = starting or stopping). ``status`` is ``degraded`` when the
  database or the Kubernetes API does not answer; a missing metrics API only shows as
  ``metrics.available: false`` (the hub works without it). ``gpu`` is the GPU mode and, in auto mode, the GPU
  nodes the hub's node cache last listed (``null`` before its first list).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

STARTED = time.time()  # the module is imported while the hub loads its config: the hub's start, near enough
CHECK_TIMEOUT = 5.0


def uptime_text(seconds: float) -> str:
    """``"2d 3h 4m"`` (upstream's format)."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h {minutes}m"


def count_servers(users: Iterable[Any]) -> dict[str, int]:
    """Servers the hub holds, every named server too: ``running`` (ready), ``pending``, and users with one."""
    running = pending = with_server = 0
    for user in users:
        has = False
        for spawner in list(user.spawners.values()):
            if spawner.ready:
                running += 1
                has = True
            elif spawner.pending:
                pending += 1
                has = True
        with_server += has
    return {"running_servers": running, "pending_servers": pending, "users_with_servers": with_server}


def database_check(engine: Any) -> int:
    """``SELECT 1`` and the number of users, on a connection of its own (run it in a worker thread)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        return int(conn.execute(text("SELECT count(*) FROM users")).scalar_one())


async def _check(awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, result) or (False, a one-line reason); never raises. Each check has ``CHECK_TIMEOUT`` seconds."""
    timeout = CHECK_TIMEOUT
    try:
        return True, await asyncio.wait_for(awaitable, timeout)
    except Exception as e:  # every failure is an answer here
        from . import k8s

        return False, k8s.describe(e) if not isinstance(e, TimeoutError) else f"no answer in {timeout:g} s"


async def metrics_probe() -> None:
    """One NodeMetrics LIST of at most one item: the metrics API is registered, up and we may read it."""
    from . import k8s

    await k8s.custom_objects().list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", limit=1,
                                                          _request_timeout=k8s.REQUEST_TIMEOUT)


async def details(engine: Any, users: Iterable[Any], ds_version: str, hub_version: str,
                  k8s_probe: Awaitable[Any] | None = None, metrics: Awaitable[Any] | None = None,
                  now: float | None = None, gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full answer. ``k8s_probe``/``metrics`` default to the real API calls (tests pass their own)."""
    from . import k8s

    now = time.time() if now is None else now
    servers = count_servers(users)  # before any await: a consistent snapshot of the spawners
    (db_ok, db), (kube_ok, kube), (metrics_ok, metrics_result) = await asyncio.gather(
        _check(asyncio.to_thread(database_check, engine)),
        _check(k8s_probe if k8s_probe is not None else k8s.server_version()),
        _check(metrics if metrics is not None else metrics_probe()),
    )
    uptime = max(0.0, now - STARTED)
    return {
        "status": "ok" if db_ok and kube_ok else "degraded",
        "version": {"jupyterhub_ds": ds_version, "jupyterhub": hub_version},
        "uptime_seconds": int(uptime),
        "uptime": uptime_text(uptime),
        "database": {"reachable": db_ok, **({} if db_ok else {"error": db})},
        "kubernetes": {"reachable": kube_ok, **({"version": kube} if kube_ok else {"error": kube})},
        "metrics": {"available": metrics_ok, **({} if metrics_ok else {"error": metrics_result})},
        **({"gpu": gpu} if gpu is not None else {}),
        "users": {"total": db if db_ok else None, "active_servers": servers["running_servers"], **servers},
        "timestamp": now,
    }
