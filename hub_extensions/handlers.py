"""The one base of every jupyterhub-ds JSON endpoint under ``/hub/api``.

Errors are raised as ``tornado.web.HTTPError(status, message)``: JupyterHub's ``APIHandler.write_error`` answers
them as JSON ``{"status", "message"}``. Scope checks are JupyterHub's ``needs_scope`` on each method, XSRF is
JupyterHub's for cookie-authenticated writes.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import Scope
from tornado import web

from .settings import Settings


class DsAPIHandler(APIHandler):
    @property
    def ds_settings(self) -> Settings:
        return self.settings["jupyterhub_ds"]

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
        parsed = getattr(self, "parsed_scopes", None) or {}
        return any(parsed.get(name) == Scope.ALL for name in names)

    def write_json(self, payload: dict[str, Any] | str, status: int = 200) -> None:
        """Answer ``payload`` (a dict, or JSON already encoded), never cached by the browser: the answers are
        live state."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(payload if isinstance(payload, str) else json.dumps(payload))
