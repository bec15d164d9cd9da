"""``GET/PUT /hub/api/users/<name>/env-vars``: a user's own environment variables (:mod:`.env_vars`).

Scopes ``custom:ds-env:read`` / ``custom:ds-env:write`` on that user (every user holds ``write`` for themselves; a
filtered grant answers for the users it covers, JSON 404 for others). ``admin:users`` reads the names only: the
values are keys of the user's, and a variable such as ``PYTHONPATH`` runs code as them at their next start, which
``admin:users`` (no ``servers``, no ``access:servers``) does not otherwise give. Values are only shown to a caller
who may change them. A ``GET`` never creates anything: a user without an owner key yet has no Secret. ``PUT``
replaces the whole set in one update of the user's Secret (nothing is written when the set is unchanged; at most
:data:`PUTS_PER_MINUTE` writes a minute per user); the trail records the names, never the values. Errors:
``{"status", "message"}``, plus ``code`` and ``rejected`` for a refused set (upstream's codes).
"""

from __future__ import annotations

from jupyterhub.scopes import needs_scope
from tornado import web

from . import env_vars, group_policies, k8s, scopes, trail
from .handler_base import DsAPIHandler
from .lockout import SlidingWindow

PUTS_PER_MINUTE = 10
# a loop of saves must not churn etcd, flood the trail or make the hub call the API server without end
_puts = SlidingWindow()


class EnvVarsHandler(DsAPIHandler):
    """``GET`` the set with the rules an editor needs; ``PUT {"env_vars": [...]}`` replaces it."""

    @needs_scope(scopes.ENV_READ, scopes.ADMIN)
    async def get(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        settings = self.ds_settings
        owner = spawner.ds_known_owner
        try:
            secret = await k8s.read_secret(spawner.namespace, env_vars.secret_name(owner)) if owner else None
        except k8s.API_ERRORS as e:
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        editable = settings.user_env.enabled and self.covers(user, scopes.ENV_WRITE)
        self.write_json(env_vars.answer(env_vars.from_secret(secret), group_policies.platform_env(settings),
                                        settings.user_env.enabled, editable))

    @needs_scope(scopes.ENV_WRITE)
    async def put(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        settings = self.ds_settings
        if not settings.user_env.enabled:
            raise web.HTTPError(403, "Per-user environment variables are turned off (custom.ds.userEnv.enabled)")
        if len(self.request.body or b"") > env_vars.MAX_BODY:
            raise web.HTTPError(413, f"A set of variables may take at most {env_vars.MAX_BODY} bytes")
        try:
            variables = env_vars.validate(self.get_json_body(), group_policies.platform_env(settings))
        except env_vars.EnvVarsError as e:
            self.write_json({"status": 400, "message": e.message, "code": e.code, "rejected": e.rejected}, 400)
            return
        # by owner key: a user id comes back when the newest account is deleted and another created (SQLite)
        if _puts.take(spawner.ds_owner, PUTS_PER_MINUTE):
            raise web.HTTPError(429, f"At most {PUTS_PER_MINUTE} changes a minute; try again shortly")
        try:
            stored = env_vars.from_secret(await k8s.read_secret(spawner.namespace,
                                                                env_vars.secret_name(spawner.ds_owner)))
            if stored == variables:
                self.write_json({"env_vars": [v.as_json() for v in variables]})
                return
            await k8s.put_secret(spawner.namespace, env_vars.secret_manifest(spawner.ds_owner, variables))
        except k8s.API_ERRORS as e:
            if isinstance(e, k8s.ApiException) and e.status == 422:  # what Kubernetes refuses beyond our rules
                raise web.HTTPError(400, f"Kubernetes refused the set: {k8s.describe(e)}") from e
            raise web.HTTPError(503, f"Kubernetes API unavailable: {k8s.describe(e)}") from e
        names = [v.name for v in variables]
        trail.record("env-vars", user.name, "", f"environment variables set by {self.current_user.name}: "
                     f"{', '.join(names) or 'none'} (applies at the next start)", names=names,
                     by=self.current_user.name)
        self.write_json({"env_vars": [v.as_json() for v in variables]})


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/api/users/([^/]+)/env-vars", EnvVarsHandler)]
