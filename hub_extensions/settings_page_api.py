"""``GET /hub/settings``: the read-only settings table (:mod:`hub_extensions.settings_page` builds its rows)."""

from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from . import scopes
from .handler_base import needs_unfiltered_scope
from .settings import VALUES_PATH, Settings
from .settings_page import rows, sections, versions

INFO_SETTING = "jupyterhub_ds_info"  # tornado setting: {"chart_version", "namespace"} known at start


class SettingsPageHandler(BaseHandler):
    """``GET /hub/settings``: the read-only settings table (``ds-settings.html``), for unfiltered ``admin:users``
    (the hub's whole configuration: a delegate's ``admin:users!group=x`` gets 403)."""

    @web.authenticated
    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self) -> None:
        settings: Settings = self.settings["jupyterhub_ds"]
        info = self.settings.get(INFO_SETTING) or {}
        html = await self.render_template(
            "ds-settings.html", ds_sections=sections(rows(settings)), ds_versions=versions(info.get("chart_version")),
            ds_namespace=info.get("namespace") or "", ds_values_path=VALUES_PATH)
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/settings", SettingsPageHandler)]
