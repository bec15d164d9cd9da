"""``GET /hub/settings``: the read-only settings table (:mod:`hub_extensions.settings_page` builds its rows)."""

from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from . import runtime, scopes
from .handler_base import needs_unfiltered_scope
from .settings import VALUES_PATH
from .settings_page import rows, sections, versions


class SettingsPageHandler(BaseHandler):
    """``GET /hub/settings``: the read-only settings table (``ds-settings.html``), for unfiltered ``admin:users``
    (the hub's whole configuration: a delegate's ``admin:users!group=x`` gets 403)."""

    @web.authenticated
    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self) -> None:
        rt = runtime.of(self)
        html = await self.render_template(
            "ds-settings.html", ds_sections=sections(rows(rt.settings)), ds_versions=versions(rt.chart_version),
            ds_namespace=rt.namespace, ds_values_path=VALUES_PATH)
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/settings", SettingsPageHandler)]
