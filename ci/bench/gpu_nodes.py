#!/usr/bin/env python3
"""Benchmark: one GPU node-cache refresh over 5,000 nodes, the old way (V1Node models) and ours (raw JSON).

The nodes are SYNTHETIC but shaped like real ones (labels from cloud providers and NVIDIA GPU feature
discovery, annotations, managedFields, conditions, nodeInfo and the kubelet's image list, 40 images per
node; 5 % of them GPU nodes), served by a local HTTP server on 127.0.0.1 in a child process. The
client is the hub's: kubernetes_asyncio's CoreV1Api.

- old: ``list_node()`` (deserializes every node into V1Node models), ``sanitize_for_serialization``
  back to dicts, then ``gpu.gpu_nodes`` -- what main did every ``nodeCacheSeconds``;
- new: ``gpu.list_nodes`` (pages of 500 with ``_preload_content=False``: ``json.loads`` of each body,
  only name, labels and allocatable kept), then ``gpu.gpu_nodes``.

Prints, for each, the median of a few runs: wall time, the CPU time of the event loop's thread, and
the longest stall of the event loop (a ticker task every 10 ms measures it): the time the hub could
not answer anyone.

    python -m ci.bench.gpu_nodes [--nodes 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from hub_extensions import gpu

RESOURCE = "nvidia.com/gpu"
STAMP = "2026-11-30T12:00:00Z"


def node(i: int) -> dict:
    """One synthetic node, sized and shaped like a cloud node (about 12 KB of JSON)."""
    name = f"node-{i:05d}"
    has_gpu = i % 20 == 0
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "g4dn.xlarge" if has_gpu else "m5.2xlarge",
        "topology.kubernetes.io/region": "eu-central-1", "topology.kubernetes.io/zone": f"eu-central-1{'abc'[i % 3]}",
        "eks.amazonaws.com/nodegroup": "gpu" if has_gpu else "cpu", "eks.amazonaws.com/capacityType": "ON_DEMAND",
        "hub.jupyter.org/node-purpose": "user", "k8s.io/cloud-provider-aws": "a1b2c3d4e5f6",
    }
    allocatable = {"cpu": "7910m", "ephemeral-storage": "95551679124", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                   "memory": "31369748Ki", "pods": "58"}
    taints = []
    if has_gpu:
        labels.update({
            "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "1", "nvidia.com/gpu.product": "Tesla-T4",
            "nvidia.com/gpu.memory": "15360", "nvidia.com/gpu.family": "turing", "nvidia.com/cuda.driver.major": "535",
            "nvidia.com/cuda.driver.minor": "104", "nvidia.com/cuda.runtime.major": "12",
            "nvidia.com/gpu.compute.major": "7", "nvidia.com/gpu.compute.minor": "5", "nvidia.com/mig.capable": "false",
            "feature.node.kubernetes.io/pci-10de.present": "true",
        })
        allocatable[RESOURCE] = "1"
        taints = [{"key": RESOURCE, "value": "present", "effect": "NoSchedule"}]
    conditions = [
        {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": f"kubelet has {m}",
         "lastHeartbeatTime": STAMP, "lastTransitionTime": STAMP}
        for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                        ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                        ("PIDPressure", "SufficientPID", "sufficient PID available"))
    ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
          "lastHeartbeatTime": STAMP, "lastTransitionTime": STAMP}]
    images = [{"names": [f"registry.example.org/team-{k % 7}/image-{k}@sha256:{(i * 40 + k):064x}",
                         f"registry.example.org/team-{k % 7}/image-{k}:v{k}.{i % 10}.0"],
               "sizeBytes": 100_000_000 + k * 1_234_567} for k in range(40)]
    managed = [{"manager": mgr, "operation": "Update", "apiVersion": "v1", "time": STAMP, "fieldsType": "FieldsV1",
                **({"subresource": "status"} if mgr == "kubelet" else {}),
                "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}},
                             "f:status": {"f:conditions": {f'k:{{"type":"{c["type"]}"}}': {
                                 "f:lastHeartbeatTime": {}, "f:status": {}} for c in conditions}}}}
               for mgr in ("kubelet", "kube-controller-manager", "gpu-feature-discovery")]
    return {
        "metadata": {
            "name": name, "uid": f"{i:08x}-0000-4000-8000-{i:012x}", "resourceVersion": str(1000 + i),
            "creationTimestamp": STAMP, "labels": labels, "managedFields": managed,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "alpha.kubernetes.io/provided-node-ip": "10.0.0.1",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                            "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": f"i-{i:017x}"})},
        },
        "spec": {"podCIDR": f"10.{i // 256 % 256}.{i % 256}.0/24", "providerID": f"aws:///eu-central-1a/i-{i:017x}",
                 **({"taints": taints} if taints else {})},
        "status": {
            "capacity": {**allocatable, "cpu": "8", "memory": "32408980Ki"}, "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 256 % 256}.{i % 256}"},
                          {"type": "Hostname", "address": name},
                          {"type": "InternalDNS", "address": f"{name}.internal"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": f"{i:032x}", "systemUUID": f"ec2{i:029x}", "bootID": f"{i:032x}",
                         "kernelVersion": "6.1.112-124.190.amzn2023.x86_64", "osImage": "Amazon Linux 2023",
                         "containerRuntimeVersion": "containerd://1.7.22", "kubeletVersion": "v1.34.4",
                         "kubeProxyVersion": "v1.34.4", "operatingSystem": "linux", "architecture": "amd64"},
            "images": images,
        },
    }


def serve(count: int, address: Any) -> None:
    """Child process: serve ``GET /api/v1/nodes`` on 127.0.0.1 (paginated like the API server: ``limit``
    and ``continue`` = the next offset) until killed; puts its URL and the NodeList size on ``address``.

    A separate process, with every body serialized before the first request, so that neither the
    server's GIL nor its garbage collector shows up in the client's measurements.
    """
    items = [node(i) for i in range(count)]
    whole = json.dumps({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                        "items": items}).encode()
    pages = {}
    for start in range(0, count, gpu.NODE_PAGE):
        more = start + gpu.NODE_PAGE < count
        pages[start] = json.dumps({
            "kind": "NodeList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "1", **({"continue": str(start + gpu.NODE_PAGE)} if more else {})},
            "items": items[start:start + gpu.NODE_PAGE]}).encode()
    del items

    async def nodes(request: web.Request) -> web.Response:
        if int(request.query.get("limit", 0)) != gpu.NODE_PAGE:
            return web.Response(body=whole, content_type="application/json")
        return web.Response(body=pages[int(request.query.get("continue", 0))], content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/v1/nodes", nodes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        address.put((f"http://127.0.0.1:{port}", len(whole)))
        await asyncio.Event().wait()

    asyncio.run(main())


async def old_way(api: CoreV1Api) -> int:
    result = await api.list_node(_request_timeout=60)
    return len(gpu.gpu_nodes(api.api_client.sanitize_for_serialization(result)["items"], RESOURCE))


async def new_way(api: CoreV1Api) -> int:
    return len(gpu.gpu_nodes(await gpu.list_nodes(api, None, 60), RESOURCE))


async def longest_stall(done: asyncio.Event) -> float:
    """The longest gap between ticks of a 10 ms ticker: how long the loop could not run anything else."""
    worst, last = 0.0, time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.01), now
    return worst


async def measure(host: str, runs: int) -> dict[str, tuple[float, float, float, int]]:
    config = Configuration(host=host)
    results = {}
    async with ApiClient(config) as client:
        api = CoreV1Api(client)
        for name, way in (("old (V1Node models)", old_way), ("new (raw JSON, pages)", new_way)):
            walls, cpus, stalls = [], [], []
            for _ in range(runs):
                done = asyncio.Event()
                ticker = asyncio.ensure_future(longest_stall(done))
                await asyncio.sleep(0.02)
                wall, cpu = time.perf_counter(), time.thread_time()
                found = await way(api)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.thread_time() - cpu)
                done.set()
                stalls.append(await ticker)
            results[name] = (statistics.median(walls), statistics.median(cpus), statistics.median(stalls), found)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    address: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(opts.nodes, address), daemon=True)
    server.start()
    try:
        host, size = address.get(timeout=300)
        print(f"gpu node cache refresh: {opts.nodes} synthetic nodes, {size / 1e6:.1f} MB NodeList, "
              f"median of {opts.runs} runs")
        results = asyncio.run(measure(host, opts.runs))
    finally:
        server.terminate()
        server.join(10)
    for name, (wall, cpu, stall, found) in results.items():
        print(f"  {name:22s} wall {wall:6.2f} s   event-loop CPU {cpu:6.2f} s   longest loop stall {stall:6.2f} s"
              f"   GPU nodes found {found}")
    (old_wall, old_cpu, old_stall, _), (new_wall, new_cpu, new_stall, _) = results.values()
    print(f"  speed-up: wall x{old_wall / new_wall:.1f}, event-loop CPU x{old_cpu / new_cpu:.1f}, "
          f"longest stall x{old_stall / new_stall:.1f}")


if __name__ == "__main__":
    main()
