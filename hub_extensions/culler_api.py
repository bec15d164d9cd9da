"""REST endpoints of the session extension: ``session-info`` and ``extend-session`` (upstream's shapes).

Scopes: reading needs ``read:servers`` on the user, extending needs ``servers`` on the user (a user's
own role allows both for themselves, admins have them for everyone, and a single-user server's own
token holds neither ``servers`` scope, so a notebook cannot keep itself alive by extending). XSRF is
enforced by JupyterHub for cookie-authenticated writes.

Errors are JSON with both our keys and upstream's: ``{"status", "message", "success": false, "error"}``.
"""

from __future__ import annotations

import json

from jupyterhub.scopes import needs_scope

from . import culler, locks
from .handler_base import DsAPIHandler


class CullerAPIHandler(DsAPIHandler):
    def fail(self, status: int, message: str) -> None:
        """An error with upstream's keys too (``success``, ``error``): upstream's page reads them."""
        self.write_json({"status": status, "message": message, "success": False, "error": message}, status)


class SessionInfoHandler(CullerAPIHandler):
    """``GET``: the idle timer of the user's default server."""

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        _, spawner = self.target(user_name)
        self.write_json(culler.session_info(spawner, self.ds_settings.culler))


class ExtendSessionHandler(CullerAPIHandler):
    """``POST {"hours": n}``: move the idle deadline by whole hours, up to the ceiling."""

    @needs_scope("servers")
    async def post(self, user_name: str) -> None:
        user, _ = self.target(user_name)
        # the server's own ceiling (its group policies), checked again under the lock below
        settings = culler.effective(self.ds_settings.culler, user.spawners.get(""))
        if not settings.enabled:
            return self.fail(400, "Idle culler is not enabled")
        if settings.max_extension_hours == 0:
            return self.fail(400, "Session extensions are disabled (maxExtensionHours is 0)")
        try:
            body = json.loads(self.request.body or b"{}")
            hours = culler.parse_hours(body, settings.max_extension_hours)
        except ValueError as e:  # JSONDecodeError and BadHours
            message = str(e) if isinstance(e, culler.BadHours) else "Invalid request. The body is not JSON."
            return self.fail(400, message)
        async with locks.user_lock(user.id):  # one read-modify-write at a time (and not during a cull)
            spawner = user.spawners.get("")
            if locks.is_restarting(user.id) or (spawner is not None and spawner.pending):
                return self.fail(409, "Server is starting, stopping or restarting; try again when it is done")
            if spawner is None or not culler.is_running(spawner):
                return self.fail(409, "Server is not running")
            grant = culler.extend_spawner(spawner, self.ds_settings.culler, hours)
            info = culler.session_info(spawner, self.ds_settings.culler)
            settings = culler.effective(self.ds_settings.culler, spawner)
        message = grant.message(settings.max_extension_hours, settings.timeout_seconds)
        if grant.hours == 0:
            return self.fail(409, message)
        self.log.info("Session of %s extended by %d h (requested %d) by %s", user.name, grant.hours, hours,
                      self.current_user.name)
        self.write_json({"success": True, "message": message, "truncated": grant.truncated, "session_info": info})


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [
        (r"/api/users/([^/]+)/session-info", SessionInfoHandler),
        (r"/api/users/([^/]+)/extend-session", ExtendSessionHandler),
    ]
