"""``GET /hub/api/users/<name>/effective-grants``: what the user's group policies give (:mod:`.group_policies`).

``read:servers`` on that user, as the dashboard: the user for themselves, admins for anyone, a filtered grant only
for the users it covers (JSON 404 for others, as JupyterHub answers), 403 without the scope. What a grant filtered
to a group does not cover stays out: the user's groups need ``read:users:groups``, and environment values (a policy
may carry a key) are shown only to the user and to holders of ``admin:users`` on them. Memory only: the policies,
the user's groups and the pod KubeSpawner's reflector holds; no API call.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.scopes import needs_scope

from . import docker_groups, gpu, group_policies, k8s
from .handler_base import DsAPIHandler, Utf8JsonBody


class EffectiveGrantsHandler(DsAPIHandler):
    """``GET``: ``{"user", "groups", "grants": [{key, label, value, from, in_pod}]}``."""

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        settings = self.ds_settings
        groups = sorted(docker_groups.group_names(user))
        grants = group_policies.user_grants(settings, groups, k8s.reflected_pod(spawner), gpu.auto_answer(settings.gpu))
        self.write_json({"user": user.name, "groups": groups if self.covers(user, "read:users:groups") else None,
                         "grants": visible(self, user, grants)})


def visible(handler: DsAPIHandler, user: Any, grants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grants as this caller may see them: environment values only for the user and their admins."""
    caller = handler.current_user
    # a service may carry a user's name: only the user themselves (kind "user") counts as them
    if (getattr(caller, "kind", "user") == "user" and caller.name == user.name) or handler.covers(user, "admin:users"):
        return grants
    return [{**g, "value": "(set)"} if g["key"].startswith("env.") else g for g in grants]


class ProfileCheckedServerAPIHandler(Utf8JsonBody, UserServerAPIHandler):
    """JupyterHub's ``POST /hub/api/users/<name>/server`` (and ``servers/<name>``), refusing a profile the user's
    group policies do not allow with 403 before the start begins. Z2JH answers every start at once
    (``slow_spawn_timeout`` 0), so a refusal inside the start would reach the caller as a 202."""

    async def spawn_single_user(self, user: Any, server_name: str = "", options: Any = None) -> Any:
        check = getattr(user.spawners[server_name], "ds_check_profile", None)  # made by post's get_spawner
        if check is not None:
            await check(options if isinstance(options, dict) else {})
        return await super().spawn_single_user(user, server_name, options=options)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/api/users/([^/]+)/effective-grants", EffectiveGrantsHandler)]


def server_routes() -> list[tuple[str, type]]:
    """JupyterHub's start routes with the profile check, served ahead of JupyterHub's (``routes_ahead``)."""
    return [(r"/api/users/([^/]+)/server", ProfileCheckedServerAPIHandler),
            (r"/api/users/([^/]+)/servers/([^/]*)", ProfileCheckedServerAPIHandler)]
