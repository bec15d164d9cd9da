"""Activity monitor, part three: the Volumes column (:class:`VolumeCache`).

One cached list of our claims (requested capacity per volume), and, when ``volumes.prometheusUrl`` is set, one
Prometheus query for ``kubelet_volume_stats_used_bytes``, per ``volumes.updateSeconds``.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from . import k8s
from .activity_usage import MIB

log = logging.getLogger("JupyterHub.ds.activity")


class VolumeCache:
    """Our claims (one LIST) and, optionally, their used bytes (one Prometheus query), per ``ttl``: a
    :class:`k8s.TtlCache` (single flight, a failure held for the window too). A failed refresh keeps the last good
    columns, with :attr:`error` for the page's note: claim sizes change seldom, so they stay worth showing."""

    def __init__(self, namespace: str, ttl: float, prometheus_url: str | None,
                 clock: Callable[[], float] = time.monotonic):
        self.namespace = namespace
        self.prometheus_url = prometheus_url
        self.cache = k8s.TtlCache(self._fetch, ttl, "Activity: listing volumes", log, clock)

    @property
    def error(self) -> str | None:
        """Why the last refresh failed (one line); None after a success."""
        return None if self.cache.entry is None else self.cache.entry.error

    async def get(self) -> dict[str, list[dict[str, Any]]]:
        """The volumes by owner key as last listed ({} before the first success)."""
        return (await self.cache.get()).value or {}

    async def _fetch(self) -> dict[str, list[dict[str, Any]]]:
        from . import storage

        claims = await k8s.list_claims(self.namespace, f"app.kubernetes.io/managed-by={storage.MANAGED_BY}")
        used = await self._used_bytes() if self.prometheus_url else {}
        return claims_by_owner(claims, used)

    async def _used_bytes(self) -> dict[str, float]:
        """``kubelet_volume_stats_used_bytes`` per claim name in our namespace (one query)."""
        import aiohttp

        query = f'max by (persistentvolumeclaim) (kubelet_volume_stats_used_bytes{{namespace="{self.namespace}"}})'
        url = f"{self.prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                    session.get(url) as response:
                body = json.loads(await response.text())
        except Exception as e:
            log.warning("Activity: Prometheus query failed: %s", e)
            return {}
        return {r["metric"].get("persistentvolumeclaim"): float(r["value"][1])
                for r in body.get("data", {}).get("result", []) if r.get("metric", {}).get("persistentvolumeclaim")}


def claims_by_owner(claims: list[dict], used: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
    """Claims grouped by owner key: volume name, claim name, requested capacity (MB), used MB or None."""
    from . import storage

    out: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        labels = c["metadata"].get("labels", {})
        owner = labels.get(storage.LABEL_OWNER)
        if not owner or labels.get(storage.LABEL_VOLUME) == storage.SHARED_VOLUME_NAME:
            continue
        capacity = c.get("status", {}).get("capacity", {}).get("storage") or \
            c.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        cap = k8s.quantity_float(capacity)
        name = c["metadata"]["name"]
        out.setdefault(owner, []).append({
            "volume": labels.get(storage.LABEL_VOLUME), "claim": name,
            "capacity_mb": None if cap is None else round(cap / MIB, 1),
            "used_mb": round(used[name] / MIB, 1) if name in used else None,
        })
    return out


def volume_columns(volumes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Upstream's ``volume_size_mb``/``volume_breakdown`` (used MB; null without Prometheus) plus capacities."""
    volumes = volumes or []
    used = [v["used_mb"] for v in volumes if v["used_mb"] is not None]
    caps = [v["capacity_mb"] for v in volumes if v["capacity_mb"] is not None]
    return {
        "volume_size_mb": round(sum(used), 1) if used else None,
        "volume_breakdown": {v["volume"]: v["used_mb"] for v in volumes} if used else None,
        "volume_capacity_mb": round(sum(caps), 1) if caps else None,
        "volumes": volumes,
    }
