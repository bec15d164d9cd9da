"""The whole path on a real control plane, on the chart installed with the shipped values: sign-up, authorization,
spawn, proxy, stop; GPU scheduling."""

from __future__ import annotations

import time

import requests

from ..hubclient import new_user


def test_spawn_through_hub_creates_pod_and_bound_claims(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    user.start_server()

    pods = kube.items("pods", f"hub.jupyter.org/username={username}")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == "node-1" and pod["status"]["podIP"].startswith("10.244.")  # on its bridge

    claims = kube.items("pvc", f"hub.jupyter.org/username={username}")
    assert sorted(c["metadata"]["labels"]["jupyterhub-ds/volume"] for c in claims) == ["cache", "home", "workspace"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
               if "persistentVolumeClaim" in v}
    assert {c["metadata"]["name"] for c in claims} <= mounted

    # the real single-user server answers through the real proxy
    token = user.token()
    r = requests.get(f"{hub.url}/user/{username}/api/status", headers={"Authorization": f"token {token}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    assert "started" in r.json()

    # the proxy's record of that request reaches the hub database through the batched last-activity pass
    # (hub_extensions.last_activity, every last_activity_interval: 60 s in Z2JH)
    assert "the last-activity pass runs in batches" in hub.wait_log("last-activity pass")
    routes_seen = requests.get(f"{hub.url}/hub/api/users/{username}", timeout=30,
                               headers={"Authorization": f"token {hub.service_token}"}).json()
    before = routes_seen["servers"][""]["last_activity"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        requests.get(f"{hub.url}/user/{username}/api/status", headers={"Authorization": f"token {token}"}, timeout=30)
        now = requests.get(f"{hub.url}/hub/api/users/{username}", timeout=30,
                           headers={"Authorization": f"token {hub.service_token}"}).json()
        if now["servers"][""]["last_activity"] != before:
            break
        time.sleep(2)
    assert now["servers"][""]["last_activity"] > before, (before, now["servers"][""]["last_activity"])

    user.stop_server()
    deadline = time.monotonic() + 60
    while kube.items("pods", f"hub.jupyter.org/username={username}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert kube.items("pods", f"hub.jupyter.org/username={username}") == []


GPU_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: main
    image: busybox
    resources: {{limits: {limits}}}
  tolerations: {tolerations}
"""


def _scheduled_node(kube, name: str, timeout: float = 60) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = kube.json("pod", name)["spec"].get("nodeName")
        if node:
            return node
        time.sleep(0.5)
    return None


def test_gpu_pod_lands_on_gpu_node_and_plain_pod_does_not(kube):
    toleration = '[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]'
    kube("apply", "-f", "-", stdin=GPU_POD.format(name="gpu-pod", limits='{"nvidia.com/gpu": "1"}',
                                                   tolerations=toleration))
    kube("apply", "-f", "-", stdin=GPU_POD.format(name="plain-pod", limits='{cpu: "100m"}', tolerations="[]"))
    try:
        assert _scheduled_node(kube, "gpu-pod") == "gpu-1"
        assert _scheduled_node(kube, "plain-pod") == "cpu-1"
    finally:
        kube("delete", "pod", "gpu-pod", "plain-pod", "--wait=false", check=False)


def test_the_started_hub_froze_its_start_up_objects(hub):
    """config.freeze_gc_when_started ran in the real hub: full collections no longer scan start-up objects."""
    assert "start-up objects frozen out of garbage collection" in hub.wait_log("start-up objects frozen")
