"""REST endpoints under ``/hub/api``: Manage Volumes, Restart Server, and volume adoption for admins.

Handlers stay thin: scope checks (JupyterHub's ``needs_scope``; XSRF is enforced by JupyterHub for
cookie-authenticated writes), argument checks, then a call into :mod:`hub_extensions.storage`.
Errors are JSON ``{"status": n, "message": "..."}`` (JupyterHub's ``APIHandler.write_error``).

Scopes (:mod:`hub_extensions.scopes`), each filtered to the target user: listing volumes needs
``custom:ds-volumes:read``, resetting them ``custom:ds-volumes:reset`` (every user holds both for
themselves; admins pass with ``admin:users``). Restarting needs ``servers``. Adoption needs
unfiltered ``admin:users``: it moves claims of ANOTHER owner key (a lost or deleted account's data) to the user,
so a delegate filtered to a group could otherwise hand any orphaned data to a member. A single-user server's
own token holds none of these.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub import orm
from jupyterhub.scopes import needs_scope
from tornado import web

from . import env_vars, k8s, locks, scopes, storage, trail
from .handler_base import DsAPIHandler, needs_unfiltered_scope
from .settings import Settings


class ManageVolumesHandler(DsAPIHandler):
    """``GET`` lists a user's volumes; ``DELETE`` with ``{"volumes": [...]}`` resets them."""

    @needs_scope(scopes.READ, scopes.ADMIN)
    async def get(self, user_name: str) -> None:
        require_storage(self.ds_settings)
        user, spawner = self.target(user_name)
        try:
            claims = await k8s.list_claims(spawner.namespace, storage.owner_selector(spawner.ds_owner))
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.write_json({
            "user": user.name,
            "server": server_state(spawner),
            "volumes": storage.volume_report(self.ds_settings.storage, claims),
        })

    @needs_scope(scopes.RESET, scopes.ADMIN)
    async def delete(self, user_name: str) -> None:
        require_storage(self.ds_settings)
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
        record_reset(spawner.namespace, user.name, self.current_user.name, result)
        self.write_json(result.as_json(), result.status)


def record_reset(namespace: str, user: str, by: str, result: storage.ResetResult) -> None:
    """The reset in the event trail and, per deleted claim, a ``VolumeReset`` Kubernetes Event."""
    if not result.reset:
        return
    trail.record("volume-reset", user, "", f"reset {', '.join(result.reset)} (by {by})",
                 claims={r["claim"]: r["volume"] for r in result.results if r["result"] == storage.RESET},
                 namespace=namespace, volumes=result.reset, by=by)


class AdoptableVolumesHandler(DsAPIHandler):
    """``GET``: claims recorded for this user name under another owner key (e.g. after a lost hub database)."""

    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self, user_name: str) -> None:
        require_storage(self.ds_settings)
        user, spawner = self.target(user_name)
        current = current_owner(spawner)
        try:
            groups = await storage.list_adoptable(spawner.namespace, user.name, current)
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        self.write_json({"user": user.name, "current_owner": current, "adoptable": groups})


class AdoptVolumesHandler(DsAPIHandler):
    """``POST {"owner": "<key>"[, "current": "orphan"]}``: make an existing owner key the user's own.

    Explicit and audited: an admin names the key (never matched by user name alone), nothing is deleted,
    the claims record who adopted them and when, and the hub log says so at warning level.
    """

    @needs_unfiltered_scope(scopes.ADMIN)
    async def post(self, user_name: str) -> None:
        require_storage(self.ds_settings)
        user, spawner = self.target(user_name)
        try:
            owner, current_choice = storage.check_adopt_request(self.get_json_body())
        except storage.StorageError as e:
            raise web.HTTPError(e.status, e.message) from e
        admin = self.current_user.name
        async with locks.user_lock(user.id):  # a start (claim ensure) cannot run meanwhile
            if user.active or locks.is_restarting(user.id):
                raise web.HTTPError(409, "All of the user's servers must be stopped before adopting volumes")
            holder = owner_key_holder(self.db, owner)
            if holder is not None and holder != user.id:
                raise web.HTTPError(409, f"Owner key {owner} belongs to another account of this hub")
            previous = current_owner(spawner)
            try:
                result = await storage.adopt_claims(spawner.namespace, user.name, owner, previous, current_choice,
                                                    admin)
                result["variables_moved"] = await env_vars.follow_owner_key(spawner.namespace, previous, owner)
            except storage.StorageError as e:
                raise web.HTTPError(e.status, e.message) from e
            except k8s.API_ERRORS as e:
                raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
            set_owner_key(spawner, owner)
        self.log.warning("Volume adoption: %s made owner key %s the key of user %s (was %s); claims %s; "
                         "orphaned %s", admin, owner, user.name, previous, ", ".join(result["adopted_claims"]),
                         ", ".join(result["orphaned_claims"]) or "none")
        self.write_json({"status": 200, "user": user.name, "adopted_by": admin,
                              "message": f"Adopted {len(result['adopted_claims'])} volume(s) of owner key {owner}",
                              **result})


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
            spawner = user.spawners[""]  # JupyterHub drops a stopped server's Spawner: the start is a new one's
            spawner.ds_restart = True
            try:
                await self.spawn_single_user(user, "")
            except RuntimeError as e:  # started meanwhile from another tab
                spawner.ds_restart = False
                raise web.HTTPError(409, f"Server was stopped but not restarted: {e}") from e
        if spawner.ready:
            self.write_json({"status": 200, "message": "Server restarted", "server": "running"})
        else:
            self.write_json({"status": 202, "message": "Server is restarting", "server": "pending"}, 202)


PENDING = {"spawn": "starting", "stop": "stopping", "check": "being checked"}


def require_storage(settings: Settings) -> None:
    if not settings.storage.enabled:
        raise web.HTTPError(404, "Per-user volumes are not managed by this hub (storage.enabled is false)")


def current_owner(spawner: Any) -> str | None:
    """The user's owner key as stored, without creating one (the spawner's ``ds_owner`` would)."""
    return spawner.get_state().get("ds_owner")


def set_owner_key(spawner: Any, owner: str) -> None:
    """Make ``owner`` the user's key in the default server's state and persist it now.

    Through the spawner's own state round trip (``load_state`` of the full current state), so nothing
    else of the state changes.
    """
    spawner.load_state({**spawner.get_state(), "ds_owner": owner})
    spawner.orm_spawner.state = spawner.get_state()
    spawner.db.commit()


def owner_key_holder(db: Any, owner: str) -> int | None:
    """The id of the hub user whose default server's state holds ``owner``, if any."""
    for row in db.query(orm.Spawner).filter(orm.Spawner.name == ""):
        if (row.state or {}).get("ds_owner") == owner:
            return row.user_id
    return None


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
        (r"/api/users/([^/]+)/adoptable-volumes", AdoptableVolumesHandler),
        (r"/api/users/([^/]+)/adopt-volumes", AdoptVolumesHandler),
    ]
