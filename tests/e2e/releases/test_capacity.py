"""Cluster capacity (``/hub/api/ds/cluster``) and health (``/hub/api/ds/health``) on the installed chart, its user
servers real JupyterLab servers on the real node (ci/dev/node.sh), next to kwok's two simulated nodes.

alice runs her default server and a named one, bob his default one: three pods with ci/dev/node-values.yaml's
50m / 128M requests on node-1. The node's usage is what metrics-server scrapes from its kubelet (real figures, so
only their presence is checked); kwok's nodes run none of these pods.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import yaml

from ci.dev import devenv
from hub_extensions import capacity

from ..hubclient import HubClient, new_user

NODE_VALUES = yaml.safe_load(devenv.NODE_VALUES.read_text())["jupyterhub"]["singleuser"]
CPU_REQUEST_M = round(NODE_VALUES["cpu"]["guarantee"] * 1000)
MEMORY_REQUEST = 128 * 2**20  # ci/dev/node-values.yaml's "128M": KubeSpawner counts M as 2**20
APISERVICE = "v1beta1.metrics.k8s.io"
REAL_NODE = "node-1"


@pytest.fixture(scope="module")
def hub(release):
    return release.install({"storage": {"enabled": False}}, values={"hub": {"allowNamedServers": True}})


def wait_ready(client: HubClient, server: str, timeout: float = 90) -> None:
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
    alice.start_server(timeout=90)
    assert alice.api("POST", "/users/alice/servers/lab2").status_code in (201, 202)
    wait_ready(alice, "lab2")
    bob.start_server(timeout=90)
    return {"alice": alice, "bob": bob}


def cluster(client: HubClient) -> dict:
    r = client.api("GET", "/ds/cluster")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def test_the_servers_answer_through_the_proxy(hub, users):
    token = users["alice"].token()
    for path in ("/user/alice/api/status", "/user/alice/lab2/api/status"):
        r = requests.get(f"{hub.url}{path}", headers={"Authorization": f"token {token}"}, timeout=10)
        assert r.status_code == 200 and r.json()["last_activity"], (path, r.status_code, r.text)


def test_cluster_panel_counts_the_running_pods_requests(admin, users, kube):
    answer = cluster(admin)
    nodes = {n["name"]: n for n in answer["nodes"]}
    assert set(nodes) == {REAL_NODE, "cpu-1", "gpu-1"}
    assert nodes["cpu-1"]["allocatable"] == {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 0}
    assert nodes["gpu-1"]["allocatable"] == {"cpu_millicores": 8000, "memory_mb": 32768, "gpus": 2}
    real = kube.json("node", REAL_NODE)["status"]["allocatable"]  # what the kubelet reports for this machine
    assert nodes[REAL_NODE]["allocatable"] == {"cpu_millicores": capacity.millicores(real["cpu"]),
                                               "memory_mb": capacity.mebibytes(real["memory"]), "gpus": 0}
    pods = kube.items("pods", "component=singleuser-server")
    assert len(pods) == 3 and {p["spec"]["nodeName"] for p in pods} == {REAL_NODE}
    for name, node in nodes.items():
        here = sum(p["spec"]["nodeName"] == name for p in pods)
        assert node["requested"] == {"cpu_millicores": here * CPU_REQUEST_M,
                                     "memory_mb": round(here * MEMORY_REQUEST / 2**20), "gpus": 0}, name
    assert answer["requested_scope"] == "namespace" and answer["timestamp"] > 0


def test_node_usage_appears_once_metrics_server_has_scraped_the_kubelet(admin, users):
    deadline = time.monotonic() + 90
    answer: dict = {}
    usage: dict = {}
    while time.monotonic() < deadline:  # metrics-server scrapes every 15 s; a node's CPU is a rate between two
        answer = cluster(admin)
        usage = {n["name"]: n["usage"] for n in answer["nodes"]}
        if answer["metrics_available"] and (usage[REAL_NODE]["cpu_millicores"] or 0) > 0:
            break
        time.sleep(3)
    else:
        raise AssertionError(f"no usage of {REAL_NODE} after 90 s: {usage} ({answer})")
    # the whole machine's memory in use (this process among it), in MiB, below what the node has
    assert 0 < usage[REAL_NODE]["memory_mb"] <= {n["name"]: n for n in answer["nodes"]}[REAL_NODE][
        "allocatable"]["memory_mb"] * 1.1


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
        assert {n["name"]: n for n in answer["nodes"]}["cpu-1"]["allocatable"]["cpu_millicores"] == 8000
        details = admin.api("GET", "/ds/health").json()
        assert details["status"] == "ok" and details["metrics"]["available"] is False
    finally:
        devenv.kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps(saved))
        devenv.kubectl(admin_kubeconfig, "wait", "--for=condition=Available", f"apiservice/{APISERVICE}",
                       "--timeout=60s", check=False)
