"""``GET /hub/ds-lab-favicon/<the lab's favicon path>``: the branding favicon inside JupyterLab.

The proxy routes that send JupyterLab's favicon requests here are :mod:`hub_extensions.lab_favicon`'s.
"""

from __future__ import annotations

from tornado import web

from .branding import Branding, BrandingFile
from .lab_favicon import HANDLER_PREFIX


class LabFaviconHandler(web.RequestHandler):
    """``GET /hub/ds-lab-favicon/<the lab's favicon path>``: the branding favicon (no login: it is public)."""

    def initialize(self, file: BrandingFile | None, url: str | None) -> None:
        self.file = file
        self.url = url

    def get(self, _path: str) -> None:
        if self.url:
            self.redirect(self.url)
            return
        if self.file is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", self.file.content_type)
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(self.file.content)


def handlers(brand: Branding) -> list[tuple[str, type, dict]]:
    """Routes relative to the hub prefix; none without a branding favicon."""
    favicon = brand.assets.get("favicon")
    if favicon is None:
        return []
    return [(rf"/{HANDLER_PREFIX}/(.*)", LabFaviconHandler,
             {"file": brand.files.get(favicon.file) if favicon.file else None, "url": favicon.url})]
