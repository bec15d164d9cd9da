"""``/hub/api/ds/cluster``: a thin handler over :mod:`.capacity` (the cluster panel).

Scopes: ``admin:users`` or ``custom:ds-activity:read`` (the activity page's scopes), unfiltered, since its figures
are cluster-wide. Errors are JSON ``{"status", "message"}``.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from . import capacity, k8s, runtime, scopes
from .handler_base import DsAPIHandler, needs_unfiltered_scope

CLUSTER_SCOPES = (scopes.ADMIN, scopes.ACTIVITY_READ)


def refresh_seconds(settings: Any) -> float:
    """The activity monitor's ``resourcesUpdateSeconds`` when those settings exist, else our default."""
    activity = getattr(settings, "activity", None)
    return float(getattr(activity, "resources_update_seconds", capacity.CACHE_SECONDS))


class ClusterHandler(DsAPIHandler):
    """``GET``: nodes with allocatable, requested and used CPU/memory/GPUs (cached, shared by every tab)."""

    @needs_unfiltered_scope(*CLUSTER_SCOPES)
    async def get(self) -> None:
        from kubespawner import KubeSpawner  # its reflectors dict is shared by every subclass

        rt = runtime.of(self)
        cache = capacity.cache(KubeSpawner, rt.namespace, rt.settings.gpu.resource, refresh_seconds(rt.settings))
        try:
            answer = await cache.get()
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.write_json(answer)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/api/ds/cluster", ClusterHandler)]
