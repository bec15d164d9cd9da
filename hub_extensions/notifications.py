"""Notification broadcast into users' JupyterLab (the notifications extension's ingest endpoint).

Plain functions, so the handlers stay thin and the rules are unit-testable:

- :func:`check_broadcast` validates a request body and raises :class:`NotificationError` with a 400
  message a person can act on (upstream sent ``autoClose`` as a boolean; the extension wants
  milliseconds or ``false``, so a boolean ``true`` is refused here);
- :func:`running_servers` / :func:`select_targets` pick targets from the hub's in-memory users: every
  *ready* server, named servers included, optionally only the listed users or one group's members;
- :func:`send` mints one token per delivery (:func:`mint_tokens`), posts to each server's
  ``jupyterlab-notifications-extension/ingest`` endpoint (:func:`deliver`: at most :data:`CONCURRENCY`
  requests in flight, :data:`TIMEOUT` seconds each, no redirects, answers capped and discarded; one
  failure is recorded and never stops the others), and deletes the tokens (:func:`delete_tokens`).

A token per delivery, scoped to exactly the recipient's server: a user's server can read everything sent
to it, so what it receives must open nothing but itself. Each token is ``access:servers!server=<user>/
<name>``, owned by the hub-internal service :data:`SERVICE_NAME` (whose role holds ``access:servers``, so
its tokens may hold any one-server subset), expires :data:`TOKEN_LIFETIME` seconds after its delivery can
start at the latest, and is deleted when the broadcast ends, failed or not. The service has no standing
token: :func:`register` purges any left by earlier versions or by a hub that died mid-broadcast. Minting
and deleting are one transaction each per broadcast, and generated tokens are hashed with one SHA-512
round (JupyterHub's ``Hashed.generated``), so 1,000 recipients cost milliseconds, not a stalled event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import UnsatisfiableReadError
from tornado.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient

VARIANTS = ("default", "info", "success", "warning", "error", "in-progress")
MAX_MESSAGE = 140  # code points (Python's len), as the page counts them
DEFAULT_AUTO_CLOSE_MS = 5000  # the extension's own default
MAX_AUTO_CLOSE_MS = 24 * 3600 * 1000
CONCURRENCY = 20
TIMEOUT = 5.0
SERVICE_NAME = "jupyterhub-ds-notifier"
ROLE_NAME = "jupyterhub-ds-notifier"
TOKEN_LIFETIME = 60  # seconds after its delivery can start; deleted sooner, when the broadcast ends
TOKEN_NOTE = "jupyterhub-ds: one notification delivery"
MAX_ANSWER_BODY = 64 * 1024  # bytes read of a server's answer (the ingest answers a few bytes of JSON)
MAX_ANSWER_HEADERS = 16 * 1024
# access:servers, so its tokens may hold one server of it; its own name, which JupyterHub adds to every token
# (identify scopes) and would otherwise drop with a warning at each token check
ROLE_SCOPES = ["access:servers", f"read:services:name!service={SERVICE_NAME}"]
DELETE_BATCH = 500  # hashes per DELETE ... IN (...) statement, well under every database's parameter limit
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


def delivery_scope(target: Target) -> str:
    """The one scope a delivery token holds: access to the recipient's server and nothing else."""
    return f"access:servers!server={target.username}/{target.server_name}"


@dataclass(frozen=True)
class DeliveryTokens:
    tokens: list[str]  # one per target, in the targets' order
    hashed: list[str]  # their database keys, to delete them


def _hashed(token: str) -> tuple[str, str]:
    """``(prefix, hashed)`` as JupyterHub stores a generated token (one salted SHA-512 round)."""
    from jupyterhub import orm
    from jupyterhub.utils import hash_token

    cls = orm.APIToken
    return token[:cls.prefix_length], hash_token(token, salt=cls.generated_salt_bytes, rounds=cls.generated_rounds,
                                                 algorithm=cls.algorithm)


def mint_tokens(db: Any, targets: Sequence[Target], lifetime: float = TOKEN_LIFETIME, wave: int = CONCURRENCY,
                wave_seconds: float = TIMEOUT + 1, now: datetime | None = None) -> DeliveryTokens:
    """One token per target, owned by the notifier service, in one INSERT and one commit.

    Each token expires ``lifetime`` seconds after the latest moment its delivery can start: deliveries go
    out ``wave`` at a time, each wave at most ``wave_seconds`` long, so target ``i`` starts within
    ``i // wave * wave_seconds`` (a broadcast to slow servers must not outlive its last tokens). Rows are
    inserted without ORM objects (JupyterHub's ``APIToken.new`` commits and checks scopes per token): the
    scope is built here from the target, and the service's role holds ``access:servers``.
    """
    from jupyterhub import orm
    from jupyterhub.utils import new_token
    from sqlalchemy import insert

    if not targets:
        return DeliveryTokens([], [])
    service = orm.Service.find(db, SERVICE_NAME)
    if service is None:
        raise RuntimeError(f"service {SERVICE_NAME} is not registered")
    now = now or orm.APIToken.now()
    tokens, rows = [], []
    for i, target in enumerate(targets):
        token = new_token()
        prefix, hashed = _hashed(token)
        tokens.append(token)
        rows.append({"service_id": service.id, "prefix": prefix, "hashed": hashed, "client_id": "jupyterhub",
                     "scopes": [delivery_scope(target)], "note": TOKEN_NOTE, "created": now,
                     "expires_at": now + timedelta(seconds=lifetime + i // wave * wave_seconds)})
    try:
        db.execute(insert(orm.APIToken), rows)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return DeliveryTokens(tokens, [r["hashed"] for r in rows])


def delete_tokens(db: Any, hashed: Sequence[str]) -> int:
    """Delete these tokens in one transaction; the number of rows deleted."""
    from jupyterhub import orm
    from sqlalchemy import delete

    deleted = 0
    try:
        for i in range(0, len(hashed), DELETE_BATCH):
            batch = list(hashed[i:i + DELETE_BATCH])
            deleted += db.execute(delete(orm.APIToken).where(orm.APIToken.hashed.in_(batch))).rowcount
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return deleted


def purge_service_tokens(db: Any, before: datetime) -> int:
    """Delete the notifier service's tokens created before ``before`` (this hub's start); the number deleted.

    Earlier versions kept a standing token per start; a hub that died mid-broadcast leaves delivery tokens
    (expired by then, but rows nonetheless). Tokens of this hub's own broadcasts are left alone.
    """
    from jupyterhub import orm
    from sqlalchemy import delete, select

    service_id = select(orm.Service.id).where(orm.Service.name == SERVICE_NAME).scalar_subquery()
    try:
        n = db.execute(delete(orm.APIToken).where(orm.APIToken.service_id == service_id,
                                                  orm.APIToken.created < before)).rowcount
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return n


class _Answer:
    """What a server's answer declared, read without keeping it: the end of its headers and its length."""

    def __init__(self) -> None:
        self.headers_done = False
        self.length: int | None = None

    def header_line(self, line: str) -> None:
        if line in ("\r\n", "\n"):
            self.headers_done = True
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            self.length = int(value.strip())

    def body_chunk(self, chunk: bytes) -> None:
        """Dropped: only success or failure matters, and the client stops reading at the cap."""


def describe_failure(e: BaseException, answer: _Answer | None = None) -> str:
    """A readable reason for a failed delivery."""
    if isinstance(e, HTTPClientError) and 300 <= e.code < 400:
        return f"Redirect refused (HTTP {e.code}): deliveries go to the server itself only"
    if isinstance(e, UnsatisfiableReadError):
        return f"Answer headers over the {MAX_ANSWER_HEADERS}-byte limit"
    if isinstance(e, HTTPStreamClosedError) and answer is not None and answer.headers_done:
        if answer.length is not None and answer.length > MAX_ANSWER_BODY:
            return f"Answer over the {MAX_ANSWER_BODY}-byte limit (Content-Length {answer.length})"
        return f"Answer cut off or over the {MAX_ANSWER_BODY}-byte limit"
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


async def deliver(targets: Sequence[Target], broadcast: Broadcast, tokens: Sequence[str], fetch: Fetch | None = None,
                  concurrency: int = CONCURRENCY, request_timeout: float = TIMEOUT) -> dict[str, Any]:
    """Post to every target with its own token, ``concurrency`` at a time; ``{total, successful, failed, details}``.

    The client is Tornado's own (Z2JH makes curl the default client, which ignores the size limits): a
    redirect is a failure, never followed; the answer's headers and body are capped and the body dropped.
    """
    if len(tokens) != len(targets):
        raise ValueError("one token per target")
    client = None
    if fetch is None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_clients=concurrency, max_body_size=MAX_ANSWER_BODY,
                                       max_header_size=MAX_ANSWER_HEADERS)
        fetch = client.fetch
    body = json.dumps(broadcast.payload())
    gate = asyncio.Semaphore(concurrency)

    async def one(target: Target, token: str) -> dict[str, Any]:
        detail: dict[str, Any] = {"username": target.username, "server_name": target.server_name}
        async with gate:
            answer = _Answer()
            request = HTTPRequest(target.url, method="POST", body=body, connect_timeout=request_timeout,
                                  request_timeout=request_timeout, follow_redirects=False, decompress_response=False,
                                  header_callback=answer.header_line, streaming_callback=answer.body_chunk,
                                  headers={"Content-Type": "application/json", "Authorization": f"token {token}"})
            try:
                await asyncio.wait_for(fetch(request), request_timeout + 1)
            except Exception as e:  # every failure is one recipient's: recorded, never fatal
                return {**detail, "status": "failed", "error": describe_failure(e, answer)}
        return {**detail, "status": "success"}

    try:
        details = list(await asyncio.gather(*(one(t, k) for t, k in zip(targets, tokens, strict=True))))
    finally:
        if client is not None:
            client.close()
    ok = sum(d["status"] == "success" for d in details)
    result: dict[str, Any] = {"total": len(details), "successful": ok, "failed": len(details) - ok, "details": details}
    if not details:
        result["message"] = "No active servers found"
    return result


async def send(db: Any, targets: Sequence[Target], broadcast: Broadcast, fetch: Fetch | None = None,
               concurrency: int = CONCURRENCY, request_timeout: float = TIMEOUT) -> dict[str, Any]:
    """Mint a token per target, deliver, and delete the tokens whatever happens (failure, cancellation)."""
    minted = mint_tokens(db, targets, wave=concurrency, wave_seconds=request_timeout + 1)
    try:
        return await deliver(targets, broadcast, minted.tokens, fetch, concurrency, request_timeout)
    finally:
        delete_tokens(db, minted.hashed)


def register(c: Any) -> None:
    """Register the notifier service (no token of its own) and its role, and purge its old tokens at start."""
    from jupyterhub import orm

    from .scopes import _config_list  # the same LazyConfigValue handling as our other roles

    services = [s for s in _config_list(c.JupyterHub.get("services", [])) if s.get("name") != SERVICE_NAME]
    c.JupyterHub.services = [*services, {"name": SERVICE_NAME, "display": False}]
    roles = [r for r in _config_list(c.JupyterHub.get("load_roles", [])) if r.get("name") != ROLE_NAME]
    c.JupyterHub.load_roles = [*roles, {
        "name": ROLE_NAME, "description": "jupyterhub-ds: deliver notifications to running servers "
                                          "(each delivery's token holds one server of it)",
        "scopes": ROLE_SCOPES, "services": [SERVICE_NAME]}]
    started = orm.APIToken.now()
    try:  # configure runs inside JupyterHub's async initialize: purge once the database is up
        asyncio.get_running_loop().create_task(_purge_when_loaded(started))
    except RuntimeError:  # no loop: configure called outside a hub (tests, schema tools)
        pass


async def _purge_when_loaded(started: datetime, within: float = 600) -> None:
    """Wait until JupyterHub has registered the service, then purge its tokens from before this start."""
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        # never create the application ourselves (configure may run in a test process)
        app = JupyterHub.instance() if JupyterHub.initialized() else None
        db = getattr(app, "db", None)
        if app is not None and db is not None and orm.Service.find(db, SERVICE_NAME) is not None:
            n = purge_service_tokens(db, started)
            app.log.info("jupyterhub-ds: notifier service ready, %d token(s) from earlier starts deleted", n)
            return
        await asyncio.sleep(1)
    if JupyterHub.initialized():
        JupyterHub.instance().log.warning("jupyterhub-ds: notifier service not found in the database; "
                                          "tokens from earlier starts were not purged")
