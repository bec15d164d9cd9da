"""Cluster capacity: figures from quantities, requests per node, GPUs, terminated pods, nulls, and the cache's
answers (single flight; the last answer after a failure, the failure itself without one)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from hub_extensions import capacity


def node(name: str, cpu: str = "8", memory: str = "32Gi", gpus: str | None = None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus is not None:
        alloc["nvidia.com/gpu"] = gpus
    return {"metadata": {"name": name}, "status": {"allocatable": alloc}}


def pod(node_name: str | None, phase: str = "Running", cpu: str | None = "500m", memory: str | None = "1G",
        gpus: int = 0, **spec) -> dict:
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory}.items() if v is not None}
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {"spec": {"nodeName": node_name, "containers": [{"name": "notebook", "resources": {
        "requests": requests, "limits": limits}}], **spec}, "status": {"phase": phase}}


@pytest.mark.parametrize(("text", "millis"), [("8", 8000), ("250m", 250), ("1.5", 1500), ("123456789n", 124),
                                              ("0.0001", 1), (None, 0), ("bogus", 0), ("2e3", 2000000)])
def test_millicores(text, millis):
    assert capacity.millicores(text) == millis


@pytest.mark.parametrize(("text", "mib"), [("32Gi", 32768), ("300Mi", 300), ("1G", 954), ("1048576", 1),
                                           ("307200Ki", 300), (None, 0)])
def test_mebibytes(text, mib):
    assert capacity.mebibytes(text) == mib


def test_requests_are_summed_per_node_with_gpus():
    pods = [pod("cpu-1", cpu="250m", memory="512Mi"), pod("cpu-1", cpu="1", memory="1Gi"),
            pod("gpu-1", cpu="2", memory="4Gi", gpus=1)]
    answer = capacity.summarise([node("gpu-1", gpus="2"), node("cpu-1")], pods, [], timestamp=1.0)
    cpu, gpu = answer["nodes"]  # sorted by name
    assert cpu["name"] == "cpu-1"
    assert cpu["allocatable"] == {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 0}
    assert cpu["requested"] == {"cpu_millicores": 1250, "memory_mb": 1536, "gpus": 0}
    assert gpu["allocatable"]["gpus"] == 2
    assert gpu["requested"] == {"cpu_millicores": 2000, "memory_mb": 4096, "gpus": 1}
    assert answer["timestamp"] == 1.0 and answer["metrics_available"] is True


def test_terminated_and_unscheduled_pods_are_ignored():
    pods = [pod("cpu-1", phase="Succeeded"), pod("cpu-1", phase="Failed"), pod(None, phase="Pending"),
            pod("cpu-1", phase="Pending", cpu="100m", memory="100Mi")]
    (n,) = capacity.summarise([node("cpu-1")], pods, [])["nodes"]
    assert n["requested"] == {"cpu_millicores": 100, "memory_mb": 100, "gpus": 0}


def test_init_containers_and_overhead_follow_the_scheduler():
    p = pod("cpu-1", cpu="200m", memory="100Mi", overhead={"cpu": "50m", "memory": "10Mi"},
            initContainers=[{"name": "init", "resources": {"requests": {"cpu": "1", "memory": "50Mi"}}}])
    r = capacity.pod_requests(p, "nvidia.com/gpu")
    assert r.cpu_millicores == 1050 and capacity.mebibytes(r.memory_bytes) == 110


def test_limits_stand_in_for_missing_requests():
    p = {"spec": {"nodeName": "n", "containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
         "status": {"phase": "Running"}}
    assert capacity.pod_requests(p, "nvidia.com/gpu").cpu_millicores == 1000


def test_usage_is_null_until_scraped_and_when_metrics_api_is_down():
    metrics = [{"metadata": {"name": "cpu-1"}, "usage": {"cpu": "250000000n", "memory": "300Mi"}}]
    answer = capacity.summarise([node("cpu-1"), node("gpu-1")], [], metrics)
    assert [n["usage"] for n in answer["nodes"]] == [{"cpu_millicores": 250, "memory_mb": 300},
                                                     {"cpu_millicores": None, "memory_mb": None}]
    down = capacity.summarise([node("cpu-1")], [], None)
    assert down["metrics_available"] is False
    assert down["nodes"][0]["usage"] == {"cpu_millicores": None, "memory_mb": None}


async def test_cache_is_single_flight_and_honours_the_ttl():
    now = [0.0]
    calls = []

    async def fetch():
        calls.append(now[0])
        await asyncio.sleep(0.01)
        return {"n": len(calls)}

    cache = capacity.CapacityCache(fetch, ttl=10, clock=lambda: now[0])
    answers = await asyncio.gather(*(cache.get() for _ in range(20)))
    assert answers == [{"n": 1}] * 20 and len(calls) == 1
    now[0] = 9.9
    assert await cache.get() == {"n": 1}
    now[0] = 10.0
    assert await cache.get() == {"n": 2}


async def test_a_failure_answers_the_last_value_or_raises_without_one():
    """The handler's 503 only while there is no answer at all; a failure holds for the window (no retry storm)."""
    from kubernetes_asyncio.client import ApiException

    now = [0.0]
    results = [ApiException(status=403, reason="Forbidden"), {"ok": 1}, RuntimeError("down")]

    async def fetch():
        r = results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    cache = capacity.CapacityCache(fetch, ttl=10, clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            await cache.get()
        assert info.value.status == 403
    assert cache.cache.fetches == 1  # the refusal is held for the window
    now[0] = 10.0
    assert await cache.get() == {"ok": 1}
    now[0] = 20.0
    assert await cache.get() == {"ok": 1}  # the refresh failed: the last answer
    assert cache.cache.entry.error == "RuntimeError: down"


async def test_fetch_reports_null_usage_when_the_metrics_list_fails(monkeypatch):
    async def nodes():
        return [node("cpu-1")]

    async def metrics():
        raise ConnectionError("metrics API gone")

    monkeypatch.setattr(capacity, "list_nodes", nodes)
    monkeypatch.setattr(capacity, "list_node_metrics", metrics)

    NoReflector = SimpleNamespace(reflectors={})

    async def pods(namespace):
        assert namespace == "ns"
        return [pod("cpu-1", cpu="250m", memory="300Mi")]

    monkeypatch.setattr(capacity, "list_singleuser_pods", pods)
    answer = await capacity.fetch(NoReflector, "ns", "nvidia.com/gpu")
    assert answer["metrics_available"] is False
    assert answer["nodes"][0]["requested"]["cpu_millicores"] == 250
