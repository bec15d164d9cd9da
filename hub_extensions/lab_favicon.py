"""The branding favicon inside JupyterLab, through proxy routes the hub manages per server.

JupyterLab links its favicon at ``<server prefix>static/favicons/favicon.ico`` (and the busy variants in the
same folder), which the proxy sends to the user's pod. When ``branding.favicon`` is set, the hub adds one
more configurable-http-proxy route per running server, ``<server prefix>static/favicons/`` → the hub's
``/hub/ds-lab-favicon/`` handler, which serves the branding favicon (a file from memory, or a redirect to
the URL). The longer prefix wins in CHP, so only the favicons leave the pod's route.

The routes live and die with the server's own route, in ``DsProxy`` (a ``ConfigurableHTTPProxy``):
``add_user`` adds it (every start, and every route restore after a proxy restart), ``delete_user`` removes
it (every stop), and ``check_routes`` (at hub start and every ``last_activity_interval``) re-creates the
missing ones of running servers and deletes any left over, so routes never leak, across hub restarts too.
This works with Z2JH's separate proxy pod (routes go through CHP's REST API). With another proxy class
(e.g. Traefik) the feature is off and the hub logs why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from jupyterhub.proxy import ConfigurableHTTPProxy
from jupyterhub.utils import url_escape_path, url_path_join

from .branding import Branding

log = logging.getLogger("JupyterHub.ds.lab_favicon")

ROUTE_SUFFIX = "static/favicons/"
HANDLER_PREFIX = "ds-lab-favicon"
DATA_KEY = "ds_lab_favicon"  # in the route's data; never "user" (JupyterHub counts those as server routes)
_CHP_NAMES = {None, "", "configurable-http-proxy", "default", "jupyterhub.proxy.ConfigurableHTTPProxy"}


def favicon_spec(server_spec: str) -> str:
    """The favicon route of a server route (``/user/alice/`` → ``/user/alice/static/favicons/``)."""
    return url_path_join(server_spec, ROUTE_SUFFIX)


def favicon_target(hub_host: str, hub_base_url: str) -> str:
    """Where the proxy sends favicon requests: the hub's handler (CHP prepends this path to the request's)."""
    return url_path_join(hub_host, hub_base_url, HANDLER_PREFIX)


def wanted_routes(users: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """Favicon routes of ready servers (spec → ``user/server``), and those to keep while a server is pending."""
    wanted, keep = {}, set()
    for user in users.values():
        for name, spawner in user.spawners.items():
            if spawner.ready:
                wanted[favicon_spec(spawner.proxy_spec)] = f"{user.name}/{name}"
            elif spawner.pending:
                keep.add(favicon_spec(spawner.proxy_spec))
    return wanted, keep


class DsProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy, plus a favicon route per running server while a branding favicon is set."""

    ds_favicon_enabled = False  # set by configure_proxy

    def _ds_target(self) -> str:
        return favicon_target(self.hub.host, self.hub.base_url)

    async def add_user(self, user: Any, server_name: str = "", client: Any = None) -> None:
        await super().add_user(user, server_name, client)
        if self.ds_favicon_enabled:
            spec = favicon_spec(user.spawners[server_name].proxy_spec)
            try:
                await self.add_route(spec, self._ds_target(), {DATA_KEY: f"{user.name}/{server_name}"})
            except Exception:  # cosmetic: never fail a start for it; the next route check adds it
                self.log.exception("Adding the favicon route %s failed", spec)

    async def delete_user(self, user: Any, server_name: str = "") -> None:
        # the server's route as JupyterHub's delete_user computes it (without touching the spawner)
        server_spec = url_path_join(user.proxy_spec, url_escape_path(server_name), "/") if server_name \
            else user.proxy_spec
        spec = favicon_spec(server_spec)
        await super().delete_user(user, server_name)
        if self.ds_favicon_enabled:
            try:
                await self.delete_route(spec)
            except Exception:  # never fail a stop for it; the next route check deletes it
                self.log.exception("Deleting the favicon route %s failed", spec)

    async def check_routes(self, user_dict: Any, service_dict: Any, routes: Any = None) -> None:
        """JupyterHub's check of its own routes, then ours: missing ones added, stale ones deleted."""
        if not routes:
            routes = await self.get_all_routes()
        ours = {spec: r for spec, r in routes.items() if DATA_KEY in (r.get("data") or {})}
        # hand JupyterHub only its own routes, so it neither deletes ours nor counts them as servers
        await super().check_routes(user_dict, service_dict, {s: r for s, r in routes.items() if s not in ours})
        wanted, keep = wanted_routes(user_dict) if self.ds_favicon_enabled else ({}, set())
        target = self._ds_target()
        futures = []
        for spec, label in wanted.items():
            if spec not in ours or ours[spec]["target"] != target:
                self.log.info("Adding missing favicon route %s", spec)
                futures.append(self.add_route(spec, target, {DATA_KEY: label}))
        for spec in ours:
            if spec not in wanted and spec not in keep:
                self.log.info("Deleting stale favicon route %s", spec)
                futures.append(self.delete_route(spec))
        await asyncio.gather(*futures)


def configure_proxy(c: Any, brand: Branding) -> None:
    """Use ``DsProxy`` where configurable-http-proxy is the proxy (Z2JH's default and our local hub).

    Also without a favicon: its route check then deletes favicon routes an earlier configuration left.
    """
    configured = c.JupyterHub.get("proxy_class", None)
    name = configured if isinstance(configured, str) or configured is None else \
        f"{configured.__module__}.{configured.__qualname__}"
    if name not in _CHP_NAMES and not (isinstance(configured, type) and issubclass(configured, ConfigurableHTTPProxy)):
        if "favicon" in brand.assets:
            log.warning("jupyterhub-ds: the favicon inside JupyterLab needs configurable-http-proxy; "
                        "proxy_class is %s, so JupyterLab keeps its own favicon", name)
        return
    if isinstance(configured, type) and configured is not ConfigurableHTTPProxy:
        base = configured
        proxy = type("DsProxy", (DsProxy, base), {})  # keep the configured subclass's behaviour too
    else:
        proxy = DsProxy
    proxy.ds_favicon_enabled = "favicon" in brand.assets
    c.JupyterHub.proxy_class = proxy
