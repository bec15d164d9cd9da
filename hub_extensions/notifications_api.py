"""``/hub/api/notifications/*`` and the ``/hub/notifications`` page: thin handlers over :mod:`.notifications`.

Both API routes need ``custom:ds-notifications:send`` or ``admin:users`` (admins); a filtered scope
(``custom:ds-notifications:send!group=x``) lists and reaches only the users it covers. Errors are JSON
``{"status", "message"}`` (JupyterHub's ``APIHandler.write_error``); XSRF is JupyterHub's.
"""

from __future__ import annotations

from typing import Any

from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from . import notifications, scopes
from .handler_base import DsAPIHandler, covered_groups


class NotificationsAPIHandler(DsAPIHandler):
    def may_notify(self, user: Any) -> bool:
        return self.covers(user, scopes.NOTIFY, scopes.ADMIN)


class ActiveServersHandler(NotificationsAPIHandler):
    """``GET``: every ready server the caller may notify, named servers included."""

    @needs_scope(scopes.NOTIFY, scopes.ADMIN)
    async def get(self) -> None:
        servers = [notifications.server_info(u, name, sp)
                   for u, name, sp in notifications.running_servers(self.users.values()) if self.may_notify(u)]
        self.write_json({"servers": servers})


class BroadcastHandler(NotificationsAPIHandler):
    """``POST {message, variant, autoClose, recipients?}``: deliver and answer per recipient."""

    @needs_scope(scopes.NOTIFY, scopes.ADMIN)
    async def post(self) -> None:
        try:
            broadcast = notifications.check_broadcast(self.get_json_body())
        except notifications.NotificationError as e:
            raise web.HTTPError(e.status, e.message) from e
        if broadcast.group is not None:
            covered = covered_groups(self, (scopes.NOTIFY, scopes.ADMIN))
            if covered is not None and broadcast.group not in covered:  # the same answer whether it exists or not
                raise web.HTTPError(403, f"Your grant does not cover the group {broadcast.group}")
            if orm.Group.find(self.db, broadcast.group) is None:
                raise web.HTTPError(400, f"No such group: {broadcast.group}")
        targets = notifications.select_targets(self.users.values(), broadcast, self.may_notify)
        result = await notifications.send(self.db, targets, broadcast)  # a token per delivery, deleted after
        for d in result["details"]:
            self.log.info("[Notification] %s/%s: %r (%s) - %s%s", d["username"], d["server_name"],
                          broadcast.message[:50], broadcast.variant, d["status"].upper(),
                          f": {d['error']}" if "error" in d else "")
        self.write_json(result)


class NotificationsPageHandler(BaseHandler):
    """``GET /hub/notifications``: the broadcast form (``ds-notifications.html``, ``notifications.js``)."""

    @web.authenticated
    @needs_scope(scopes.NOTIFY, scopes.ADMIN)
    async def get(self) -> None:
        covered = covered_groups(self, (scopes.NOTIFY, scopes.ADMIN))  # a delegate sees only the groups granted
        groups = sorted(name for (name,) in self.db.query(orm.Group.name) if covered is None or name in covered)
        html = await self.render_template("ds-notifications.html", variants=notifications.VARIANTS,
                                          max_message=notifications.MAX_MESSAGE, groups=groups)
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [
        (r"/api/notifications/active-servers", ActiveServersHandler),
        (r"/api/notifications/broadcast", BroadcastHandler),
        (r"/notifications", NotificationsPageHandler),
    ]
