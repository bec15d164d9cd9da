"""GPU modes on the installed chart and the real control plane: the scheduler, the GPU node (gpu-1: 2
nvidia.com/gpu, tainted nvidia.com/gpu:NoSchedule) and the CPU node (cpu-1).

Both are kwok's simulated nodes (a GPU cannot be real here): the release selects them (label
``jupyterhub-ds/node: simulated`` in place of ci/dev/node-values.yaml's ``real``), and a test checks the pod the
scheduler placed, then stops the spawn; nothing runs a server on those nodes, so none becomes ready.

One release, upgraded to each test's ``gpu`` settings in turn (the hub restarts; its database stays). Each test
sets the mode itself: values.example.yaml ships auto mode (2), ci/dev/local-values.yaml turns GPUs off (0).

"No GPU nodes" is simulated without touching the shared cluster's nodes: auto mode with
``gpu.resource: example.com/gpu``, an extended resource no node advertises, sees no GPU node exactly
as a cluster without the NVIDIA device plugin would.
"""

from __future__ import annotations

import json
import time

from ..hubclient import ServiceClient, admin_client, new_user
from ..spawnwatch import env_of, notebook, progress_events, request_start, stop_and_wait

BASE = {"storage": {"enabled": False}}
SIMULATED_NODES = {"singleuser": {"nodeSelector": {"jupyterhub-ds/node": "simulated"}}}
Z2JH_TOLERATION = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_flags(pod: dict) -> tuple[str, str, str]:
    env = env_of(pod)
    return env["ENABLE_GPU_SUPPORT"], env["ENABLE_GPUSTAT"], env["NVIDIA_DETECTED"]


def limits(pod: dict) -> dict:
    return notebook(pod).get("resources", {}).get("limits", {})


def install(release, gpu: dict):
    """The release upgraded to these ``gpu`` settings (over values.example.yaml's and ci/dev/local-values.yaml's:
    helm merges the map, so unset keys keep the shipped defaults) and its first admin's client."""
    hub = release.install({**BASE, "gpu": gpu}, values=SIMULATED_NODES)
    return hub, admin_client(hub.url)


def start_and_get_placed_pod(user, kube, timeout: float = 60) -> dict:
    """Ask for the user's server and return its pod once the scheduler has placed it."""
    status, body = request_start(user)
    assert status in (201, 202), (status, body)
    deadline = time.monotonic() + timeout
    while True:
        pod = kube.user_pod(user.username)
        if pod is not None and pod["spec"].get("nodeName"):
            return pod
        assert time.monotonic() < deadline, f"no scheduled pod for {user.username} after {timeout}s: {pod}"
        time.sleep(0.3)


def test_forced_mode_requests_gpus_and_lands_on_the_gpu_node(release, kube, username):
    hub, admin = install(release, {"mode": 1, "count": 1})
    user = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_placed_pod(user, kube)
        assert limits(pod)["nvidia.com/gpu"] == "1"
        assert pod["spec"]["nodeName"] == "gpu-1"
        assert GPU_TOLERATION in pod["spec"]["tolerations"]
        assert Z2JH_TOLERATION in pod["spec"]["tolerations"]  # Z2JH's user tolerations are kept
        assert gpu_flags(pod) == ("1", "1", "0")  # forced: NVIDIA_DETECTED=0, as upstream
    finally:
        stop_and_wait(user, kube)


def test_auto_mode_with_gpu_nodes_requests_them_from_the_cached_node_list(release, kube, namespace, username):
    hub, admin = install(release, {"mode": 2, "nodeCacheSeconds": 3600})
    first = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_placed_pod(first, kube)
        assert limits(pod)["nvidia.com/gpu"] == "1"
        assert pod["spec"]["nodeName"] == "gpu-1"
        assert gpu_flags(pod) == ("1", "1", "1")
    finally:
        stop_and_wait(first, kube)
    hub.wait_log("GPU auto-detect: servers get nvidia.com/gpu: gpu-1 (2 allocatable, Tesla-T4)")

    # While the cache is fresh a spawn makes no node call: take the hub's permission to list nodes away
    # (the release's own ClusterRoleBinding, named after its namespace); a node call would now fail and be logged.
    binding = f"{namespace}-jupyterhub-ds-hub"
    saved = kube.json("clusterrolebinding", binding)
    saved["metadata"] = {k: v for k, v in saved["metadata"].items() if k in ("name", "labels", "annotations")}
    kube("delete", "clusterrolebinding", binding)
    second = new_user(hub.url, admin, username + "b")
    try:
        pod = start_and_get_placed_pod(second, kube)
        assert limits(pod)["nvidia.com/gpu"] == "1"
    finally:
        kube("apply", "-f", "-", stdin=json.dumps(saved))
        stop_and_wait(second, kube)
    # the pod was created after the GPU decision, so a node call for it would be in the log by now
    assert "listing nodes failed" not in hub.log_text()


def test_auto_mode_without_gpu_nodes_requests_none(release, kube, username):
    hub, admin = install(release, {"mode": 2, "resource": "example.com/gpu"})
    user = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_placed_pod(user, kube)
        assert not any(k.endswith("/gpu") for k in limits(pod))
        assert all(t["key"] != "example.com/gpu" for t in pod["spec"]["tolerations"])
        assert pod["spec"]["nodeName"] == "cpu-1"
        assert gpu_flags(pod) == ("0", "0", "0")
    finally:
        stop_and_wait(user, kube)
    hub.wait_log("no node advertises allocatable example.com/gpu")


def test_gpu_group_limits_who_gets_gpus(release, kube, username):
    hub, admin = install(release, {"mode": 1, "group": "gpu-users"})
    member, other = new_user(hub.url, admin, username), new_user(hub.url, admin, username + "x")
    r = ServiceClient(hub.url, hub.service_token).api("POST", "/groups/gpu-users/users", json={"users": [username]})
    assert r.status_code == 200, r.text  # the group exists: configure() loads it at hub start
    try:
        assert limits(start_and_get_placed_pod(member, kube))["nvidia.com/gpu"] == "1"
        pod = start_and_get_placed_pod(other, kube)
        assert "nvidia.com/gpu" not in limits(pod)
        assert gpu_flags(pod) == ("0", "0", "0")
    finally:
        stop_and_wait(member, kube)
        stop_and_wait(other, kube)


def test_exhausted_gpus_are_explained_on_the_spawn_page(release, kube, username):
    """3 GPUs per server, 2 in the cluster: the scheduler's reason reaches the progress stream."""
    hub, admin = install(release, {"mode": 1, "count": 3})
    user = new_user(hub.url, admin, username)
    try:
        status, body = request_start(user)
        assert status == 202, (status, body)  # pending: the pod exists but cannot be scheduled
        events = progress_events(user, until=lambda e: "Insufficient nvidia.com/gpu" in e.get("message", ""),
                                 timeout=60)
        messages = [e.get("message", "") for e in events]
        explained = [m for m in messages if "Insufficient nvidia.com/gpu" in m]
        assert explained, messages
        assert explained[0].startswith("No free GPU right now"), explained[0]
        assert kube.user_pod(username)["status"]["phase"] == "Pending"
    finally:
        stop_and_wait(user, kube)
