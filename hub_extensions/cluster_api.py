"""``/hub/api/ds/cluster`` and ``/hub/api/ds/health``: thin handlers over :mod:`.capacity` and :mod:`.health`.

Scopes: the cluster panel needs ``admin:users`` or ``custom:ds-activity:read`` (the activity page's
scopes), unfiltered, since its figures are cluster-wide. The health endpoint answers everyone with
``{"status": "ok"}`` and adds the details for ``admin:users``, ``custom:ds-activity:read`` or
``custom:ds-health:read`` (unfiltered). Errors are JSON ``{"status", "message"}``.
"""

from __future__ import annotations

import os
from typing import Any

import jupyterhub
from tornado import web

from . import __version__, capacity, gpu, health, k8s, scopes
from .handlers import DsAPIHandler, needs_unfiltered_scope

CLUSTER_SCOPES = (scopes.ADMIN, scopes.ACTIVITY_READ)
HEALTH_SCOPES = (scopes.ADMIN, scopes.ACTIVITY_READ, scopes.HEALTH_READ)


def refresh_seconds(settings: Any) -> float:
    """The activity monitor's ``resourcesUpdateSeconds`` when those settings exist, else our default."""
    activity = getattr(settings, "activity", None)
    return float(getattr(activity, "resources_update_seconds", capacity.CACHE_SECONDS))


class ClusterHandler(DsAPIHandler):
    """``GET``: nodes with allocatable, requested and used CPU/memory/GPUs (cached, shared by every tab)."""

    @needs_unfiltered_scope(*CLUSTER_SCOPES)
    async def get(self) -> None:
        from kubespawner import KubeSpawner  # its reflectors dict is shared by every subclass

        ds = self.settings["jupyterhub_ds"]
        cache = capacity.cache(KubeSpawner, _namespace[0], ds.gpu.resource, refresh_seconds(ds))
        try:
            answer = await cache.get()
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.write_json(answer)


_namespace: list[str] = [os.environ.get("POD_NAMESPACE", "default")]


def use_namespace(namespace: str) -> None:
    """The namespace KubeSpawner starts servers in (``configure`` passes it from ``c.KubeSpawner.namespace``)."""
    _namespace[:] = [namespace]


class HealthHandler(DsAPIHandler):
    """``GET``: ``{"status": "ok"}`` for anyone; versions, checks and counts for holders of the scopes."""

    async def get(self) -> None:
        if not self.holds_unfiltered(HEALTH_SCOPES):
            self.write_json({"status": "ok"})
            return
        self.write_json(await health.details(self.db.get_bind(), self.users.values(), __version__,
                                             jupyterhub.__version__,
                                             gpu=gpu.status(self.settings["jupyterhub_ds"].gpu)))


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``); not ``/health``, which JupyterHub owns."""
    return [
        (r"/api/ds/cluster", ClusterHandler),
        (r"/api/ds/health", HealthHandler),
    ]
