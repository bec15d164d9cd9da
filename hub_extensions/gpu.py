"""GPU servers: modes 0 (off), 1 (forced) and 2 (auto), node detection, and the pod patch.

A GPU server requests ``count`` of the device plugin's extended resource (``nvidia.com/gpu``), which
the scheduler hands out exclusively, tolerates the ``nvidia.com/gpu`` NoSchedule taint GPU nodes
usually carry, and gets the configured node selector.

Auto mode asks the API server which nodes have GPUs: a node counts when its allocatable
``nvidia.com/gpu`` is above zero. The NVIDIA labels (``nvidia.com/gpu.present``, ``gpu.count``,
``gpu.product``) are only hints, for the log: a labelled node without allocatable GPUs means the
device plugin is not running there, and pods sent to it would stay Pending. The node list is cached
and refreshed in the background every ``nodeCacheSeconds``, so a spawn never waits for it, except
the very first one after the hub starts, and then for at most a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import k8s, objects
from .settings import GpuSettings

log = logging.getLogger("JupyterHub.ds.gpu")  # a child of the hub's own logger: same handlers and level

LABEL_PRESENT = "nvidia.com/gpu.present"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_PRODUCT = "nvidia.com/gpu.product"
FIRST_REFRESH_TIMEOUT = 5.0  # seconds the first spawn may wait for the first node list


# ---------------------------------------------------------------- pure: nodes and decisions

@dataclass(frozen=True)
class GpuNode:
    """What a node says about its GPUs: allocatable (authoritative) and the NVIDIA labels (hints)."""

    name: str
    allocatable: int
    labelled: bool
    label_count: int | None
    product: str | None

    def describe(self) -> str:
        return f"{self.name} ({self.allocatable} allocatable{', ' + self.product if self.product else ''})"


def _int(value: Any) -> int:
    """A count label (``nvidia.com/gpu.count``); anything else is 0."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def gpu_nodes(nodes: Iterable[Mapping[str, Any]], resource: str,
              node_selector: Mapping[str, str] | None = None) -> list[GpuNode]:
    """Nodes (API JSON) that have the GPU resource or NVIDIA labels, among those GPU servers may use."""
    found = []
    for node in nodes:
        meta = node.get("metadata", {})
        labels = meta.get("labels") or {}
        if not _matches(labels, node_selector or {}):
            continue
        allocatable = int(k8s.quantity((node.get("status", {}).get("allocatable") or {}).get(resource)) or 0)
        labelled = labels.get(LABEL_PRESENT) == "true" or _int(labels.get(LABEL_COUNT)) > 0
        if allocatable > 0 or labelled:
            found.append(GpuNode(meta.get("name", "?"), allocatable, labelled,
                                 _int(labels[LABEL_COUNT]) if LABEL_COUNT in labels else None,
                                 labels.get(LABEL_PRODUCT)))
    return found


def detected(found: Iterable[GpuNode]) -> bool:
    """Auto mode's answer: some node can actually run a GPU pod."""
    return any(n.allocatable > 0 for n in found)


@dataclass(frozen=True)
class GpuDecision:
    """What one spawn gets: ``gpu`` patches the pod; ``detected`` is the lab's NVIDIA_DETECTED."""

    gpu: bool
    detected: bool


def decide(settings: GpuSettings, groups: Iterable[str], nodes_have_gpus: bool | None) -> GpuDecision:
    """The GPU decision for one spawn (upstream's table; ``None`` means detection has no answer yet).

    mode 0: nothing. mode 1: GPUs, NVIDIA_DETECTED=0 (forced, not detected). mode 2: GPUs and
    NVIDIA_DETECTED=1 when some node has them, else nothing. With ``gpu.group`` set, only members
    get GPUs; everyone else is treated as mode 0.
    """
    eligible = settings.group is None or settings.group in set(groups)
    if settings.mode == 0 or not eligible:
        return GpuDecision(False, False)
    if settings.mode == 1:
        return GpuDecision(True, False)
    return GpuDecision(bool(nodes_have_gpus), bool(nodes_have_gpus))


def toleration(settings: GpuSettings) -> dict[str, str]:
    """Tolerate the taint named after the resource (``nvidia.com/gpu``, any value, NoSchedule)."""
    return {"key": settings.resource, "operator": "Exists", "effect": "NoSchedule"}


def add_gpus(pod: Any, settings: GpuSettings, count: int | None = None) -> Any:
    """Request ``count`` GPUs (``gpu.count`` by default), tolerate the GPU taint (keeping existing tolerations),
    pin to GPU nodes."""
    # extended resources need requests == limits: a profile's guarantee must not contradict us
    objects.set_resource_limit(objects.notebook_container(pod), settings.resource, str(count or settings.count))
    objects.add_toleration(pod, toleration(settings))
    return objects.merge_node_selector(pod, settings.node_selector)


# ---------------------------------------------------------------- listing nodes cheaply

def label_selector(node_selector: Mapping[str, str] | None) -> str | None:
    """``gpu.nodeSelector`` as a label selector, so the API server filters the nodes for us."""
    return ",".join(f"{k}={v}" for k, v in sorted((node_selector or {}).items())) or None


NODE_PAGE = 500  # nodes per list call: the hub parses one page at a time and serves requests in between


def slim_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`gpu_nodes` reads of a node (name, labels, allocatable); the rest is dropped at once."""
    meta = node.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
            "status": {"allocatable": (node.get("status") or {}).get("allocatable") or {}}}


async def list_nodes(api: Any, selector: str | None = None, request_timeout: float = k8s.REQUEST_TIMEOUT,
                     page_size: int = NODE_PAGE) -> list[dict]:
    """List nodes as slim JSON dicts, a page at a time (:func:`k8s.list_pages`), without a ``V1Node`` per node.

    A node carries its image list, conditions and managed fields: turning 5,000 of them into models
    and back into dicts every minute cost the hub's event loop about 17 s of CPU at once
    (``ci/bench/gpu_nodes.py``). Pages of ``page_size`` bound how long one parse holds the loop and how much
    JSON is alive at a time; each node is slimmed as its page arrives.
    """
    nodes: list[dict] = []
    filters = {"label_selector": selector} if selector else {}
    async for items in k8s.list_pages(api.list_node, page_size, _request_timeout=request_timeout, **filters):
        nodes.extend(slim_node(n) for n in items)
    return nodes


# ---------------------------------------------------------------- the node cache

class NodeCache(k8s.TtlCache[list[GpuNode]]):
    """The GPU nodes as last listed, refreshed in the background every ``ttl`` seconds.

    A :class:`k8s.TtlCache` (single flight; a failed list holds for ``ttl`` too and keeps the previous
    answer) that also logs what changed. ``answer`` never does I/O. ``warm`` waits only for the very first
    list (bounded by a timeout); when the answer is stale it starts a refresh and returns at once.
    """

    def __init__(self, settings: GpuSettings, fetch: Callable[[], Awaitable[list[dict]]] | None = None,
                 clock: Callable[[], float] = time.monotonic, first_wait: float = FIRST_REFRESH_TIMEOUT):
        super().__init__(self._detect, float(settings.node_cache_seconds), "GPU auto-detect: listing nodes", log,
                         clock)
        self.settings = settings
        self.first_wait = first_wait
        self._fetch = fetch  # the raw node list (tests); None: the API server
        self._loop_task: asyncio.Task | None = None

    @property
    def nodes(self) -> list[GpuNode] | None:
        """The GPU nodes of the last successful list; None before one."""
        return None if self.entry is None else self.entry.value

    def answer(self) -> bool | None:
        """Whether some node has GPUs, from the cache; None before the first successful list."""
        return None if self.nodes is None else detected(self.nodes)

    async def _list(self) -> list[dict]:
        if self._fetch is not None:
            return await self._fetch()
        return await list_nodes(k8s.core(), label_selector(self.settings.node_selector))

    async def _detect(self) -> list[GpuNode]:
        found = gpu_nodes(await self._list(), self.settings.resource, self.settings.node_selector)
        if found != self.nodes:
            self._report(found)
        return found

    def _report(self, found: list[GpuNode]) -> None:
        before = self.answer()
        now = detected(found)
        for n in found:
            if n.allocatable == 0:
                log.warning("Node %s is labelled as a GPU node but advertises no allocatable %s: "
                            "is the device plugin running there?", n.name, self.settings.resource)
        if before != now:
            if now:
                log.info("GPU auto-detect: servers get %s: %s", self.settings.resource,
                         ", ".join(n.describe() for n in found if n.allocatable > 0))
            else:
                log.info("GPU auto-detect: no node advertises allocatable %s; servers start without GPUs",
                         self.settings.resource)

    async def warm(self) -> bool | None:
        """Make sure an answer exists (before the first list ends: wait up to ``first_wait``), then return it."""
        self.start()
        if self.entry is None:
            # only the first list is waited for; after a failed one, spawns go on without GPUs meanwhile
            try:
                await asyncio.wait_for(asyncio.shield(self.refresh()), self.first_wait)
            except TimeoutError:
                log.warning("GPU auto-detect: no node list after %gs; this server starts without GPUs",
                            self.first_wait)
        elif not self.fresh():
            self.refresh()
        return self.answer()

    def start(self) -> None:
        """Start the periodic refresher (idempotent; needs a running event loop)."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            entry = await self.get()
            # after a failure too, wait a full period: a missing permission must not become a busy loop
            await asyncio.sleep(max(1.0, self.ttl - (self._clock() - entry.checked_at)))

    def stop(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None:
                task.cancel()


_cache: NodeCache | None = None


def node_cache(settings: GpuSettings) -> NodeCache:
    """The hub's one node cache (re-created if the settings change, as in tests)."""
    global _cache
    if _cache is None or _cache.settings != settings:
        if _cache is not None:
            _cache.stop()
        _cache = NodeCache(settings)
    return _cache


def auto_answer(settings: GpuSettings) -> bool | None:
    """In auto mode, whether the cluster has GPU nodes as the node cache last saw them (``None``: not known
    yet); ``None`` in the other modes, which do not ask the nodes. No I/O."""
    return node_cache(settings).answer() if settings.mode == 2 else None


def status(settings: GpuSettings) -> dict[str, Any]:
    """The GPU mode and, in auto mode, what the node cache last saw (no I/O): for the health endpoint."""
    names = {0: "off", 1: "forced", 2: "auto"}
    answer: dict[str, Any] = {"mode": settings.mode, "mode_name": names.get(settings.mode, str(settings.mode))}
    if settings.mode == 2:
        nodes = node_cache(settings).nodes
        answer["nodes_with_gpus"] = None if nodes is None else [n.describe() for n in nodes]
    return answer


def start_background(settings: GpuSettings) -> None:
    """From ``configure``: in auto mode, start listing nodes once the hub's event loop runs.

    JupyterHub loads its config inside the running loop, so the first list is under way while the
    hub initializes; without a loop (a config check), the first spawn starts it instead.
    """
    if settings.mode != 2:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_soon(node_cache(settings).start)
