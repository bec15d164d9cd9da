"""The one base of every jupyterhub-ds JSON endpoint under ``/hub/api``.

Errors are raised as ``tornado.web.HTTPError(status, message)``: JupyterHub's ``APIHandler.write_error`` answers
them as JSON ``{"status", "message"}``. Scope checks are JupyterHub's ``needs_scope`` on each method, XSRF is
JupyterHub's for cookie-authenticated writes.

``needs_scope`` on a method without a ``user_name`` argument lets ANY filtered grant through
(``admin:users!group=x`` passes a check for ``admin:users``): JupyterHub expects such a handler to filter its
answer itself. Our hub-wide endpoints (the trail, the activity monitor, the settings page, the cluster panel)
cannot answer for part of the users, so they use :func:`needs_unfiltered_scope` instead; per-user endpoints
(``/api/users/<name>/...``) keep ``needs_scope``, which checks the filter against ``<name>``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import Scope, needs_scope
from tornado import web

from . import runtime
from .settings import Settings


def holds_unfiltered(handler: Any, names: tuple[str, ...]) -> bool:
    """Whether ``handler``'s request holds one of ``names`` for everyone (a filtered grant does not count)."""
    parsed = getattr(handler, "parsed_scopes", None) or {}
    return any(parsed.get(name) == Scope.ALL for name in names)


def covered_groups(handler: Any, names: tuple[str, ...]) -> set[str] | None:
    """The groups that ``handler``'s grants among ``names`` name in a ``!group=`` filter; None when one of them is
    unfiltered (every group)."""
    parsed = getattr(handler, "parsed_scopes", None) or {}
    groups: set[str] = set()
    for name in names:
        grant = parsed.get(name)
        if grant == Scope.ALL:
            return None
        if isinstance(grant, dict):
            groups |= set(grant.get("group", ()))
    return groups


def needs_unfiltered_scope(*names: str) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """``needs_scope(*names)`` that a filtered grant (``...!group=x``, ``...!user=y``) does not satisfy: for
    endpoints about every user. API handlers answer JSON 403 naming the scopes; page handlers the hub's 403 page."""
    def decorate(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(method)
        async def unfiltered(self: Any, *args: Any, **kwargs: Any) -> None:
            if not holds_unfiltered(self, names):
                raise web.HTTPError(403, f"This endpoint is about every user: it requires any of [{', '.join(names)}]"
                                         " without a filter (a grant filtered to a group or user does not count)")
            return await method(self, *args, **kwargs)

        return needs_scope(*names)(unfiltered)

    return decorate


def routes_ahead(app: Any, routes: list[tuple]) -> None:
    """Serve ``routes`` (relative to the hub prefix) ahead of JupyterHub's own handlers for the same paths.

    ``extra_handlers`` come after JupyterHub's, so they cannot take over one of its routes; this wraps the app's
    ``init_handlers`` (called after the config is loaded) to put ours first, as the authenticator's are.
    """
    init_handlers = app.init_handlers

    def init_with_ours_first() -> None:
        init_handlers()
        app.handlers[:0] = app.add_url_prefix(app.hub_prefix, routes)

    app.init_handlers = init_with_ours_first


class Utf8JsonBody:
    """A mixin for JupyterHub's API handlers: a body that is not UTF-8 is a 400 like any bad JSON (upstream's
    ``get_json_body`` decodes it outside its ``try``: a 500). Put it first among the bases."""

    def get_json_body(self) -> Any:
        try:
            (self.request.body or b"").decode("utf-8")  # type: ignore[attr-defined]
        except UnicodeDecodeError as e:
            raise web.HTTPError(400, "Invalid JSON in body of request: not UTF-8") from e
        return super().get_json_body()  # type: ignore[misc]


class DsAPIHandler(Utf8JsonBody, APIHandler):
    @property
    def ds_settings(self) -> Settings:
        return runtime.of(self).settings

    def target(self, user_name: str) -> tuple[Any, Any]:
        """The user and their default spawner, or 404."""
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"No such user: {user_name}")
        return user, user.spawners[""]

    def covers(self, user: Any, *names: str) -> bool:
        """Whether the request holds one of the scopes ``names`` for ``user`` (filters such as ``!group=``
        apply)."""
        return any(self.get_scope_filter(name)(user.orm_user, kind="user") for name in names)

    def holds_unfiltered(self, names: tuple[str, ...]) -> bool:
        """Whether the request holds one of ``names`` for everyone (``!group=``-filtered does not count)."""
        return holds_unfiltered(self, names)

    def write_json(self, payload: dict[str, Any] | str, status: int = 200) -> None:
        """Answer ``payload`` (a dict, or JSON already encoded), never cached by the browser: the answers are
        live state."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(payload if isinstance(payload, str) else json.dumps(payload))
