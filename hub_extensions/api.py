"""REST endpoints under ``/hub/api``: Manage Volumes and Restart Server.

Handlers stay thin: scope checks (JupyterHub's ``needs_scope``; XSRF is enforced by JupyterHub for
cookie-authenticated writes), argument checks, then a call into :mod:`hub_extensions.storage`.
Errors are JSON ``{"status": n, "message": "..."}`` (JupyterHub's ``APIHandler.write_error``).

Scopes: reading volumes needs ``read:servers``; resetting them or restarting needs ``servers``,
both filtered to the user (so a user's own role ``self`` allows it, admins have ``admin:servers``,
and a single-user server's own token, which holds neither, cannot reset anything).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from . import k8s, locks, storage
from .settings import Settings


class DsAPIHandler(APIHandler):
    @property
    def ds_settings(self) -> Settings:
        return self.settings["jupyterhub_ds"]

    def target(self, user_name: str) -> tuple[Any, Any]:
        """The user and their default spawner, or 404."""
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"No such user: {user_name}")
        return user, user.spawners[""]

    def write_json(self, status: int, payload: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))


class ManageVolumesHandler(DsAPIHandler):
    """``GET`` lists a user's volumes; ``DELETE`` with ``{"volumes": [...]}`` resets them."""

    def _require_storage(self) -> None:
        if not self.ds_settings.storage.enabled:
            raise web.HTTPError(404, "Per-user volumes are not managed by this hub (storage.enabled is false)")

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        self._require_storage()
        user, spawner = self.target(user_name)
        try:
            claims = await k8s.list_claims(spawner.namespace, storage.owner_selector(spawner.ds_owner))
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.write_json(200, {
            "user": user.name,
            "server": server_state(spawner),
            "volumes": storage.volume_report(self.ds_settings.storage, claims),
        })

    @needs_scope("servers")
    async def delete(self, user_name: str) -> None:
        self._require_storage()
        user, spawner = self.target(user_name)
        try:
            volumes = storage.check_reset_request(self.ds_settings.storage, self.get_json_body())
        except storage.StorageError as e:
            raise web.HTTPError(e.status, e.message) from e
        async with locks.user_lock(user.id):
            # every server of the user mounts the claims (named servers too)
            if user.active or locks.is_restarting(user.id):
                raise web.HTTPError(409, "Server must be stopped before resetting volumes")
            try:
                for server in list(user.spawners.values()):
                    if await k8s.pod_exists(server.namespace, server.pod_name):
                        raise web.HTTPError(409, "The server's pod is still terminating; try again shortly")
                result = await storage.reset_claims(spawner.namespace, self.ds_settings.storage,
                                                    spawner.ds_owner, volumes,
                                                    self.ds_settings.storage.reset_timeout_seconds)
            except k8s.API_ERRORS as e:
                raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.log.info("Volume reset for %s by %s: %s", user.name, self.current_user.name, result.as_json())
        self.write_json(result.status, result.as_json())


class RestartServerHandler(DsAPIHandler):
    """``POST`` stops and starts the user's server through JupyterHub: a new pod, the same claims."""

    @needs_scope("servers")
    async def post(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        if spawner.pending:
            raise web.HTTPError(409, f"Server is {PENDING[spawner.pending]}; try again when it is done")
        if not spawner.active:
            raise web.HTTPError(409, "Server is not running")
        with locks.restarting(user.id):  # a volume reset must not slip in between stop and start
            await self.stop_single_user(user, "")
            await wait_not_pending(spawner, spawner.start_timeout)  # KubeSpawner waits this long for a pod to go
            if spawner.pending:
                raise web.HTTPError(503, "Server did not stop in time; it will be stopped in the background")
            try:
                await self.spawn_single_user(user, "")
            except RuntimeError as e:  # started meanwhile from another tab
                raise web.HTTPError(409, f"Server was stopped but not restarted: {e}") from e
        if spawner.ready:
            self.write_json(200, {"status": 200, "message": "Server restarted", "server": "running"})
        else:
            self.write_json(202, {"status": 202, "message": "Server is restarting", "server": "pending"})


PENDING = {"spawn": "starting", "stop": "stopping", "check": "being checked"}


def server_state(spawner: Any) -> str:
    if spawner.pending:
        return "pending"
    return "running" if spawner.active else "stopped"


async def wait_not_pending(spawner: Any, within: float) -> None:
    deadline = time.monotonic() + within
    # JupyterHub exposes no event for "stop finished"; poll its pending flag
    while spawner.pending and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [
        (r"/api/users/([^/]+)/manage-volumes", ManageVolumesHandler),
        (r"/api/users/([^/]+)/restart-server", RestartServerHandler),
        (r"/ds-static/(.*)", web.StaticFileHandler, {"path": os.path.join(os.path.dirname(__file__), "static")}),
    ]
