"""Our JupyterHub scopes: who may see and who may destroy a user's volumes.

JupyterHub's ``servers`` scope means "start and stop servers"; a role holding it (an instructor's
``servers!group=x``, a service) must not be able to wipe data. So Manage Volumes checks its own scopes:

- ``custom:ds-volumes:read``: list a user's volumes (claims, sizes, status);
- ``custom:ds-volumes:reset``: delete (reset) them; implies ``read``.

Both are filterable like any scope (``custom:ds-volumes:reset!group=course-a``). Every user gets them
for themselves (the ``user`` role gains ``...!user``). Admins get them through ``admin:users``:
JupyterHub refuses to change the ``admin`` role's scopes, and whoever may delete a user (``admin:users``
holds ``delete:users``) may destroy that user's data anyway. The handlers therefore accept either scope
(``needs_scope`` with several scopes allows any one of them).

``custom:ds-notifications:send`` lets a role broadcast notifications into running JupyterLab servers
(:mod:`hub_extensions.notifications`); filtered (``...!group=course-a``) it reaches only those users.
Admins pass with ``admin:users``. Nobody holds it by default.

``custom:ds-activity:read`` lets a role see the activity monitor (``/hub/activity``, ``GET /hub/api/activity``:
every user's status, usage, score and volumes); ``custom:ds-activity:admin`` also lets it reset the samples
and record one (``POST /hub/api/activity/reset|sample``) and implies ``read``. Unfiltered only (the page is
about all users). Admins pass with ``admin:users``; nobody holds them by default.
``/hub/api/ds/cluster`` (the cluster capacity panel) takes ``custom:ds-activity:read`` too.
``custom:ds-env:read`` / ``custom:ds-env:write`` (implies read): a user's own environment variables
(:mod:`hub_extensions.env_vars`); every user holds ``write`` for themselves. ``admin:users`` reads the rules only
(no variable): a variable runs code as the user at their next start, more than ``admin:users`` gives.
``custom:ds-health:read`` lets a monitoring service read the details of ``/hub/api/ds/health``
(checks, counts) without seeing any user's activity; admins pass with ``admin:users``.

Filtered grants (``<scope>!group=x``, ``<scope>!user=y``) stay filtered. JupyterHub's ``needs_scope`` on a
method without a user argument lets any filtered grant through, so each endpoint is one of two kinds:

- per user (``/api/users/<name>/...``): ``needs_scope`` checks the grant against ``<name>``; a user the grant
  does not cover gets JupyterHub's 404 ("No access to resources or resources not found": the same answer as
  for a user that does not exist);
- hub-wide (about every user, or about data of no user): ``handlers.needs_unfiltered_scope``; a filtered
  grant gets 403 naming the scopes it needs unfiltered.

Each endpoint (under ``/hub``), method: scopes accepted (any one); what a filtered grant gets; status codes.
``read``/``reset``/``activity:*``/``health``/``notify`` stand for ``custom:ds-volumes:read`` and the others above.

Per user (a filtered grant answers for the covered users only; others get 404):

- ``GET /api/users/<name>/manage-volumes``: ``read``, ``admin:users``; 200 403 404 503
- ``DELETE /api/users/<name>/manage-volumes``: ``reset``, ``admin:users``; 200 207 400 403 404 409 503
- ``POST /api/users/<name>/restart-server``: ``servers``; 200 202 403 404 409 503
- ``GET /api/users/<name>/session-info``: ``read:servers``; 200 403 404
- ``POST /api/users/<name>/extend-session``: ``servers``; 200 400 403 404 409
- ``GET /api/users/<name>/env-vars``: ``env:read``, ``admin:users``; variables withheld without write; 200 403 404 503
- ``PUT /api/users/<name>/env-vars``: ``env:write``; 200 400 403 404 413 429 503
- ``GET /api/users/<name>/dashboard``: ``read:servers`` (volumes as manage-volumes GET); 200 403 404
- ``GET /api/notifications/active-servers``: ``notify``, ``admin:users``; lists covered users' servers; 200 403
- ``POST /api/notifications/broadcast``: ``notify``, ``admin:users``; reaches covered users only; 200 400 403
- ``GET /notifications`` (page): ``notify``, ``admin:users``; the form; 200 302 403

Hub-wide (unfiltered only; a filtered grant gets 403 naming the scopes, or, on a ``<name>`` route for a user it
does not cover, JupyterHub's 404 first):

- ``GET /api/users/<name>/adoptable-volumes``, ``POST .../adopt-volumes``: ``admin:users``; 200 400 403 404 409 503
- ``GET /api/ds/events``, ``DELETE /api/ds/events``: ``admin:users``; 200 400 403
- ``GET /api/activity``: ``activity:read``, ``admin:users``; 200 403 404 503
- ``POST /api/activity/reset``, ``POST /api/activity/sample``: ``activity:admin``, ``admin:users``; 200 403 404 503
- ``GET /activity`` (page): ``activity:read``, ``admin:users``; 200 302 403 404
- ``GET /settings`` (page): ``admin:users``; 200 302 403
- ``GET /api/ds/cluster``: ``activity:read``, ``admin:users``; 200 403 503
- ``GET /api/ds/health``: anyone gets ``{"status": "ok"}``; the details need ``admin:users``, ``activity:read``
  or ``health`` unfiltered (a filtered grant gets ``{"status": "ok"}``); 200

Public files, no scope: ``GET /ds-static/*``, ``/ds-branding/*``, ``/ds-lab-favicon/*``; 200 404.

Adoption is hub-wide although it names a user: it moves the claims of ANOTHER owner key (a lost or deleted
account's data) to the user. The trail and the activity monitor could in principle answer for the covered users
only, but their counts, totals and reset act on everyone; a delegate reads a member's state through the per-user
endpoints instead. Pages answer JupyterHub's HTML 403 page, API routes JSON ``{"status", "message"}``.

The scopes are defined here at import, before any handler is decorated (``needs_scope`` rejects unknown
scopes when it decorates), and again by JupyterHub from ``c.JupyterHub.custom_scopes`` with the same
definitions (JupyterHub accepts an identical redefinition).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.scopes import define_custom_scopes
from traitlets.config import LazyConfigValue

READ = "custom:ds-volumes:read"
RESET = "custom:ds-volumes:reset"
NOTIFY = "custom:ds-notifications:send"
ACTIVITY_READ = "custom:ds-activity:read"
ACTIVITY_ADMIN = "custom:ds-activity:admin"
HEALTH_READ = "custom:ds-health:read"
ENV_READ = "custom:ds-env:read"
ENV_WRITE = "custom:ds-env:write"
ADMIN = "admin:users"  # what admins hold instead (JupyterHub's admin role cannot be extended)

CUSTOM_SCOPES: dict[str, dict[str, Any]] = {
    READ: {"description": "List a user's jupyterhub-ds volumes (claims, sizes, status)."},
    RESET: {"description": "Reset (delete, with all their files) a user's jupyterhub-ds volumes.",
            "subscopes": [READ]},
    NOTIFY: {"description": "Broadcast jupyterhub-ds notifications into users' running JupyterLab servers."},
    ACTIVITY_READ: {"description": "See the jupyterhub-ds activity monitor: every user's status, usage, score, "
                                   "volumes."},
    ACTIVITY_ADMIN: {"description": "Reset the jupyterhub-ds activity samples or record one now.",
                     "subscopes": [ACTIVITY_READ]},
    HEALTH_READ: {"description": "Read the details of the jupyterhub-ds health endpoint (versions, checks, counts)."},
    ENV_READ: {"description": "See the rules for a user's own environment variables (the variables themselves "
                              "need write)."},
    ENV_WRITE: {"description": "Replace a user's own environment variables.", "subscopes": [ENV_READ]},
}

# what the default `user` role gains: each user may read and reset their own volumes, and set their own variables
USER_ROLE_SCOPES = [f"{READ}!user", f"{RESET}!user", f"{ENV_WRITE}!user"]

define_custom_scopes(CUSTOM_SCOPES)


def _config_list(value: Any) -> list[dict[str, Any]]:
    """A ``load_roles`` value as a plain list, whether assigned or built with ``.append``/``.extend``."""
    if isinstance(value, LazyConfigValue):
        return list(value.get_value([]))
    return list(value or [])


def merged_roles(load_roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``load_roles`` with our scopes added to the ``user`` role, creating that entry if needed.

    A ``user`` entry configured elsewhere keeps its scopes (``self`` when it named none, as JupyterHub's
    default does) and its members; nothing is assigned to anyone by us.
    """
    roles = [dict(r) for r in load_roles]
    user = next((r for r in roles if r.get("name") == "user"), None)
    if user is None:
        user = {"name": "user", "description": "Standard user privileges", "scopes": ["self"]}
        roles.append(user)
    scopes = list(user.get("scopes", ["self"]))
    user["scopes"] = scopes + [s for s in USER_ROLE_SCOPES if s not in scopes]
    return roles


def register(c: Any) -> None:
    """Define the custom scopes and grant them to the ``user`` role in the JupyterHub config ``c``."""
    custom = c.JupyterHub.get("custom_scopes", {})
    c.JupyterHub.custom_scopes = {**(custom.get_value({}) if isinstance(custom, LazyConfigValue) else custom),
                                  **CUSTOM_SCOPES}
    c.JupyterHub.load_roles = merged_roles(_config_list(c.JupyterHub.get("load_roles", [])))
