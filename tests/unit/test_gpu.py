"""GPU modes: node parsing, the decision table, the pod patch, the background node cache, spawn feedback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from kubernetes_asyncio.client import (
    ApiException,
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
    V1Toleration,
)
from traitlets.config import Config

from hub_extensions import configure, gpu, k8s
from hub_extensions.settings import GpuSettings
from hub_extensions.spawner import DsKubeSpawner

from .spawner_fixtures import as_json, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest
from .test_k8s import RawResponse

__all__ = ["fake_kubeconfig"]

Z2JH_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def node(name: str, allocatable: dict | None = None, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"allocatable": {"cpu": "8", **(allocatable or {})}}}


CPU_NODE = node("cpu-1")
GPU_NODE = node("gpu-1", {"nvidia.com/gpu": "2"},
                {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "2", "nvidia.com/gpu.product": "Tesla-T4"})


@pytest.fixture(autouse=True)
def no_shared_cache():
    """Each test starts without the hub's node cache (it is process-wide)."""
    yield
    if gpu._cache is not None:
        gpu._cache.stop()
    gpu._cache = None


# ---------------------------------------------------------------- nodes

def test_gpu_nodes_allocatable_is_authoritative_labels_are_hints():
    found = gpu.gpu_nodes([CPU_NODE, GPU_NODE], "nvidia.com/gpu")
    assert found == [gpu.GpuNode("gpu-1", 2, True, 2, "Tesla-T4")]
    assert gpu.detected(found)

    labelled_only = node("gpu-2", {}, {"nvidia.com/gpu.present": "true"})  # device plugin not running
    found = gpu.gpu_nodes([CPU_NODE, labelled_only], "nvidia.com/gpu")
    assert [n.name for n in found] == ["gpu-2"]
    assert not gpu.detected(found)

    assert not gpu.detected(gpu.gpu_nodes([node("x", {"nvidia.com/gpu": "0"})], "nvidia.com/gpu"))
    assert not gpu.detected(gpu.gpu_nodes([node("x", {"nvidia.com/gpu": "bogus"})], "nvidia.com/gpu"))


def test_gpu_nodes_other_resource_and_node_selector():
    assert not gpu.detected(gpu.gpu_nodes([CPU_NODE, GPU_NODE], "example.com/gpu"))
    assert gpu.gpu_nodes([GPU_NODE], "nvidia.com/gpu", {"pool": "gpu"}) == []
    pooled = node("gpu-3", {"nvidia.com/gpu": "1"}, {"pool": "gpu"})
    assert gpu.detected(gpu.gpu_nodes([GPU_NODE, pooled], "nvidia.com/gpu", {"pool": "gpu"}))


# ---------------------------------------------------------------- decision table

@pytest.mark.parametrize(("mode", "nodes_have_gpus", "expected"), [
    (0, None, (False, False)),
    (0, True, (False, False)),
    (1, None, (True, False)),
    (1, False, (True, False)),  # forced: NVIDIA_DETECTED stays 0, as upstream
    (2, True, (True, True)),
    (2, False, (False, False)),
    (2, None, (False, False)),  # no answer yet: no GPUs rather than a pod that may never schedule
])
def test_decision_table(mode, nodes_have_gpus, expected):
    decision = gpu.decide(GpuSettings(mode=mode), [], nodes_have_gpus)
    assert (decision.gpu, decision.detected) == expected


@pytest.mark.parametrize("mode", [1, 2])
def test_gpu_group_limits_who_gets_gpus(mode):
    settings = GpuSettings(mode=mode, group="gpu-users")
    assert gpu.decide(settings, ["gpu-users"], True).gpu
    assert gpu.decide(settings, ["other"], True) == gpu.GpuDecision(False, False)


# ---------------------------------------------------------------- pod patch

def gpu_pod(tolerations: list | None = None, resources: V1ResourceRequirements | None = None) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="jupyter-alice"), spec=V1PodSpec(
        containers=[V1Container(name="notebook", image="lab",
                                resources=resources or V1ResourceRequirements(requests={"cpu": "1"}, limits={}))],
        tolerations=tolerations))


def test_add_gpus_requests_tolerates_and_keeps_z2jh_tolerations():
    pod = gpu_pod([V1Toleration(**t) for t in Z2JH_TOLERATIONS])
    pod = as_json(gpu.add_gpus(pod, GpuSettings(mode=1, count=2, node_selector={"gpu": "t4"})))
    assert notebook(pod)["resources"] == {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}
    assert pod["spec"]["tolerations"] == [*Z2JH_TOLERATIONS, GPU_TOLERATION]
    assert pod["spec"]["nodeSelector"] == {"gpu": "t4"}


def test_add_gpus_is_idempotent_and_aligns_a_conflicting_guarantee():
    pod = gpu_pod([GPU_TOLERATION], V1ResourceRequirements(requests={"nvidia.com/gpu": "4"},
                                                           limits={"nvidia.com/gpu": "4", "memory": "1G"}))
    gpu.add_gpus(pod, GpuSettings(count=1))
    pod = as_json(gpu.add_gpus(pod, GpuSettings(count=1)))
    assert notebook(pod)["resources"] == {"requests": {"nvidia.com/gpu": "1"},
                                          "limits": {"nvidia.com/gpu": "1", "memory": "1G"}}
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert "nodeSelector" not in pod["spec"]


def test_add_gpus_without_tolerations_or_resources():
    pod = V1Pod(spec=V1PodSpec(containers=[V1Container(name="notebook")]))
    pod = as_json(gpu.add_gpus(pod, GpuSettings()))
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert notebook(pod)["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


# ---------------------------------------------------------------- through KubeSpawner with a profile

def configured(settings: dict, **spawner_config: object) -> Config:
    c = Config()
    c.KubeSpawner.tolerations = Z2JH_TOLERATIONS
    for key, value in spawner_config.items():
        setattr(c.KubeSpawner, key, value)
    configure(c, settings)
    return c


async def test_forced_mode_survives_a_profile_that_replaces_tolerations(fake_kubeconfig):
    profiles = [{"display_name": "CPU only", "slug": "cpu", "kubespawner_override": {
        "tolerations": [{"key": "pool", "operator": "Exists"}],
        "extra_resource_limits": {"nvidia.com/gpu": "0"},
    }}]
    c = configured({"gpu": {"mode": 1, "count": 1}}, profile_list=profiles)
    pod = as_json(await spawn_manifest(make_spawner(c, fake_user()), {"profile": "cpu"}))
    assert notebook(pod)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"] == [{"key": "pool", "operator": "Exists"}, GPU_TOLERATION]


async def test_mode_0_and_non_members_get_no_gpu(fake_kubeconfig):
    for settings, groups in (({"gpu": {"mode": 0}}, []), ({"gpu": {"mode": 1, "group": "gpu-users"}}, ["x"])):
        pod = as_json(await spawn_manifest(make_spawner(configured(settings), fake_user(groups=groups))))
        assert "nvidia.com/gpu" not in (notebook(pod)["resources"].get("limits") or {})
        assert pod["spec"]["tolerations"] == Z2JH_TOLERATIONS


async def test_auto_mode_reads_the_cache_without_listing_nodes(fake_kubeconfig, monkeypatch):
    calls = []

    async def fetch():
        calls.append(1)
        return [CPU_NODE, GPU_NODE]

    monkeypatch.setattr(gpu, "start_background", lambda settings: None)  # no real node list in unit tests
    c = configured({"gpu": {"mode": 2}})
    cache = gpu._cache = gpu.NodeCache(DsKubeSpawner.ds_settings.gpu, fetch=fetch)
    await cache.warm()
    assert calls == [1]
    pod = as_json(await spawn_manifest(make_spawner(c, fake_user())))
    assert notebook(pod)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert calls == [1]
    cache.stop()


# ---------------------------------------------------------------- node cache

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_first_warm_waits_then_serves_from_cache():
    calls = []

    async def fetch():
        calls.append(1)
        return [GPU_NODE]

    clock = FakeClock()
    cache = gpu.NodeCache(GpuSettings(mode=2, node_cache_seconds=60), fetch=fetch, clock=clock)
    try:
        assert await cache.warm() is True
        assert await cache.warm() is True
        assert len(calls) == 1  # fresh: no second list
    finally:
        cache.stop()


async def test_cache_stale_answer_is_served_while_refreshing_in_background():
    release = asyncio.Event()
    nodes = [[GPU_NODE], [CPU_NODE]]

    async def fetch():
        result = nodes.pop(0)
        if not nodes:
            await release.wait()  # the second list hangs until released
        return result

    clock = FakeClock()
    cache = gpu.NodeCache(GpuSettings(mode=2, node_cache_seconds=60), fetch=fetch, clock=clock)
    try:
        assert await cache.warm() is True
        clock.now += 61
        # stale: the spawn gets the last answer at once, a refresh runs behind it
        assert await asyncio.wait_for(cache.warm(), 0.5) is True
        assert cache.fetches == 2
        release.set()
        await cache.refresh()
        assert cache.answer() is False
    finally:
        cache.stop()


async def test_cache_first_wait_is_bounded_and_failures_keep_the_last_answer(caplog):
    hang = asyncio.Event()

    async def slow():
        await hang.wait()
        return [GPU_NODE]

    cache = gpu.NodeCache(GpuSettings(mode=2), fetch=slow, first_wait=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="JupyterHub.ds.gpu"):
            assert await asyncio.wait_for(cache.warm(), 1) is None
        assert "no node list after" in caplog.text
        hang.set()
        await cache.refresh()
        assert cache.answer() is True
    finally:
        cache.stop()

    async def broken():
        raise ApiException(status=403, reason="Forbidden")

    cache._fetch = broken
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="JupyterHub.ds.gpu"):
        await cache.refresh()
    assert cache.answer() is True  # a failed list keeps the previous answer
    assert "listing nodes failed (403 Forbidden)" in caplog.text


async def test_cache_background_loop_refreshes_every_ttl():
    calls = []

    async def fetch():
        calls.append(1)
        return []

    cache = gpu.NodeCache(GpuSettings(mode=2, node_cache_seconds=5), fetch=fetch)
    cache.ttl = 0.05  # the setting's minimum is 5 s; shorten it for the test
    cache.start()
    cache.start()  # idempotent
    await asyncio.sleep(1.3)
    cache.stop()
    assert 2 <= len(calls) <= 3  # the loop never sleeps less than 1 s


async def test_start_background_only_in_auto_mode():
    gpu.start_background(GpuSettings(mode=1))
    assert gpu._cache is None
    gpu.start_background(GpuSettings(mode=2))
    assert gpu._cache is not None
    gpu._cache._fetch = _no_nodes
    await asyncio.sleep(0)  # the call_soon runs: the loop task exists
    assert gpu._cache._loop_task is not None


async def _no_nodes() -> list[dict]:
    return []


async def _gpu_node() -> list[dict]:
    return [GPU_NODE]


async def test_after_a_failed_first_list_spawns_do_not_wait_again():
    calls = []

    async def failing() -> list[dict]:
        calls.append(1)
        raise OSError("API server unreachable")

    cache = gpu.NodeCache(GpuSettings(), fetch=failing, first_wait=5)
    assert await cache.warm() is None and len(calls) == 1  # the first spawn waited for the failed list
    started = asyncio.get_running_loop().time()
    assert await cache.warm() is None
    assert asyncio.get_running_loop().time() - started < 1  # the next spawn did not wait
    cache.stop()


# ---------------------------------------------------------------- listing nodes without models

class _FakeCoreApi:
    def __init__(self, *responses: RawResponse):
        self.responses, self.calls = list(responses), []

    async def list_node(self, **kwargs):
        self.calls.append(kwargs)
        return self.responses.pop(0)


BIG_NODE = {**GPU_NODE, "metadata": {**GPU_NODE["metadata"], "managedFields": [{"manager": "kubelet"}]},
            "status": {**GPU_NODE["status"], "images": [{"names": ["x"], "sizeBytes": 1}]}}


async def test_list_nodes_reads_raw_json_page_by_page_and_keeps_only_what_it_needs():
    api = _FakeCoreApi(RawResponse(200, {"kind": "NodeList", "metadata": {"continue": "t1"}, "items": [CPU_NODE]}),
                       RawResponse(200, {"kind": "NodeList", "metadata": {}, "items": [BIG_NODE]}))
    nodes = await gpu.list_nodes(api, gpu.label_selector({"pool": "gpu", "a": "b"}), 10, page_size=1)
    assert nodes == [CPU_NODE, GPU_NODE]  # plain dicts, no V1Node, no images or managedFields
    assert api.calls == [
        {"limit": 1, "_preload_content": False, "label_selector": "a=b,pool=gpu", "_request_timeout": 10},
        {"limit": 1, "_preload_content": False, "label_selector": "a=b,pool=gpu", "_continue": "t1",
         "_request_timeout": 10}]
    assert gpu.label_selector({}) is None
    assert gpu.gpu_nodes(nodes, "nvidia.com/gpu") == [gpu.GpuNode("gpu-1", 2, True, 2, "Tesla-T4")]


async def test_list_nodes_raises_the_api_servers_refusal():
    api = _FakeCoreApi(RawResponse(403, {"kind": "Status", "message": "nodes is forbidden"}))
    with pytest.raises(ApiException) as info:
        await gpu.list_nodes(api)
    assert info.value.status == 403 and "forbidden" in info.value.body
    assert api.calls == [{"limit": gpu.NODE_PAGE, "_preload_content": False, "_request_timeout": k8s.REQUEST_TIMEOUT}]


async def test_cache_lists_with_the_node_selector(monkeypatch):
    api = _FakeCoreApi(RawResponse(200, {"items": [GPU_NODE]}))
    monkeypatch.setattr(k8s, "core", lambda: api)
    cache = gpu.NodeCache(GpuSettings(node_selector={"nvidia.com/gpu.present": "true"}))
    await cache.refresh()
    assert cache.answer() is True
    assert api.calls[0]["label_selector"] == "nvidia.com/gpu.present=true"


async def test_status_reports_the_mode_and_the_cached_nodes_without_io():
    assert gpu.status(GpuSettings(mode=1)) == {"mode": 1, "mode_name": "forced"}
    settings = GpuSettings(mode=2, node_cache_seconds=3601)
    cache = gpu.node_cache(settings)
    assert gpu.status(settings)["nodes_with_gpus"] is None  # before the first list
    cache._fetch = _gpu_node
    await cache.refresh()
    assert gpu.status(settings) == {"mode": 2, "mode_name": "auto",
                                    "nodes_with_gpus": ["gpu-1 (2 allocatable, Tesla-T4)"]}
