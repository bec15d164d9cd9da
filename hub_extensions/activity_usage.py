"""Activity monitor, part one: per-user CPU/memory from metrics-server (:class:`MetricsCache`).

One namespace-scoped LIST of ``metrics.k8s.io/v1beta1`` pods with the single-user label selector per
``resourcesUpdateSeconds`` window, shared by every request and tab (a :class:`hub_extensions.k8s.TtlCache`:
single flight, a failure held for the window too). Limits come from KubeSpawner's pod reflector (its in-memory
copy of the pods), so there is no per-user API call at all. CPU is a percentage of the pod's CPU limit, or of
**one core** when the pod has no CPU limit (upstream's per-core scale, so an unlimited pod using two cores shows
200 %). Memory is the working set in MiB and a percentage of the memory limit (null without a limit: a node's
allocatable memory says nothing about what the pod may use). A pod that metrics-server has not scraped twice yet,
or a metrics API that is down, gives ``null`` values, never 0. The monitor itself is :mod:`hub_extensions.activity`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import k8s

log = logging.getLogger("JupyterHub.ds.activity")

MIB = 1024 * 1024
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


# ================================================================ pure: usage, status

def pod_limits(pod: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(CPU cores, memory bytes) limits of a pod: the sum over its containers, None if any container has none."""
    if not pod:
        return None, None
    containers = pod.get("spec", {}).get("containers") or []
    cpu: float | None = 0.0
    memory: float | None = 0.0
    for c in containers:
        limits = (c.get("resources") or {}).get("limits") or {}
        c_cpu, c_mem = k8s.quantity_float(limits.get("cpu")), k8s.quantity_float(limits.get("memory"))
        cpu = None if cpu is None or c_cpu is None else cpu + c_cpu
        memory = None if memory is None or c_mem is None else memory + c_mem
    if not containers:
        return None, None
    return cpu, memory


def pod_usage(pod_metrics: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(CPU cores, working-set bytes) of one PodMetrics item, summed over its containers."""
    containers = pod_metrics.get("containers") or []
    if not containers:
        return None, None
    cpu = mem = 0.0
    for c in containers:
        usage = c.get("usage") or {}
        c_cpu, c_mem = k8s.quantity_float(usage.get("cpu")), k8s.quantity_float(usage.get("memory"))
        if c_cpu is None or c_mem is None:
            return None, None
        cpu += c_cpu
        mem += c_mem
    return cpu, mem


def usage_figures(usage: tuple[float, float] | None, limits: tuple[float | None, float | None]) -> dict[str, Any]:
    """``cpu_percent`` (of the CPU limit, or of one core without one), ``memory_mb``, ``memory_percent``.

    ``usage`` None (no metrics for the pod yet, or the metrics API down) gives nulls, never zeros.
    """
    if usage is None:
        return {"cpu_percent": None, "memory_mb": None, "memory_percent": None}
    cpu, memory = usage
    cpu_limit, memory_limit = limits
    return {
        "cpu_percent": round(cpu / (cpu_limit or 1.0) * 100, 1),
        "memory_mb": round(memory / MIB, 1),
        "memory_percent": round(memory / memory_limit * 100, 1) if memory_limit else None,
    }


NO_USAGE = usage_figures(None, (None, None))


# ================================================================ metrics: one LIST per window, single flight

@dataclass
class Snapshot:
    """What the last metrics LIST gave: usage by pod name, or why there is none."""

    usage: dict[str, tuple[float, float]] = field(default_factory=dict)
    available: bool = False
    error: str | None = None
    fetched_at: float = 0.0


async def usage_by_pod(list_pod_metrics: Callable[[], Awaitable[list[dict]]]) -> dict[str, tuple[float, float]]:
    """(CPU cores, working-set bytes) by pod name, from one LIST; pods not scraped twice yet are left out."""
    usage = {}
    for item in await list_pod_metrics():
        cpu, memory = pod_usage(item)
        if cpu is not None and memory is not None:
            usage[item["metadata"]["name"]] = (cpu, memory)
    return usage


class MetricsCache:
    """One ``metrics.k8s.io`` pod LIST per ``ttl`` seconds, shared by all callers: a :class:`k8s.TtlCache` (single
    flight; a failure holds for the window too, so no retry storm). While the last LIST failed, every pod's usage
    is null with a note: the last good figures would look live."""

    def __init__(self, ttl: float, list_pod_metrics: Callable[[], Awaitable[list[dict]]],
                 clock: Callable[[], float] = time.monotonic):
        # list_pod_metrics: async () -> list of PodMetrics dicts; raises when unavailable
        self.cache = k8s.TtlCache(lambda: usage_by_pod(list_pod_metrics), ttl,
                                  "Activity: listing metrics.k8s.io pods", log, clock)

    async def get(self) -> Snapshot:
        entry = await self.cache.get()
        if entry.error is not None:
            return Snapshot({}, False, f"Metrics API unavailable ({entry.error}): CPU and memory are not shown.",
                            entry.checked_at)
        return Snapshot(entry.value or {}, True, None, entry.checked_at)


def metrics_lister(namespace: str, label_selector: str) -> Callable[[], Awaitable[list[dict]]]:
    """The real LIST, through KubeSpawner's shared client (``CustomObjectsApi``), as raw JSON."""

    async def list_pod_metrics() -> list[dict]:
        result = await k8s.custom_objects().list_namespaced_custom_object(
            METRICS_GROUP, METRICS_VERSION, namespace, "pods", label_selector=label_selector,
            _request_timeout=k8s.REQUEST_TIMEOUT)
        return result.get("items", [])

    return list_pod_metrics
