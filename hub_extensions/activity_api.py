"""``/hub/api/activity`` (upstream's shapes) and the ``/hub/activity`` page: thin handlers over :mod:`.activity`.

Scopes (:mod:`hub_extensions.scopes`): reading needs ``custom:ds-activity:read``, reset and sample need
``custom:ds-activity:admin``; admins pass with ``admin:users``. Every one of them unfiltered: the monitor is
about every user, so a grant filtered to a group (``...!group=x``) gets 403 too. Others get JSON 403 (JupyterHub's
``APIHandler.write_error``). XSRF is JupyterHub's for cookie-authenticated POSTs. A metrics API that is down
is not an error here: the answer carries nulls and ``metrics_note``.
"""

from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from . import activity, runtime, scopes
from .handler_base import DsAPIHandler, holds_unfiltered, needs_unfiltered_scope
from .settings import Settings


def _monitor(settings: Settings) -> activity.ActivityMonitor:
    """The hub's running monitor, or the JSON error that says why there is none."""
    if not settings.activity.enabled:
        raise web.HTTPError(404, "The activity monitor is off (custom.ds.activity.enabled is false)")
    mon = activity.monitor()
    if mon is None:
        raise web.HTTPError(503, "The activity monitor is starting; try again shortly")
    return mon


class ActivityHandler(DsAPIHandler):
    """``GET``: one row per user (status, usage, score, time remaining, volumes)."""

    @needs_unfiltered_scope(scopes.ACTIVITY_READ, scopes.ADMIN)
    async def get(self) -> None:
        self.write_json(await _monitor(self.ds_settings).report_json(self.users))


class ResetHandler(DsAPIHandler):
    """``POST``: delete every sample and score; ``{success, deleted}``."""

    @needs_unfiltered_scope(scopes.ACTIVITY_ADMIN, scopes.ADMIN)
    async def post(self) -> None:
        mon = _monitor(self.ds_settings)
        if not await mon.ensure_ready():
            raise web.HTTPError(503, f"Activity database not available: {mon.db_error}")
        deleted = await mon.reset()
        self.log.info("Activity samples reset by %s (%d deleted)", self.current_user.name, deleted)
        self.write_json({"success": True, "deleted": deleted})


class SampleHandler(DsAPIHandler):
    """``POST``: record one sample for every user now (the sampler's own tick); ``{success, total, ...}``."""

    @needs_unfiltered_scope(scopes.ACTIVITY_ADMIN, scopes.ADMIN)
    async def post(self) -> None:
        mon = _monitor(self.ds_settings)
        if not await mon.ensure_ready():
            raise web.HTTPError(503, f"Activity database not available: {mon.db_error}")
        result = await mon.sample()
        self.write_json(result.as_json())


class ActivityPageHandler(BaseHandler):
    """``GET /hub/activity``: the table (``ds-activity.html``, ``activity.js``) filled from the API."""

    @web.authenticated
    @needs_unfiltered_scope(scopes.ACTIVITY_READ, scopes.ADMIN)
    async def get(self) -> None:
        settings = runtime.of(self).settings
        if not settings.activity.enabled:
            raise web.HTTPError(404, "The activity monitor is off")
        can_reset = holds_unfiltered(self, (scopes.ACTIVITY_ADMIN, scopes.ADMIN))
        html = await self.render_template("ds-activity.html", ds_activity={
            "refreshSeconds": max(settings.activity.resources_update_seconds, 5),
            "targetHours": settings.activity.target_hours,
            "sampleIntervalSeconds": settings.activity.sample_interval_seconds,
            "canReset": can_reset,
        })
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [
        (r"/api/activity", ActivityHandler),
        (r"/api/activity/reset", ResetHandler),
        (r"/api/activity/sample", SampleHandler),
        (r"/activity", ActivityPageHandler),
    ]
