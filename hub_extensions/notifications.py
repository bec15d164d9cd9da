"""Notification broadcast into users' JupyterLab (the notifications extension's ingest endpoint).

Plain functions, so the handlers stay thin and the rules are unit-testable:

- :func:`check_broadcast` validates a request body and raises :class:`NotificationError` with a 400
  message a person can act on (upstream sent ``autoClose`` as a boolean; the extension wants
  milliseconds or ``false``, so a boolean ``true`` is refused here);
- :func:`running_servers` / :func:`select_targets` pick targets from the hub's in-memory users: every
  *ready* server, named servers included, optionally only the listed users or one group's members;
- :func:`deliver` posts to each server's ``jupyterlab-notifications-extension/ingest`` endpoint with
  at most :data:`CONCURRENCY` requests in flight and :data:`TIMEOUT` seconds each; one failure is
  recorded and never stops the others.

One token: every delivery uses the hub-internal service :data:`SERVICE_NAME`'s token, whose role holds
only ``access:servers``. It is generated at each hub start (:func:`register`), so broadcasts never add
rows to ``api_tokens`` (upstream created a full-scope token per recipient per broadcast).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

VARIANTS = ("default", "info", "success", "warning", "error", "in-progress")
MAX_MESSAGE = 140  # code points (Python's len), as the page counts them
DEFAULT_AUTO_CLOSE_MS = 5000  # the extension's own default
MAX_AUTO_CLOSE_MS = 24 * 3600 * 1000
CONCURRENCY = 20
TIMEOUT = 5.0
SERVICE_NAME = "jupyterhub-ds-notifier"
ROLE_NAME = "jupyterhub-ds-notifier"
TOKEN_SETTING = "jupyterhub_ds_notifier_token"  # key in tornado_settings
INGEST_PATH = "jupyterlab-notifications-extension/ingest"
DISMISS = {"label": "Dismiss", "caption": "Close this notification", "displayType": "default"}


class NotificationError(Exception):
    """A request the hub refuses, with the HTTP status and a readable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Broadcast:
    message: str
    variant: str
    auto_close: int | bool  # milliseconds, or False: stays until dismissed
    users: tuple[str, ...] | None = None  # only these user names
    group: str | None = None  # only this group's members

    def payload(self) -> dict[str, Any]:
        """The extension's ingest body."""
        return {"message": self.message, "type": self.variant, "autoClose": self.auto_close,
                "actions": [DISMISS]}


@dataclass(frozen=True)
class Target:
    username: str
    server_name: str
    url: str  # the ingest endpoint on the pod


def check_broadcast(body: Any) -> Broadcast:
    """The validated broadcast, or :class:`NotificationError` (400) naming what is wrong."""
    if not isinstance(body, dict):
        raise NotificationError(400, "Request body must be a JSON object")
    message = body.get("message")
    if not isinstance(message, str):
        raise NotificationError(400, "Message must be a string")
    message = message.strip()
    if not message:
        raise NotificationError(400, "Message cannot be empty")
    if len(message) > MAX_MESSAGE:
        raise NotificationError(400, f"Message cannot exceed {MAX_MESSAGE} characters (got {len(message)})")
    variant = body.get("variant", "info")
    if variant not in VARIANTS:
        raise NotificationError(400, f"Variant must be one of {', '.join(VARIANTS)}")
    auto_close = body.get("autoClose", DEFAULT_AUTO_CLOSE_MS)
    if auto_close is not False and (isinstance(auto_close, bool) or not isinstance(auto_close, int)
                                    or not 0 < auto_close <= MAX_AUTO_CLOSE_MS):
        raise NotificationError(400, "autoClose must be a duration in milliseconds "
                                     f"(1 to {MAX_AUTO_CLOSE_MS}) or false")
    users, group = None, None
    recipients = body.get("recipients")
    if isinstance(recipients, list):
        if not all(isinstance(n, str) and n for n in recipients):
            raise NotificationError(400, "recipients must be a list of user names")
        users = tuple(dict.fromkeys(recipients)) or None  # an empty list means everyone, as upstream
    elif isinstance(recipients, dict):
        group = recipients.get("group")
        if set(recipients) != {"group"} or not isinstance(group, str) or not group:
            raise NotificationError(400, 'recipients must be a list of user names or {"group": "<name>"}')
    elif recipients is not None:
        raise NotificationError(400, 'recipients must be a list of user names or {"group": "<name>"}')
    return Broadcast(message, variant, auto_close, users, group)


def running_servers(users: Iterable[Any]) -> list[tuple[Any, str, Any]]:
    """``(user, server_name, spawner)`` for every ready server (named servers too), sorted by name."""
    found = []
    for user in users:
        for name, spawner in list(user.spawners.items()):
            if spawner.ready and spawner.server is not None:
                found.append((user, name, spawner))
    return sorted(found, key=lambda t: (t[0].name, t[1]))


def server_info(user: Any, name: str, spawner: Any) -> dict[str, Any]:
    """One entry of ``active-servers``."""
    started = spawner.orm_spawner.started if spawner.orm_spawner is not None else None
    return {"username": user.name, "server_name": name, "url": user.server_url(name),
            "started": started.isoformat() + "Z" if started else None,
            "groups": sorted(g.name for g in user.groups)}


def ingest_url(spawner: Any) -> str:
    server = spawner.server
    return server.host.rstrip("/") + server.base_url.rstrip("/") + "/" + INGEST_PATH


def select_targets(users: Iterable[Any], broadcast: Broadcast,
                   allowed: Callable[[Any], bool] = lambda user: True) -> list[Target]:
    """The ready servers the broadcast goes to; unknown or stopped recipients are left out (upstream did too)."""
    wanted = set(broadcast.users) if broadcast.users is not None else None
    targets = []
    for user, name, spawner in running_servers(users):
        if wanted is not None and user.name not in wanted:
            continue
        if broadcast.group is not None and broadcast.group not in {g.name for g in user.groups}:
            continue
        if not allowed(user):
            continue
        targets.append(Target(user.name, name, ingest_url(spawner)))
    return targets


def describe_failure(e: BaseException) -> str:
    """A readable reason for a failed delivery."""
    if isinstance(e, HTTPClientError):
        if e.code == 599:
            return "Server not responding" + (f" ({e})" if str(e) and "599" not in str(e) else "")
        if e.code == 404:
            return "Notification extension not installed (404)"
        if e.code in (401, 403):
            return f"Authentication failed ({e.code})"
        return f"HTTP {e.code}: {e.message}"
    if isinstance(e, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return f"Server not responding ({type(e).__name__})"
    return f"Delivery failed: {type(e).__name__}: {e}"


Fetch = Callable[[HTTPRequest], Any]


async def deliver(targets: list[Target], broadcast: Broadcast, token: str, fetch: Fetch | None = None,
                  concurrency: int = CONCURRENCY, request_timeout: float = TIMEOUT) -> dict[str, Any]:
    """Post to every target, ``concurrency`` at a time; the response ``{total, successful, failed, details}``."""
    if fetch is None:
        fetch = AsyncHTTPClient(force_instance=True, max_clients=concurrency).fetch
    body = json.dumps(broadcast.payload())
    gate = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> dict[str, Any]:
        detail: dict[str, Any] = {"username": target.username, "server_name": target.server_name}
        request = HTTPRequest(target.url, method="POST", body=body, connect_timeout=request_timeout,
                              request_timeout=request_timeout,
                              headers={"Content-Type": "application/json", "Authorization": f"token {token}"})
        async with gate:
            try:
                await asyncio.wait_for(fetch(request), request_timeout + 1)
            except Exception as e:  # every failure is one recipient's: recorded, never fatal
                return {**detail, "status": "failed", "error": describe_failure(e)}
        return {**detail, "status": "success"}

    details = list(await asyncio.gather(*(one(t) for t in targets)))
    ok = sum(d["status"] == "success" for d in details)
    result: dict[str, Any] = {"total": len(details), "successful": ok, "failed": len(details) - ok, "details": details}
    if not details:
        result["message"] = "No active servers found"
    return result


def register(c: Any) -> str:
    """Register the notifier service (fresh token at every start) and its ``access:servers``-only role.

    Returns the token, which the handlers read from ``tornado_settings``.
    """
    from .scopes import _config_list  # the same LazyConfigValue handling as our other roles

    token = secrets.token_hex(32)
    services = [s for s in _config_list(c.JupyterHub.get("services", [])) if s.get("name") != SERVICE_NAME]
    c.JupyterHub.services = [*services, {"name": SERVICE_NAME, "api_token": token, "display": False}]
    roles = [r for r in _config_list(c.JupyterHub.get("load_roles", [])) if r.get("name") != ROLE_NAME]
    c.JupyterHub.load_roles = [*roles, {
        "name": ROLE_NAME, "description": "jupyterhub-ds: deliver notifications to running servers",
        "scopes": ["access:servers"], "services": [SERVICE_NAME]}]
    c.JupyterHub.tornado_settings.update({TOKEN_SETTING: token})
    try:  # configure runs inside JupyterHub's async initialize: purge the previous starts' tokens once it is up
        asyncio.get_running_loop().create_task(_purge_when_loaded(token))
    except RuntimeError:  # no loop: configure called outside a hub (tests, schema tools)
        pass
    return token


def purge_stale_tokens(db: Any, token: str) -> int:
    """Delete the notifier service's tokens other than ``token``; the number deleted.

    JupyterHub adds a config token to the database but never removes the previous one, so without this
    every restart would leave one more valid ``access:servers`` token behind.
    """
    from jupyterhub import orm

    service = orm.Service.find(db, SERVICE_NAME)
    current = orm.APIToken.find(db, token)
    if service is None or current is None:
        return 0
    stale = [t for t in service.api_tokens if t.id != current.id]
    for t in stale:
        db.delete(t)
    db.commit()
    return len(stale)


async def _purge_when_loaded(token: str, within: float = 600) -> None:
    """Wait until JupyterHub has stored this start's token (``init_api_tokens``), then purge the others."""
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        # never create the application ourselves (configure may run in a test process)
        app = JupyterHub.instance() if JupyterHub.initialized() else None
        db = getattr(app, "db", None)
        if app is not None and db is not None and orm.APIToken.find(db, token) is not None:
            n = purge_stale_tokens(db, token)
            app.log.info("jupyterhub-ds: notifier service token rotated (%d previous token(s) deleted)", n)
            return
        await asyncio.sleep(1)
    if JupyterHub.initialized():
        JupyterHub.instance().log.warning("jupyterhub-ds: notifier token not found in the database; "
                                          "previous tokens were not purged")
