"""``GET /hub/api/ds/events`` lists the event trail (:mod:`hub_extensions.trail`), ``DELETE`` clears it.

Both need unfiltered ``admin:users`` (a delegate's ``admin:users!group=x`` does not read or clear other users'
events). Filters: ``user``, ``kind``, ``since``, ``limit``.
"""

from __future__ import annotations

import time

from tornado import web

from . import scopes, trail
from .handler_base import DsAPIHandler, needs_unfiltered_scope


class EventsHandler(DsAPIHandler):
    """``GET`` lists the trail, ``DELETE`` clears it; both for unfiltered ``admin:users`` only."""

    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self) -> None:
        try:
            limit = int(self.get_argument("limit", "100"))
            events = trail.select(trail._events, self.get_argument("user", None), self.get_argument("kind", None),
                            self.get_argument("since", None), limit)
        except (trail.BadFilter, ValueError) as e:
            message = str(e) if isinstance(e, trail.BadFilter) else "limit: expected an integer"
            raise web.HTTPError(400, message) from e
        self.write_json({"events": events, "total": len(trail._events), "capacity": trail.SIZE, "now": time.time()})

    @needs_unfiltered_scope(scopes.ADMIN)
    async def delete(self) -> None:
        n = trail.clear()
        self.log.info("Event trail cleared by %s (%d events)", self.current_user.name, n)
        self.write_json({"status": 200, "message": f"Cleared {n} event(s)", "deleted": n})


def handlers() -> list[tuple[str, type]]:
    return [(r"/api/ds/events", EventsHandler)]
