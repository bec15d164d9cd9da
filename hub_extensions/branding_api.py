"""``GET /hub/ds-branding/<name>``: the branding files (:mod:`hub_extensions.branding`), from memory.

For everyone (the login page shows the logo too); no request touches the disk.
"""

from __future__ import annotations

from collections.abc import Mapping

from tornado import web

from .branding import ROUTE_PREFIX, Branding, BrandingFile

# served files come from admins, but an SVG opened directly must not run script on the hub's origin
_FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


class BrandingFileHandler(web.RequestHandler):
    """``GET /hub/ds-branding/<name>``: a branding file from memory, for everyone (login page too)."""

    def initialize(self, files: Mapping[str, BrandingFile]) -> None:
        self.files = files

    def get(self, name: str) -> None:
        item = self.files.get(name)
        if item is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", item.content_type)
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", _FILE_CSP)
        self.finish(item.content)

    def head(self, name: str) -> None:
        if name not in self.files:
            raise web.HTTPError(404)
        self.set_header("Content-Type", self.files[name].content_type)
        self.finish()


def handlers(branding: Branding) -> list[tuple[str, type, dict]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(rf"/{ROUTE_PREFIX}/([^/]+)", BrandingFileHandler, {"files": branding.files})]
