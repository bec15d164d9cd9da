"""Branding: hub logo and favicon, JupyterLab main and splash icons.

Each setting is an http(s) URL, a file name from the chart's branding ConfigMap (mounted at
``branding.filesDir``), or empty for the stock image. Files are read once, when the hub starts (they
are small: a ConfigMap holds at most 1 MiB), and served from memory at ``/hub/ds-branding/<name>``,
so a request never touches the disk. A logo file is also given to JupyterHub (``logo_file``, served
at ``/hub/logo`` by the stock templates).

JupyterLab needs its icons as fully qualified URLs (a bare path would be read as a file path in the
user's server), reachable from user pods: a URL passes through; a file becomes
``<hub URL>/hub/ds-branding/<name>`` where the hub URL is ``custom.ds.hubUrl`` or, by default, the
hub's own connect URL (``http://hub:8081`` on Z2JH).
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .settings import VALUES_PATH, BrandingSettings, SettingsError, camel

ROUTE_PREFIX = "ds-branding"
LAB_ICON_ENV = {"lab_main_icon": "JUPYTERLAB_MAIN_ICON_URI", "lab_splash_icon": "JUPYTERLAB_SPLASH_ICON_URI"}
_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][-._A-Za-z0-9]*$")  # a ConfigMap key that is not "." or ".."


@dataclass(frozen=True)
class Asset:
    """One branding value: exactly one of ``url`` and ``file`` is set."""

    url: str | None = None
    file: str | None = None


def classify(key: str, value: str) -> Asset | None:
    """``None`` for empty, an URL asset, or a file asset; anything else is a settings error."""
    value = value.strip()
    if not value:
        return None
    if _URL.match(value):
        return Asset(url=value)
    if _FILE_NAME.match(value):
        return Asset(file=value)
    raise SettingsError(f"{VALUES_PATH}.branding.{camel(key)}: expected an http(s) URL or a file name from "
                        f"jupyterhub.custom.brandingFiles (letters, digits, '-', '_', '.'), got {value!r}")


@dataclass(frozen=True)
class BrandingFile:
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Branding:
    """The resolved branding: assets by setting name and the file contents they refer to."""

    settings: BrandingSettings
    assets: dict[str, Asset] = field(default_factory=dict)
    files: dict[str, BrandingFile] = field(default_factory=dict)

    def logo_file(self) -> str | None:
        """Path for ``JupyterHub.logo_file`` when the logo is a file."""
        logo = self.assets.get("logo")
        return os.path.join(self.settings.files_dir, logo.file) if logo and logo.file else None

    def template_vars(self) -> dict[str, str]:
        """Variables our ``page.html`` reads (a file favicon is linked under the hub's base URL there)."""
        logo, favicon = self.assets.get("logo"), self.assets.get("favicon")
        return {
            "ds_logo_url": logo.url if logo and logo.url else "",
            "ds_favicon_url": favicon.url if favicon and favicon.url else "",
            "ds_favicon_file": f"{ROUTE_PREFIX}/{favicon.file}" if favicon and favicon.file else "",
        }

    def lab_icon_env(self, hub_prefix: str) -> dict[str, str]:
        """JUPYTERLAB_*_ICON_URI for the icons that are set, as fully qualified URLs.

        ``hub_prefix`` is the hub's URL including its base path, e.g. ``http://hub:8081/hub/``.
        """
        env = {}
        for key, var in LAB_ICON_ENV.items():
            asset = self.assets.get(key)
            if asset is not None:
                env[var] = asset.url or f"{hub_prefix.rstrip('/')}/{ROUTE_PREFIX}/{asset.file}"
        return env


def assets(settings: BrandingSettings) -> dict[str, Asset]:
    """The non-empty values, classified (pure: no file is read)."""
    found = {}
    for key in ("logo", "favicon", *LAB_ICON_ENV):
        asset = classify(key, getattr(settings, key))
        if asset is not None:
            found[key] = asset
    return found


def resolve(settings: BrandingSettings, read: Any = None) -> Branding:
    """Classify every value and read the files they name (at hub start); a missing file stops the hub."""
    assets_ = assets(settings)
    files = {}
    for key, asset in assets_.items():
        if asset.file and asset.file not in files:
            path = os.path.join(settings.files_dir, asset.file)
            try:
                content = read(path) if read else _read(path)
            except OSError as e:
                raise SettingsError(
                    f"{VALUES_PATH}.branding.{camel(key)}: file {asset.file!r} is not in "
                    f"{settings.files_dir} ({e.strerror}); add it under the chart's "
                    "jupyterhub.custom.brandingFiles") from e
            files[asset.file] = BrandingFile(content, content_type(asset.file))
    return Branding(settings, assets_, files)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    if name.lower().endswith(".svg"):
        return "image/svg+xml"
    return guessed or "application/octet-stream"


def hub_prefix(hub_url: str | None, hub: Any) -> str:
    """The hub's URL with its base path (``.../hub/``) as user servers reach it.

    ``hub`` is JupyterHub's ``Hub`` object (``spawner.hub``): ``url`` is its connect URL with the
    base path, ``base_url`` the path alone. ``hub_url`` (the setting) replaces scheme and host.
    """
    if hub_url:
        return hub_url.rstrip("/") + hub.base_url
    return hub.url
