"""Cluster capacity (``/hub/api/ds/cluster``) and health (``/hub/api/ds/health``) on the installed chart, with
ci/dev/stub_servers.py standing in for the single-user servers (one process answering on every single-user pod IP;
started through the hub's own spawn path, which polls each server URL until it answers); the node agent runs the
hub and proxy pods only.

alice runs her default server and a named one, bob his default one: three pods with values.example.yaml's
500m / 1G requests and kwok usage annotations of 250m / 300Mi (``singleuser.extraAnnotations``).
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from ci.dev import devenv

from ..hubclient import HubClient, new_user

CPU_REQUEST_M = 500  # values.example.yaml's singleuser.cpu.guarantee 0.5
MEMORY_REQUEST = 2**30  # its singleuser.memory.guarantee "1G": KubeSpawner counts G as 2**30
APISERVICE = "v1beta1.metrics.k8s.io"


@pytest.fixture(scope="module")
def stub_stats_port(release) -> int:
    return release.stub_stats_port


@pytest.fixture(scope="module")
def hub(release):
    release.stub_stats_port = devenv.free_port()
    return release.install({"storage": {"enabled": False}}, values={
        "hub": {"allowNamedServers": True},
        "singleuser": {"extraAnnotations": {"kwok.x-k8s.io/usage-cpu": "250m", "kwok.x-k8s.io/usage-memory": "300Mi"}}})


def wait_ready(client: HubClient, server: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = client.api("GET", f"/users/{client.username}").json()
        if (model.get("servers", {}).get(server) or {}).get("ready"):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{client.username}/{server} not ready")


@pytest.fixture(scope="module")
def users(hub, admin) -> dict[str, HubClient]:
    alice, bob = new_user(hub.url, admin, "alice"), new_user(hub.url, admin, "bob")
    alice.start_server(timeout=60)
    assert alice.api("POST", "/users/alice/servers/lab2").status_code in (201, 202)
    wait_ready(alice, "lab2")
    bob.start_server(timeout=60)
    return {"alice": alice, "bob": bob}


def stub_stats(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()


def cluster(client: HubClient) -> dict:
    r = client.api("GET", "/ds/cluster")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def test_stub_servers_start_through_the_hub_and_answer_the_server_api(hub, users, stub_stats_port):
    assert stub_stats(stub_stats_port)["servers"] == 3
    token = users["alice"].token()
    for path in ("/user/alice/api/status", "/user/alice/lab2/api/status"):
        r = requests.get(f"{hub.url}{path}", headers={"Authorization": f"token {token}"}, timeout=10)
        assert r.status_code == 200 and r.json()["last_activity"], (path, r.status_code, r.text)


def test_cluster_panel_counts_the_running_pods_requests(admin, users, kube):
    answer = cluster(admin)
    nodes = {n["name"]: n for n in answer["nodes"]}
    # kwok's two simulated nodes, and the real node (ci/dev/node.sh), where none of these pods runs
    assert set(nodes) - {"node-1"} == {"cpu-1", "gpu-1"}
    assert nodes["cpu-1"]["allocatable"] == {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 0}
    assert nodes["gpu-1"]["allocatable"] == {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 2}
    pods = kube.items("pods", "component=singleuser-server")
    assert len(pods) == 3
    for name, node in nodes.items():
        here = sum(p["spec"]["nodeName"] == name for p in pods)
        assert node["requested"] == {"cpu_millicores": here * CPU_REQUEST_M,
                                     "memory_mb": round(here * MEMORY_REQUEST / 2**20), "gpus": 0}, name
    assert answer["requested_scope"] == "namespace" and answer["timestamp"] > 0


def test_node_usage_appears_once_metrics_server_has_scraped(admin, users, kube):
    busy = {p["spec"]["nodeName"] for p in kube.items("pods", "component=singleuser-server")}
    deadline = time.monotonic() + 90
    answer: dict = {}
    usage: dict = {}

    def includes_the_pods(figures: dict) -> bool:
        # the node's usage includes its pods' annotated 250m / 300Mi each; a node's CPU is a rate between two
        # scrapes, so the first figures after the pods started may not show them yet
        return (figures["cpu_millicores"] or 0) >= 200 and (figures["memory_mb"] or 0) >= 250

    while time.monotonic() < deadline:
        answer = cluster(admin)
        usage = {n["name"]: n["usage"] for n in answer["nodes"]}
        if answer["metrics_available"] and all(includes_the_pods(usage[n]) for n in busy):
            break
        time.sleep(3)
    else:
        raise AssertionError(f"node usage without the pods' after 90 s: {usage} ({answer})")


def test_health_details_for_admins_and_only_ok_for_others(hub, admin, users):
    anonymous = requests.get(f"{hub.url}/hub/api/ds/health", timeout=10)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert users["bob"].api("GET", "/ds/health").json() == {"status": "ok"}
    stock = requests.get(f"{hub.url}/hub/health", timeout=10)  # JupyterHub's own, not shadowed
    assert stock.status_code == 200 and stock.text == ""
    details = admin.api("GET", "/ds/health").json()
    assert details["status"] == "ok", details
    assert details["version"]["jupyterhub"] == "5.5.0" and details["version"]["jupyterhub_ds"]
    assert details["database"] == {"reachable": True}
    assert details["kubernetes"]["reachable"] is True
    assert details["users"]["total"] == 3  # admin, alice, bob
    assert details["users"]["running_servers"] == 3  # alice's named server counts
    assert details["users"]["users_with_servers"] == 2
    assert details["uptime_seconds"] >= 0


def test_non_admin_gets_json_403_on_the_cluster_api(users):
    r = users["bob"].api("GET", "/ds/cluster")
    assert r.status_code == 403
    assert r.json()["status"] == 403 and r.json()["message"]


def test_metrics_api_down_gives_null_usage_not_an_error(admin, admin_kubeconfig, users):
    saved = json.loads(devenv.kubectl(admin_kubeconfig, "get", "apiservice", APISERVICE, "-o", "json"))
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        saved["metadata"].pop(key, None)
    saved.pop("status", None)
    devenv.kubectl(admin_kubeconfig, "delete", "apiservice", APISERVICE)
    try:
        deadline = time.monotonic() + 40  # past the 10 s cache window
        while True:
            answer = cluster(admin)
            if not answer["metrics_available"] or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert answer["metrics_available"] is False
        assert all(n["usage"] == {"cpu_millicores": None, "memory_mb": None} for n in answer["nodes"])
        assert answer["nodes"][0]["allocatable"]["cpu_millicores"] == 8000
        details = admin.api("GET", "/ds/health").json()
        assert details["status"] == "ok" and details["metrics"]["available"] is False
    finally:
        devenv.kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps(saved))
        devenv.kubectl(admin_kubeconfig, "wait", "--for=condition=Available", f"apiservice/{APISERVICE}",
                       "--timeout=60s", check=False)
