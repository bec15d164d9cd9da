"""jupyterhub-ds hub extensions on top of Z2JH's KubeSpawner, wired by one call: :func:`configure` (``config``).

One naming rule: ``<feature>.py`` holds the logic, ``<feature>_api.py`` its handlers (thin, over the logic).

Features and their routes:
- `storage`: per-user claims, reset, restart, adoption (``storage_api``); `docker_groups` and `gpu`: what group
  membership and GPUs patch into the pod, applied by ``spawner`` (``DsKubeSpawner``) through ``objects``;
  `labenv`: the variables the lab image reads; `group_policies`: what each group's policy puts in the pod, and
  the effective grants (``group_policies_api``); `env_vars`: each user's own environment variables, in a Secret
  of theirs (``env_vars_api``).
- `accounts` (``DsNativeAuthenticator``), `passwords`, `lockout`, `client_address`: accounts, generated passwords,
  the login lockout and the sign-up limit (``accounts_api``, `signups`: ``signups_api``).
- `culler`: idle culling with session extension (``culler_api``); `notifications`: broadcast into JupyterLab
  (``notifications_api``).
- `activity` (``activity_usage``, ``activity_store``, ``activity_volumes``): the activity monitor
  (``activity_api``); `capacity`: the cluster panel (``capacity_api``); `health` (``health_api``).
- `dashboard` (reads pods through ``pod_status``): the home page (``dashboard_api``); `settings_page`
  (``settings_page_api``); `branding` (``branding_api``), `lab_favicon` (``lab_favicon_api``); `static`: our
  scripts and styles (``static_api``); `trail`: the event trail (``trail_api``), mirrored by ``kube_events``.
- `last_activity`: JupyterHub's last-activity pass in batches (no stall per running server).
- Shared: ``runtime`` (the one runtime object every feature is handed), ``settings`` (+ ``settings_schema``),
  ``k8s`` (the one Kubernetes access layer and its one TTL cache), ``scopes``, ``locks``, ``handler_base``.
"""

__version__ = "0.1.0"

from .config import configure

__all__ = ["__version__", "configure"]
