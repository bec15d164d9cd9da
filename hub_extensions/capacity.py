"""Cluster capacity for the activity page's cluster panel: per node, allocatable vs requested vs used.

An admin wants to see at a glance whether the next (GPU) server will fit. Three sources, each read
once per refresh window and shared by every request (:class:`CapacityCache`, a :class:`hub_extensions.k8s.TtlCache`):

- **nodes**: one node LIST, as slim raw JSON (:func:`hub_extensions.gpu.list_nodes`: pages of 500, no
  ``V1Node`` models); the ClusterRole's ``nodes list`` that GPU auto mode already needs;
- **requested**: the sum of the requests of the non-terminated pods on each node, taken from
  KubeSpawner's own pod reflector (the hub's namespace, single-user pods; already in memory, kept up to
  date by a watch, so it costs no API call at all). Without a reflector yet (no server started since the
  hub began), one namespaced LIST with the same label selector, which Z2JH's hub Role already allows.
  Pods of other namespaces are *not* counted: that would need ``pods list`` cluster-wide, which lets the
  hub read every pod spec of the cluster (environment values included) for one panel. The answer says
  so (``requested_scope``);
- **usage**: one ``metrics.k8s.io`` node LIST (ClusterRole ``nodes`` in ``metrics.k8s.io``, ``list``).
  When that API is missing or down, usage is ``null`` and ``metrics_available`` false, never an error.

The summarising functions are pure (``summarise`` and the figures on :func:`hub_extensions.k8s.quantity`) and
unit-tested.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import gpu, k8s

log = logging.getLogger("JupyterHub.ds.capacity")

CACHE_SECONDS = 10.0  # the refresh window when the activity settings do not give one (resourcesUpdateSeconds)
SINGLEUSER_SELECTOR = "component=singleuser-server"
TERMINATED = ("Succeeded", "Failed")
MIB = 1024 * 1024


# ---------------------------------------------------------------- pure: quantities as the API shows them

def millicores(value: Any) -> int:
    """CPU as integer millicores (0 when absent or unreadable), rounded up like the scheduler does."""
    q = k8s.quantity(value)
    return 0 if q is None else int((q * 1000).to_integral_value(rounding="ROUND_CEILING"))


def mebibytes(value: Any) -> int:
    """Memory in MiB (``memory_mb`` in the API, as upstream's MB was MiB), rounded to the nearest."""
    q = k8s.quantity(value)
    return 0 if q is None else int((q / MIB).to_integral_value(rounding="ROUND_HALF_UP"))


def whole(value: Any) -> int:
    """An extended resource count (GPUs); 0 when absent or unreadable."""
    q = k8s.quantity(value)
    return 0 if q is None else int(q)


# ---------------------------------------------------------------- pure: pods and nodes

@dataclass(frozen=True)
class Requests:
    cpu_millicores: int = 0
    memory_bytes: Decimal = Decimal(0)
    gpus: int = 0

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu_millicores + other.cpu_millicores, self.memory_bytes + other.memory_bytes,
                        self.gpus + other.gpus)


def _container_requests(containers: Iterable[Mapping[str, Any]], gpu_resource: str) -> list[Requests]:
    out = []
    for c in containers:
        res = c.get("resources") or {}
        # the API server defaults missing requests to the limits; a raw object from a test may not have that
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        out.append(Requests(millicores(req.get("cpu")), k8s.quantity(req.get("memory")) or Decimal(0),
                            whole(req.get(gpu_resource))))
    return out


def pod_requests(pod: Mapping[str, Any], gpu_resource: str) -> Requests:
    """What the scheduler reserves for a pod: max(sum of containers, each init container) plus overhead."""
    spec = pod.get("spec") or {}
    total = sum(_container_requests(spec.get("containers") or [], gpu_resource), Requests())
    for init in _container_requests(spec.get("initContainers") or [], gpu_resource):
        total = Requests(max(total.cpu_millicores, init.cpu_millicores), max(total.memory_bytes, init.memory_bytes),
                         max(total.gpus, init.gpus))
    overhead = spec.get("overhead") or {}
    return total + Requests(millicores(overhead.get("cpu")), k8s.quantity(overhead.get("memory")) or Decimal(0), 0)


def counts(pod: Mapping[str, Any]) -> bool:
    """Whether a pod holds node resources: scheduled to a node and not terminated (Succeeded/Failed)."""
    return bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") not in TERMINATED


def requested_by_node(pods: Iterable[Mapping[str, Any]], gpu_resource: str) -> dict[str, Requests]:
    by_node: dict[str, Requests] = {}
    for pod in pods:
        if counts(pod):
            node = pod["spec"]["nodeName"]
            by_node[node] = by_node.get(node, Requests()) + pod_requests(pod, gpu_resource)
    return by_node


def usage_by_node(node_metrics: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``metrics.k8s.io`` NodeMetrics items as ``{node: {cpu_millicores, memory_mb}}``."""
    out = {}
    for item in node_metrics:
        usage = item.get("usage") or {}
        name = (item.get("metadata") or {}).get("name")
        if name and "cpu" in usage and "memory" in usage:
            out[name] = {"cpu_millicores": millicores(usage["cpu"]), "memory_mb": mebibytes(usage["memory"])}
    return out


def summarise(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
              node_metrics: Iterable[Mapping[str, Any]] | None, gpu_resource: str = "nvidia.com/gpu",
              timestamp: float | None = None, requested_scope: str = "namespace") -> dict[str, Any]:
    """The cluster API's answer from raw JSON: nodes (slim or full), pods, NodeMetrics items or None (API down).

    A node without a metrics item (not scraped yet) has ``usage`` nulls; ``node_metrics=None`` means the
    metrics API did not answer (``metrics_available`` false).
    """
    requested = requested_by_node(pods, gpu_resource)
    usage = usage_by_node(node_metrics) if node_metrics is not None else {}
    out = []
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or ""):
        name = (node.get("metadata") or {}).get("name") or "?"
        alloc = (node.get("status") or {}).get("allocatable") or {}
        req = requested.get(name, Requests())
        out.append({
            "name": name,
            "allocatable": {"cpu_millicores": millicores(alloc.get("cpu")), "memory_mb": mebibytes(alloc.get("memory")),
                            "gpus": whole(alloc.get(gpu_resource))},
            "requested": {"cpu_millicores": req.cpu_millicores,
                          "memory_mb": int((req.memory_bytes / MIB).to_integral_value(rounding="ROUND_HALF_UP")),
                          "gpus": req.gpus},
            "usage": usage.get(name, {"cpu_millicores": None, "memory_mb": None}),
        })
    return {"nodes": out, "metrics_available": node_metrics is not None,
            "timestamp": timestamp if timestamp is not None else time.time(), "requested_scope": requested_scope}


# ---------------------------------------------------------------- I/O (one call per source)

async def list_node_metrics() -> list[dict]:
    """One ``metrics.k8s.io`` NodeMetrics LIST (all nodes), as raw JSON items."""
    page = await k8s.list_json(k8s.custom_objects().list_cluster_custom_object, "metrics.k8s.io", "v1beta1", "nodes")
    return page.get("items") or []


async def list_singleuser_pods(namespace: str) -> list[dict]:
    """The fallback when KubeSpawner's reflector is not running: one namespaced LIST, raw JSON."""
    page = await k8s.list_json(k8s.core().list_namespaced_pod, namespace, label_selector=SINGLEUSER_SELECTOR)
    return page.get("items") or []


async def list_nodes() -> list[dict]:
    return await gpu.list_nodes(k8s.core())


async def fetch(spawner_class: Any, namespace: str, gpu_resource: str) -> dict[str, Any]:
    """One refresh: the node list and the node metrics in parallel, the pods from the reflector."""
    nodes_task = asyncio.ensure_future(list_nodes())
    metrics_task = asyncio.ensure_future(list_node_metrics())
    try:
        nodes = await nodes_task
    except BaseException:
        metrics_task.cancel()
        raise
    try:
        metrics: list[dict] | None = await metrics_task
    except Exception as e:
        log.info("cluster capacity: node metrics unavailable (%s); usage is null", k8s.describe(e))
        metrics = None
    pods = k8s.reflected_pods(spawner_class, namespace)
    if pods is None:
        pods = await list_singleuser_pods(namespace)
    return summarise(nodes, pods, metrics, gpu_resource)


class CapacityCache:
    """The cluster answer, refreshed at most once per ``ttl`` for every tab and request: a :class:`k8s.TtlCache`
    (single flight, a failure held for the window too).

    After a failed refresh the last answer is served (its ``timestamp`` says how old it is); only while there is
    none, :meth:`get` raises the failure (the handler's 503 for a refused node list).
    """

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, Any]]], ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.cache = k8s.TtlCache(fetch, ttl, "Cluster capacity: refreshing", log, clock)

    async def get(self) -> dict[str, Any]:
        """The last answer; without one yet, raises the failure that left none."""
        return (await self.cache.get()).result()


_caches: dict[tuple, CapacityCache] = {}


def cache(spawner_class: Any, namespace: str, gpu_resource: str, ttl: float = CACHE_SECONDS) -> CapacityCache:
    """The hub's one cache per (namespace, GPU resource, ttl)."""
    key = (namespace, gpu_resource, ttl)
    if key not in _caches:
        _caches[key] = CapacityCache(lambda: fetch(spawner_class, namespace, gpu_resource), ttl)
    return _caches[key]
