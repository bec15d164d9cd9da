"""The one runtime object: the facts every feature shares, built once by ``configure(c)``.

Settings, the namespace of the users' servers, the branding and the running hub reach every feature the same way:
handlers read :func:`of` (the object sits in JupyterHub's ``tornado_settings``), background tasks and the spawner
class are handed the object when ``configure`` starts them. Nothing else reads Z2JH's values, the environment or the
JupyterHub singleton for these facts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .branding import Branding
from .settings import Settings

TORNADO_KEY = "jupyterhub_ds"  # where JupyterHub's tornado_settings hold the runtime object
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass
class Runtime:
    settings: Settings
    namespace: str  # where KubeSpawner starts servers and our claims live
    branding: Branding
    chart_version: str | None = None  # Z2JH's chart version from its hub Secret (the settings page shows it)
    app: Any = None  # the JupyterHub application that loaded the config (None outside a hub: tests, tools)
    server_selector: str = "component=singleuser-server"  # KubeSpawner's label on the users' server pods
    accounts: bool = False  # NativeAuthenticator accounts (ours) are on

    def __deepcopy__(self, memo: dict) -> Runtime:
        """Shared, never copied: traitlets deep-copies config values (``tornado_settings``) into the app, and the
        hub's handlers must see the very object every feature was handed (it also holds the app itself)."""
        return self

    def hub(self) -> Any | None:
        """The running hub once it is initialized (its users, database and proxy exist), else None."""
        app = self.app
        return app if getattr(app, "tornado_application", None) is not None else None


def of(handler: Any) -> Runtime:
    """The runtime object of the hub serving ``handler``."""
    return handler.settings[TORNADO_KEY]


def spawner_namespace(configured: str | None) -> str:
    """KubeSpawner's namespace: as configured (Z2JH sets it from ``POD_NAMESPACE``), else KubeSpawner's own
    default, the hub's ServiceAccount namespace, else ``default``."""
    if configured:
        return configured
    if os.path.exists(SERVICE_ACCOUNT_NAMESPACE):
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:  # once, at start
            return f.read().strip() or "default"
    return "default"
