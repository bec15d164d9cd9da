"""``configure(c)``: the single entry point, called from one ``hub.extraConfig`` snippet.

It reads ``custom.ds`` from Z2JH's values (or takes settings from the caller), validates them, builds the one
runtime object (:mod:`hub_extensions.runtime`) and registers everything: the spawner class (which carries the
spawn-time policy), then each feature of :data:`FEATURES`, a table in which every feature says what it adds
(routes, template variables, JupyterHub config, background work), each hook handed the runtime object.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jupyterhub

from . import (
    __version__,
    branding,
    branding_api,
    capacity_api,
    culler,
    culler_api,
    docker_groups,
    env_vars_api,
    gpu,
    group_policies,
    group_policies_api,
    health_api,
    k8s,
    last_activity,
    notifications,
    notifications_api,
    runtime,
    scopes,
    settings_page_api,
    static_api,
    storage_api,
    trail_api,
)
from .handler_base import routes_ahead
from .runtime import Runtime
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


def _hub_app() -> Any | None:
    """The JupyterHub application loading this config (JupyterHub 5.5 creates it first), if any."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():  # configure called outside a hub (tests, schema tools)
        return None
    return JupyterHub.instance()


def _hub_start_future() -> asyncio.Future | None:
    """The running hub's start future (JupyterHub 5.5 creates it before loading the config file), if any."""
    return getattr(_hub_app(), "_start_future", None)


@dataclass(frozen=True)
class Feature:
    """What one feature adds to the hub; every hook is handed the runtime object."""

    name: str
    handlers: Callable[[Runtime], list] = lambda rt: []  # routes relative to the hub prefix
    template_vars: Callable[[Runtime], Mapping[str, Any]] = lambda rt: {}
    configure: Callable[[Any, Runtime], None] = lambda c, rt: None  # JupyterHub config: roles, services, proxy
    start: Callable[[Runtime], None] = lambda rt: None  # background work, once the hub's event loop runs
    enabled: Callable[[Runtime], bool] = lambda rt: True


def _profile_checked_starts(c: Any, rt: Runtime) -> None:
    """A start with a profile the user's groups do not allow is refused with 403 at the API (not a 202 and a
    failed start): JupyterHub's start routes, checked, ahead of its own."""
    if rt.app is not None:
        routes_ahead(rt.app, group_policies_api.server_routes())


def _load_groups(c: Any, rt: Runtime) -> None:
    """The Docker groups and the GPU group exist from the start, so admins can fill them."""
    gpu_group = [rt.settings.gpu.group] if rt.settings.gpu.group else []
    docker_groups.load_groups(c, [*docker_groups.builtin_groups(rt.settings.groups), *gpu_group])


def _accounts_vars(rt: Runtime) -> Mapping[str, Any]:
    return {"ds_accounts": rt.accounts,
            "ds_force_password_change": rt.accounts and rt.settings.accounts.force_password_change}


def _check_culler(c: Any, rt: Runtime) -> None:
    if rt.settings.culler.enabled and any(s.get("name") == "jupyterhub-idle-culler"
                                          for s in c.JupyterHub.get("services", [])):
        _stop("jupyterhub.cull.enabled: expected false while custom.ds.culler.enabled is true "
              "(two cullers; only ours honours session extensions), got true")


def _accounts_handlers(rt: Runtime) -> list:
    """NativeAuthenticator's routes are the authenticator's (``get_handlers``): handed to it, so ``accounts``
    never imports its API modules. None of them is a hub route of ours."""
    from . import accounts, accounts_api, signups_api

    accounts.DsNativeAuthenticator.ds_handlers = [*accounts_api.handlers(), *signups_api.handlers()]
    return []


def _start_client_address(rt: Runtime) -> None:
    from . import client_address  # the lockout and the sign-up limit read X-Forwarded-For from the proxy pods only

    client_address.start_background(rt.namespace)


def _activity_handlers(rt: Runtime) -> list:
    from . import activity_api

    return activity_api.handlers()


def _start_activity(rt: Runtime) -> None:
    from . import activity

    activity.start_background(rt)


def _dashboard_handlers(rt: Runtime) -> list:
    from . import dashboard_api

    return dashboard_api.handlers()


def _dashboard_vars(rt: Runtime) -> Mapping[str, Any]:
    from . import dashboard

    # the home page's dashboard data for the current user (no I/O: memory and the reflectors only)
    return {"ds_dashboard": lambda user: dashboard.page_data(rt, user)}


def _lab_favicon_handlers(rt: Runtime) -> list:
    from . import lab_favicon_api

    return lab_favicon_api.handlers(rt.branding)


def _lab_favicon_proxy(c: Any, rt: Runtime) -> None:
    from . import lab_favicon

    lab_favicon.configure_proxy(c, rt.branding)  # per-server proxy routes for the favicon inside JupyterLab


def _branding_config(c: Any, rt: Runtime) -> None:
    if rt.branding.logo_file():
        c.JupyterHub.logo_file = rt.branding.logo_file()


def _volumes_vars(rt: Runtime) -> Mapping[str, Any]:
    storage = rt.settings.storage
    return {"ds_volumes": [{"name": v.name, "description": v.description, "size": v.size, "mount_path": v.mount_path}
                           for v in storage.volumes if v.resettable] if storage.enabled else []}


FEATURES: list[Feature] = [
    Feature("groups", configure=_load_groups),
    Feature("gpu", start=lambda rt: gpu.start_background(rt.settings.gpu)),
    Feature("culler", handlers=lambda rt: culler_api.handlers(), configure=_check_culler,
            start=culler.start_background, template_vars=lambda rt: {"ds_culler_enabled": rt.settings.culler.enabled}),
    Feature("accounts", enabled=lambda rt: rt.accounts, handlers=_accounts_handlers, start=_start_client_address),
    Feature("accounts-pages", template_vars=_accounts_vars),
    # custom:ds-volumes:* scopes, granted to the user role for themselves
    Feature("storage", handlers=lambda rt: storage_api.handlers(), configure=lambda c, rt: scopes.register(c),
            template_vars=_volumes_vars),
    Feature("static", handlers=lambda rt: static_api.handlers(),
            template_vars=lambda rt: {"ds_assets": static_api.asset_versions()}),  # ds-static/<name>?v=<hash>
    Feature("trail", handlers=lambda rt: trail_api.handlers()),
    Feature("branding", handlers=lambda rt: branding_api.handlers(rt.branding), configure=_branding_config,
            template_vars=lambda rt: rt.branding.template_vars()),
    # the notifier service: no standing token, one per delivery for one server
    Feature("notifications", handlers=lambda rt: notifications_api.handlers(),
            configure=lambda c, rt: notifications.register(c)),
    Feature("activity", enabled=lambda rt: rt.settings.activity.enabled, handlers=_activity_handlers),
    # the sampler's start also forgets a monitor of an earlier configure when the monitor is off
    Feature("activity-sampler", start=_start_activity,
            template_vars=lambda rt: {"ds_activity_enabled": rt.settings.activity.enabled}),
    Feature("capacity", handlers=lambda rt: capacity_api.handlers()),
    Feature("health", handlers=lambda rt: health_api.handlers()),
    Feature("settings-page", handlers=lambda rt: settings_page_api.handlers()),
    Feature("dashboard", handlers=_dashboard_handlers, template_vars=_dashboard_vars),
    Feature("group-policies", handlers=lambda rt: group_policies_api.handlers(), configure=_profile_checked_starts),
    Feature("user-env", handlers=lambda rt: env_vars_api.handlers(),
            template_vars=lambda rt: {"ds_user_env_enabled": rt.settings.user_env.enabled}),
    # JupyterHub's last-activity pass in batches: a fixed number of queries instead of two per running server
    Feature("last-activity", enabled=lambda rt: rt.app is not None,
            configure=lambda c, rt: last_activity.install(rt.app)),
    Feature("lab-favicon", handlers=_lab_favicon_handlers, configure=_lab_favicon_proxy),
]


def configure(c: Any, settings: Settings | Mapping[str, Any] | None = None) -> Settings:
    """Configure JupyterHub (``c``) for jupyterhub-ds and return the validated settings."""
    if not isinstance(settings, Settings):
        try:
            settings = load_settings(settings if settings is not None else _values_from_z2jh())
        except SettingsError as e:
            _stop(str(e))
    try:
        brand = branding.resolve(settings.branding)  # reads the branding files once, at start
        group_policies.check(settings)
    except SettingsError as e:
        _stop(str(e))
    rt = Runtime(settings, runtime.spawner_namespace(c.KubeSpawner.get("namespace", "")), brand,
                 chart_version=_z2jh_value("Chart.Version"), app=_hub_app(),
                 server_selector=f"component={c.KubeSpawner.get('component_label', 'singleuser-server')}")

    from . import accounts  # imports NativeAuthenticator and bcrypt: keep them out of settings-only use
    from .spawner import DsKubeSpawner  # imports kubernetes_asyncio: keep it out of settings-only use

    # our API calls share KubeSpawner's client, configured from the same k8s_api_* traits
    k8s.use_kubespawner_settings(c.KubeSpawner.get("k8s_api_host", ""), c.KubeSpawner.get("k8s_api_ssl_ca_cert", ""),
                                 c.KubeSpawner.get("k8s_api_verify_ssl", None))
    c.JupyterHub.spawner_class = DsKubeSpawner
    # our spawn-time policy is DsKubeSpawner's own methods: pre_spawn_hook/modify_pod_hook stay the user's
    DsKubeSpawner.use_runtime(rt)
    if settings.storage.enabled:
        if c.KubeSpawner.get("storage_pvc_ensure"):
            _stop("jupyterhub.singleuser.storage.type: expected none while custom.ds.storage.enabled is true "
                  "(jupyterhub-ds manages the per-user claims), got dynamic")
        # our claims replace KubeSpawner's home claim, including its delete-on-user-delete logic
        c.KubeSpawner.delete_pvc = False
    try:  # NativeAuthenticator configured: our subclass (first admin, generated passwords, renames)
        rt.accounts = accounts.configure(c, settings.accounts)
    except SettingsError as e:
        _stop(str(e))

    c.JupyterHub.tornado_settings.update({runtime.TORNADO_KEY: rt})
    c.JupyterHub.template_paths.insert(0, TEMPLATES_DIR)
    c.JupyterHub.template_vars.update({
        "ds_version": __version__,
        # JupyterHub passes server_version to admin.html only; the home page footer needs it too
        "server_version": jupyterhub.__version__,
    })
    for feature in FEATURES:
        if not feature.enabled(rt):
            continue
        feature.configure(c, rt)
        c.JupyterHub.extra_handlers.extend(feature.handlers(rt))
        c.JupyterHub.template_vars.update(feature.template_vars(rt))
        feature.start(rt)
    started = _hub_start_future()
    if started is not None:
        freeze_gc_when_started(started)
    return settings
