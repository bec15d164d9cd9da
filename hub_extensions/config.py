"""``configure(c)``: the single entry point, called from one ``hub.extraConfig`` snippet.

It reads ``custom.ds`` from Z2JH's values (or takes settings from the caller), validates them, and
registers everything: the spawner class (which carries the spawn-time policy), handlers, templates.
A wrong setting stops the hub at start with one line naming the key; nothing is half-configured.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import os
import sys
import typing
from collections.abc import Mapping
from typing import Any

import jupyterhub

from . import (
    __version__,
    branding,
    branding_api,
    culler,
    culler_api,
    docker_groups,
    gpu,
    k8s,
    notifications,
    scopes,
    static_api,
    storage_api,
    trail_api,
)
from .settings import Settings, SettingsError, load_settings

TEMPLATES_DIR = os.path.join(os.path.dirname(__file__), "templates")
log = logging.getLogger("JupyterHub.ds.config")  # a child of the hub's own logger: same handlers and level


def _values_from_z2jh() -> Mapping[str, Any] | None:
    try:
        from z2jh import get_config  # only present in Z2JH's hub pod
    except ImportError:
        return None
    # get_config returns a cached, shared dict: never hand it on mutable
    return copy.deepcopy(get_config("custom.ds", None))


def _z2jh_value(key: str) -> Any:
    """A value Z2JH's hub Secret carries besides ``custom`` (``Chart.Version``, ``Release.Namespace``)."""
    try:
        from z2jh import get_config
    except ImportError:
        return None
    return get_config(key, None)


def _stop(problem: str) -> typing.NoReturn:
    """Stop the hub at start with one line that names the key."""
    print(f"jupyterhub-ds: invalid setting: {problem}", file=sys.stderr)
    raise SystemExit(f"jupyterhub-ds: invalid setting: {problem}")


def freeze_gc_when_started(started: asyncio.Future) -> None:
    """Once the hub has started, move every object it holds into the garbage collector's permanent generation.

    A full collection scans every tracked object: with a hub's start-up objects (modules, ORM rows, spawners)
    that stalls the event loop for about 0.2 s whenever enough new objects pile up, as during a broadcast
    that answers 1,000 token checks. Frozen objects are never scanned again; they live as long as the hub anyway.
    """
    def freeze(_: asyncio.Future) -> None:
        gc.collect()
        gc.freeze()
        log.info("jupyterhub-ds: %d start-up objects frozen out of garbage collection", gc.get_freeze_count())

    started.add_done_callback(freeze)


def _hub_start_future() -> asyncio.Future | None:
    """The running hub's start future (JupyterHub 5.5 creates it before loading the config file), if any."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():  # configure called outside a hub (tests, schema tools)
        return None
    return getattr(JupyterHub.instance(), "_start_future", None)


def configure(c: Any, settings: Settings | Mapping[str, Any] | None = None) -> Settings:
    """Configure JupyterHub (``c``) for jupyterhub-ds and return the validated settings."""
    if not isinstance(settings, Settings):
        try:
            settings = load_settings(settings if settings is not None else _values_from_z2jh())
        except SettingsError as e:
            _stop(str(e))
    try:
        brand = branding.resolve(settings.branding)  # reads the branding files once, at start
    except SettingsError as e:
        _stop(str(e))

    from . import accounts  # imports NativeAuthenticator and bcrypt: keep them out of settings-only use
    from .spawner import DsKubeSpawner  # imports kubernetes_asyncio: keep it out of settings-only use

    # our API calls share KubeSpawner's client, configured from the same k8s_api_* traits
    k8s.use_kubespawner_settings(c.KubeSpawner.get("k8s_api_host", ""), c.KubeSpawner.get("k8s_api_ssl_ca_cert", ""),
                                 c.KubeSpawner.get("k8s_api_verify_ssl", None))
    c.JupyterHub.spawner_class = DsKubeSpawner
    # our spawn-time policy is DsKubeSpawner's own methods: pre_spawn_hook/modify_pod_hook stay the user's
    DsKubeSpawner.use_settings(settings, brand)
    if settings.storage.enabled:
        if c.KubeSpawner.get("storage_pvc_ensure"):
            _stop("jupyterhub.singleuser.storage.type: expected none while custom.ds.storage.enabled is true "
                  "(jupyterhub-ds manages the per-user claims), got dynamic")
        # our claims replace KubeSpawner's home claim, including its delete-on-user-delete logic
        c.KubeSpawner.delete_pvc = False

    docker_groups.load_groups(c, [*docker_groups.builtin_groups(settings.groups),
                               *([settings.gpu.group] if settings.gpu.group else [])])
    gpu.start_background(settings.gpu)
    if settings.culler.enabled and any(s.get("name") == "jupyterhub-idle-culler"
                                       for s in c.JupyterHub.get("services", [])):
        _stop("jupyterhub.cull.enabled: expected false while custom.ds.culler.enabled is true "
              "(two cullers; only ours honours session extensions), got true")
    culler.start_background(settings.culler)

    try:  # NativeAuthenticator configured: our subclass (first admin, generated passwords, renames)
        ds_accounts = accounts.configure(c, settings.accounts)
    except SettingsError as e:
        _stop(str(e))
    if ds_accounts:  # the lockout and the sign-up limit read X-Forwarded-For from the proxy pods only
        # the authenticator's routes: handed to it, so accounts never imports its API modules
        from . import accounts_api, client_address, signups_api

        accounts.DsNativeAuthenticator.ds_handlers = [*accounts_api.handlers(), *signups_api.handlers()]

        namespace = c.KubeSpawner.get("namespace", "") or os.environ.get("POD_NAMESPACE", "default")
        client_address.start_background(namespace)
    c.JupyterHub.extra_handlers.extend(storage_api.handlers())
    c.JupyterHub.extra_handlers.extend(static_api.handlers())
    scopes.register(c)  # custom:ds-volumes:* scopes, granted to the user role for themselves
    c.JupyterHub.extra_handlers.extend(culler_api.handlers())
    c.JupyterHub.extra_handlers.extend(trail_api.handlers())
    c.JupyterHub.extra_handlers.extend(branding_api.handlers(brand))
    notifications.register(c)  # the notifier service: no standing token, one per delivery for one server
    from . import notifications_api

    c.JupyterHub.extra_handlers.extend(notifications_api.handlers())
    if settings.activity.enabled:  # /hub/activity and /hub/api/activity*, and the in-hub sampler
        from . import activity, activity_api

        c.JupyterHub.extra_handlers.extend(activity_api.handlers())
        activity.start_background(settings.activity)
    from . import capacity_api, health_api  # /hub/api/ds/cluster and /hub/api/ds/health

    capacity_api.use_namespace(c.KubeSpawner.get("namespace", "") or os.environ.get("POD_NAMESPACE", "default"))
    c.JupyterHub.extra_handlers.extend(capacity_api.handlers())
    c.JupyterHub.extra_handlers.extend(health_api.handlers())
    if brand.logo_file():
        c.JupyterHub.logo_file = brand.logo_file()
    from . import dashboard, dashboard_api, lab_favicon, lab_favicon_api, settings_page_api

    c.JupyterHub.extra_handlers.extend(settings_page_api.handlers())
    c.JupyterHub.extra_handlers.extend(dashboard_api.handlers())
    c.JupyterHub.extra_handlers.extend(lab_favicon_api.handlers(brand))
    lab_favicon.configure_proxy(c, brand)  # per-server proxy routes for the favicon inside JupyterLab
    c.JupyterHub.tornado_settings.update({
        "jupyterhub_ds": settings,
        # known at start, shown on the settings page: Z2JH's chart version (its hub Secret) and the namespace
        settings_page_api.INFO_SETTING: {
            "chart_version": _z2jh_value("Chart.Version"),
            "namespace": c.KubeSpawner.get("namespace") or _z2jh_value("Release.Namespace"),
        },
    })
    started = _hub_start_future()
    if started is not None:
        freeze_gc_when_started(started)
    c.JupyterHub.template_paths.insert(0, TEMPLATES_DIR)
    c.JupyterHub.template_vars.update({
        **brand.template_vars(),
        "ds_version": __version__,
        "ds_assets": static_api.asset_versions(),  # ds-static/<name>?v=<content hash>
        "ds_accounts": ds_accounts,
        "ds_force_password_change": ds_accounts and settings.accounts.force_password_change,
        "ds_culler_enabled": settings.culler.enabled,
        # the home page's dashboard data for the current user (no I/O: memory and the reflectors only)
        "ds_dashboard": dashboard.page_data,
        "ds_activity_enabled": settings.activity.enabled,
        # JupyterHub passes server_version to admin.html only; the home page footer needs it too
        "server_version": jupyterhub.__version__,
        "ds_volumes": [
            {"name": v.name, "description": v.description, "size": v.size, "mount_path": v.mount_path}
            for v in settings.storage.volumes if v.resettable
        ] if settings.storage.enabled else [],
    })
    return settings
