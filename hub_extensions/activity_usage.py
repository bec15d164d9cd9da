"""Activity monitor, part one: per-user CPU/memory from metrics-server (:class:`MetricsCache`).

One namespace-scoped LIST of ``metrics.k8s.io/v1beta1`` pods with the single-user label selector per
``resourcesUpdateSeconds`` window, single-flight (concurrent callers await the same request) and shared by every
request and tab. Limits come from KubeSpawner's pod reflector (its in-memory copy of the pods), so there is no
per-user API call at all. CPU is a percentage of the pod's CPU limit, or of **one core** when the pod has no CPU
limit (upstream's per-core scale, so an unlimited pod using two cores shows 200 %). Memory is the working set in
MiB and a percentage of the memory limit (null without a limit: a node's allocatable memory says nothing about
what the pod may use). A pod that metrics-server has not scraped twice yet, or a metrics API that is down, gives
``null`` values, never 0. The monitor itself is :mod:`hub_extensions.activity`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import k8s

log = logging.getLogger("JupyterHub.ds.activity")

MIB = 1024 * 1024
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


# ================================================================ pure: quantities, usage, status

def parse_cpu(value: str | None) -> float | None:
    """A CPU quantity (``250m``, ``1``, ``1500000n``, ``20u``) in cores."""
    if value is None or value == "":
        return None
    value = str(value)
    for suffix, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3)):
        if value.endswith(suffix):
            return float(value[:-1]) * scale
    return float(value)


_MEMORY_SUFFIXES = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
                    "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}


def parse_bytes(value: str | int | float | None) -> float | None:
    """A memory or storage quantity (``300Mi``, ``1G``, ``1073741824``) in bytes."""
    if value is None or value == "":
        return None
    text = str(value)
    for suffix in sorted(_MEMORY_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _MEMORY_SUFFIXES[suffix]
    return float(text)


def pod_limits(pod: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(CPU cores, memory bytes) limits of a pod: the sum over its containers, None if any container has none."""
    if not pod:
        return None, None
    containers = pod.get("spec", {}).get("containers") or []
    cpu: float | None = 0.0
    memory: float | None = 0.0
    for c in containers:
        limits = (c.get("resources") or {}).get("limits") or {}
        c_cpu, c_mem = parse_cpu(limits.get("cpu")), parse_bytes(limits.get("memory"))
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
        c_cpu, c_mem = parse_cpu(usage.get("cpu")), parse_bytes(usage.get("memory"))
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
    """What one metrics LIST gave: usage by pod name, or why there is none."""

    usage: dict[str, tuple[float, float]] = field(default_factory=dict)
    available: bool = False
    error: str | None = None
    fetched_at: float = 0.0


class MetricsCache:
    """One ``metrics.k8s.io`` pod LIST per ``ttl`` seconds, shared by all callers; concurrent callers during a
    refresh await the same request (single flight). Errors are cached for the window too (no retry storm)."""

    def __init__(self, ttl: float, list_pod_metrics: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.list_pod_metrics = list_pod_metrics  # async () -> list of PodMetrics dicts; raises when unavailable
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self._inflight: asyncio.Future | None = None
        self.lists = 0  # how many LISTs were made (tests, benchmarks)

    async def get(self) -> Snapshot:
        snap = self.snapshot
        if snap is not None and self.clock() - snap.fetched_at < self.ttl:
            return snap
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        future = self._inflight
        try:
            return await asyncio.shield(future)
        finally:
            if future.done() and self._inflight is future:
                self._inflight = None

    async def _refresh(self) -> Snapshot:
        self.lists += 1
        try:
            items = await self.list_pod_metrics()
            usage = {}
            for item in items:
                figures = pod_usage(item)
                if figures[0] is not None:
                    usage[item["metadata"]["name"]] = figures
            snap = Snapshot(usage, True, None, self.clock())
        except Exception as e:  # the API server's error, a timeout, an unknown group: all mean "no metrics now"
            reason = k8s.describe(e)
            log.warning("Activity: metrics.k8s.io unavailable: %s", reason)
            snap = Snapshot({}, False, f"Metrics API unavailable ({reason}): CPU and memory are not shown.",
                            self.clock())
        self.snapshot = snap
        return snap


def metrics_lister(namespace: str, label_selector: str) -> Callable[[], Any]:
    """The real LIST, through KubeSpawner's shared client (``CustomObjectsApi``), as raw JSON."""

    async def list_pod_metrics() -> list[dict]:
        from kubespawner.clients import shared_client

        k8s.core()  # loads the client configuration exactly like KubeSpawner (one cache entry)
        api = shared_client("CustomObjectsApi")
        result = await api.list_namespaced_custom_object(
            METRICS_GROUP, METRICS_VERSION, namespace, "pods", label_selector=label_selector,
            _request_timeout=k8s.REQUEST_TIMEOUT)
        return result.get("items", [])

    return list_pod_metrics
