"""ci/dev/node_agent.py's pure parts: what a kubelet derives from a pod spec (env expansion, Service variables and
names, downward API, image mapping, pod status). The agent as a whole runs in tests/e2e (test_installed.py, and
every host-hub module through the ``node_agent`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ci.dev import node_agent

REPO = Path(__file__).resolve().parents[2]

POD = {
    "metadata": {"name": "hub-1", "namespace": "jh", "uid": "u-1", "labels": {"component": "hub"},
                 "annotations": {"a/b": "c"}},
    "spec": {"nodeName": "cpu-1", "serviceAccountName": "hub",
             "containers": [{"name": "hub", "image": "ghcr.io/jupyterhub-ds/hub:0.1.0",
                             "ports": [{"name": "http", "containerPort": 8081}]}]},
    "status": {"podIP": "127.4.1.3", "hostIP": "127.0.0.1", "podIPs": [{"ip": "127.4.1.3"}]},
}


def svc(name: str, ns: str, ip: str, ports: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_expand_follows_kubernetes_rules():
    env = {"HUB_SERVICE_PORT": "8081", "A": "x"}
    assert node_agent.expand("http://hub:$(HUB_SERVICE_PORT)", env) == "http://hub:8081"
    assert node_agent.expand("$(MISSING) $$(A) $$ $(A)", env) == "$(MISSING) $(A) $ x"


def test_service_address_is_a_loopback_address_per_cluster_and_clusterip():
    assert node_agent.service_address("10.0.0.151", 4) == "127.204.0.151"
    assert node_agent.service_address("10.96.3.7", 1) == "127.201.3.7"
    assert node_agent.service_address("None", 4) is None  # headless
    assert node_agent.service_address("", 4) is None


def test_service_env_is_what_z2jh_reads():
    services = [svc("proxy-api", "jh", "10.0.0.49", [{"port": 8001}]),
                svc("hub", "jh", "10.0.0.241", [{"name": "hub", "port": 8081, "protocol": "TCP"}])]
    env = node_agent.service_env(services, 4)
    assert env["PROXY_API_SERVICE_HOST"] == "127.204.0.49" and env["PROXY_API_SERVICE_PORT"] == "8001"
    assert env["HUB_SERVICE_PORT"] == "8081" and env["HUB_SERVICE_PORT_HUB"] == "8081"
    assert env["HUB_PORT"] == "tcp://127.204.0.241:8081"
    assert env["HUB_PORT_8081_TCP_ADDR"] == "127.204.0.241"


@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "hub-1"), ("metadata.namespace", "jh"), ("metadata.uid", "u-1"),
    ("metadata.labels['component']", "hub"), ("metadata.annotations['a/b']", "c"), ("spec.nodeName", "cpu-1"),
    ("spec.serviceAccountName", "hub"), ("status.podIP", "127.4.1.3"), ("status.podIPs", "127.4.1.3"),
    ("status.hostIP", "127.0.0.1"),
])
def test_field_ref(path, value):
    assert node_agent.field_ref(POD, path) == value


def test_hosts_file_resolves_short_and_qualified_service_names():
    services = [svc("hub", "jh", "10.0.0.241", [{"port": 8081}]), svc("hub", "other", "10.0.0.9", [{"port": 1}]),
                svc("headless", "jh", "None", [{"port": 1}])]
    hosts = node_agent.hosts_file(POD, services, 4, "jh")
    assert "127.204.0.241\thub hub.jh hub.jh.svc hub.jh.svc.cluster.local" in hosts
    assert "127.204.0.9\thub.other hub.other.svc hub.other.svc.cluster.local" in hosts  # no short name
    assert "127.4.1.3\thub-1" in hosts and "headless" not in hosts


@pytest.mark.parametrize(("image", "mapped"), [
    ("ghcr.io/jupyterhub-ds/hub:0.1.0", ".venv/bin"),
    ("quay.io/jupyterhub/k8s-hub:4.4.0", ".venv/bin"),
    ("quay.io/jupyterhub/configurable-http-proxy:5.2.0", "node_modules/.bin"),
    ("ghcr.io/jupyterhub-ds/singleuser:0.1.0", ".venv-singleuser/bin"),
    ("busybox:1.36", None),
    ("quay.io/jupyterhub/k8s-network-tools:4.4.0", None),
])
def test_images_map_to_local_environments(image, mapped):
    env = node_agent.map_image(image, node_agent.load_images())
    assert (env.path[0] if env else None) == (str(REPO / mapped) if mapped else None)


def test_the_z2jh_images_of_the_chart_are_mapped():
    """Every image Z2JH's values name for the pods `make up` runs is in ci/dev/node-agent/images.yaml."""
    local = yaml.safe_load((REPO / "ci" / "dev" / "local-values.yaml").read_text())
    assert local["jupyterhub"]["prePuller"]["hook"]["enabled"] is False  # its image is not mapped
    for image in ("quay.io/jupyterhub/configurable-http-proxy:5.2.0", "ghcr.io/jupyterhub-ds/hub:0.1.0"):
        assert node_agent.map_image(image, node_agent.load_images()) is not None


class _Agent:
    """Just what PodWorker reads from its agent in status_patch (a stand-in: no API calls happen here)."""

    workdir = Path("/nonexistent")


def test_status_reflects_readiness_restarts_and_waiting_reasons():
    worker = node_agent.PodWorker(_Agent(), POD)
    (c,) = worker.containers
    c.state = {"waiting": {"reason": "ImageNotMapped", "message": "no local environment"}}
    patch = worker.status_patch()["status"]
    assert {x["type"]: x["status"] for x in patch["conditions"]} == {
        "Initialized": "True", "ContainersReady": "False", "Ready": "False"}
    assert patch["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImageNotMapped"
    c.state, c.ready, c.restart_count = {"running": {"startedAt": "t"}}, True, 2
    c.last_state = {"terminated": {"exitCode": 3}}
    patch = worker.status_patch()["status"]
    assert {x["type"]: x["status"] for x in patch["conditions"]}["Ready"] == "True"
    status = patch["containerStatuses"][0]
    assert status["restartCount"] == 2 and status["lastState"]["terminated"]["exitCode"] == 3
    assert "phase" not in patch  # restartPolicy Always: kwok's Running stays


def test_pods_with_a_left_label_are_not_run():
    running = {**POD, "spec": {**POD["spec"], "nodeName": "cpu-1"},
               "status": {"phase": "Running", "podIP": "127.1.0.5"}}
    agent = node_agent.Agent([], Path("/nonexistent"), 1, None, leave={"component": "singleuser-server"})
    assert agent.runnable(running)
    labelled = {**running, "metadata": {**running["metadata"], "labels": {"component": "singleuser-server"}}}
    assert not agent.runnable(labelled)
    assert node_agent.Agent([], Path("/nonexistent"), 1, None).runnable(labelled)


def test_the_work_directory_holding_secrets_is_private(tmp_path):
    import os
    import stat

    workdir = tmp_path / "agent"
    old = os.umask(0o022)
    try:
        node_agent.private_workdir(workdir)
        (workdir / "secret").write_text("token")
        assert os.umask(0o022) == 0o077  # what the agent (and every file it writes) runs with
    finally:
        os.umask(old)
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    assert stat.S_IMODE((workdir / "secret").stat().st_mode) == 0o600
