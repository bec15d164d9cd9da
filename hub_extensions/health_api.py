"""``/hub/api/ds/health``: a thin handler over :mod:`.health`.

It answers everyone with ``{"status": "ok"}`` and adds the details for ``admin:users``, ``custom:ds-activity:read``
or ``custom:ds-health:read`` (unfiltered). Errors are JSON ``{"status", "message"}``.
"""

from __future__ import annotations

import jupyterhub

from . import __version__, gpu, health, scopes
from .handler_base import DsAPIHandler

HEALTH_SCOPES = (scopes.ADMIN, scopes.ACTIVITY_READ, scopes.HEALTH_READ)


class HealthHandler(DsAPIHandler):
    """``GET``: ``{"status": "ok"}`` for anyone; versions, checks and counts for holders of the scopes."""

    async def get(self) -> None:
        if not self.holds_unfiltered(HEALTH_SCOPES):
            self.write_json({"status": "ok"})
            return
        self.write_json(await health.details(self.db.get_bind(), self.users.values(), __version__,
                                             jupyterhub.__version__,
                                             gpu=gpu.status(self.ds_settings.gpu)))


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``); not ``/health``, which JupyterHub owns."""
    return [(r"/api/ds/health", HealthHandler)]
