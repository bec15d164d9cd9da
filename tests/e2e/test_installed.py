"""End to end on the INSTALLED chart: `helm upgrade --install` of chart/ (real Z2JH 4.4.0) with values.example.yaml,
ci/dev/local-values.yaml and ci/dev/node-values.yaml, pods on the real node, the hub configured by Z2JH's own
jupyterhub_config.py.

One install per module (installs take ~30 s); the tests run in file order and build on each other's users.

Files reach the volumes through the users' own servers (Jupyter contents API, user token). The contents API only
serves the server's root_dir (/home/lab/workspace, the workspace claim); to write into the home claim and the
shared volume through it, the test places two symlinks into each workspace claim's directory on this machine
(``home -> /home/jovyan`` and ``shared -> /mnt/shared``, resolved inside the pod's mount namespace), the way an
admin startup script could. Where a file landed is checked in the claim's PersistentVolume directory.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from ci.dev import devenv

from .conftest import Kube
from .hubclient import HubClient, admin_client, new_user

LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'


@dataclass
class Installed:
    namespace: str
    url: str
    password: str
    kube: Kube
    admin_kubeconfig: Path

    def pod(self, component: str) -> dict:
        pods = [p for p in self.kube.items("pods", f"component={component}")
                if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        return pods[0]


@pytest.fixture(scope="module")
def installed(admin_kubeconfig: Path) -> Iterator[Installed]:
    namespace = f"e2e-chart-{uuid.uuid4().hex[:6]}"
    try:
        devenv.install_chart(admin_kubeconfig, namespace, values=[devenv.NODE_VALUES])
        url = devenv.wait_installed(admin_kubeconfig, namespace)
        yield Installed(namespace, url, devenv.first_admin_password(admin_kubeconfig, namespace),
                        Kube(admin_kubeconfig, namespace), admin_kubeconfig)
    finally:
        devenv.remove_test_install(admin_kubeconfig, namespace)


@pytest.fixture(scope="module")
def admin(installed: Installed) -> HubClient:
    return admin_client(installed.url, installed.password)


@pytest.fixture(scope="module")
def users(installed: Installed, admin: HubClient) -> dict[str, HubClient]:
    return {name: new_user(installed.url, admin, f"{name}{uuid.uuid4().hex[:4]}") for name in ("alice", "bob")}


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def link_volumes(kube: Kube, username: str) -> None:
    """The two symlinks of the module docstring, in the user's workspace claim."""
    workspace = kube.pv_dir(kube.user_claims(username)["workspace"])
    for name, target in (("home", "/home/jovyan"), ("shared", "/mnt/shared")):
        if not (workspace / name).is_symlink():
            (workspace / name).symlink_to(target)


def contents(installed: Installed, user: HubClient, token: str, path: str, text: str | None = None
             ) -> requests.Response:
    url = f"{installed.url}/user/{user.username}/api/contents/{path}"
    headers = {"Authorization": f"token {token}"}
    if text is None:
        return requests.get(url, headers=headers, params={"content": "1"}, timeout=30)
    return requests.put(url, headers=headers, json={"type": "file", "format": "text", "content": text}, timeout=30)


def wait_pod_gone(kube: Kube, username: str, timeout: float = 90) -> None:
    kube.wait_user_pod_gone(username, timeout)


def test_hub_and_proxy_pods_are_running_and_ready_with_logs_and_port_forward(installed):
    for component in ("hub", "proxy"):
        pod = installed.pod(component)
        assert pod["status"]["phase"] == "Running" and ready(pod), pod["status"]
        status = pod["status"]["containerStatuses"][0]
        assert status["containerID"].startswith("containerd://") and status["ready"] is True
    log = installed.kube("logs", "deploy/hub")
    assert "JupyterHub is now running" in log, log[-2000:]
    # Z2JH's own configuration ran: the hub reaches the proxy through the proxy-api Service by name
    assert "proxy-api" in log or "http://hub:8081" in log, log[-2000:]

    port = devenv.free_port()
    forward = subprocess.Popen([devenv.kubectl_bin(), "--kubeconfig", str(installed.admin_kubeconfig), "-n",
                                installed.namespace, "port-forward", "svc/proxy-public", f"{port}:80"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        devenv.wait_http(f"http://127.0.0.1:{port}/hub/api/", 30, "the hub through kubectl port-forward")
        r = requests.get(f"http://127.0.0.1:{port}/hub/api/", timeout=10)
        assert r.status_code == 200 and "version" in r.json()
    finally:
        forward.terminate()
        forward.wait(10)


def test_user_data_lives_in_the_users_volumes(installed, admin, users):
    alice, bob = users["alice"], users["bob"]
    kube = installed.kube
    alice.start_server(timeout=180)
    pod = kube.user_pod(alice.username)
    assert pod["status"]["phase"] == "Running" and ready(pod)
    link_volumes(kube, alice.username)
    token = alice.token()
    r = contents(installed, alice, token, "home/notes.txt", "alice's notes")
    assert r.status_code == 201, r.text
    r = contents(installed, alice, token, "shared/from-alice.txt", "for everyone")
    assert r.status_code == 201, r.text
    claims = kube.user_claims(alice.username)
    assert (kube.pv_dir(claims["home"]) / "jovyan" / "notes.txt").read_text() == "alice's notes"

    # stop/start: same claims, same data
    alice.stop_server()
    alice.start_server(timeout=180)
    assert contents(installed, alice, token, "home/notes.txt").json()["content"] == "alice's notes"

    # Restart Server: a new pod, same data
    before = kube.user_pod(alice.username)["metadata"]["uid"]
    r = alice.api("POST", f"/users/{alice.username}/restart-server")
    assert r.status_code in (200, 202), r.text
    alice.wait_server(ready=True, timeout=180)
    assert kube.user_pod(alice.username)["metadata"]["uid"] != before
    assert contents(installed, alice, token, "home/notes.txt").json()["content"] == "alice's notes"

    # another user: not alice's home, but the same shared volume; and not alice's server
    bob.start_server(timeout=180)
    link_volumes(kube, bob.username)
    bob_token = bob.token()
    assert contents(installed, bob, bob_token, "home/notes.txt").status_code == 404
    assert contents(installed, bob, bob_token, "shared/from-alice.txt").json()["content"] == "for everyone"
    r = requests.get(f"{installed.url}/user/{alice.username}/api/contents/home/notes.txt",
                     headers={"Authorization": f"token {bob_token}"}, timeout=30, allow_redirects=False)
    assert r.status_code in (302, 403, 404), r.status_code
    bob.stop_server()

    # reset alice's home: the file is gone on the next start
    alice.stop_server()
    wait_pod_gone(kube, alice.username)
    deadline = time.monotonic() + 60
    while True:
        r = alice.api("DELETE", f"/users/{alice.username}/manage-volumes", json={"volumes": ["home"]})
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    alice.start_server(timeout=180)
    link_volumes(kube, alice.username)
    assert contents(installed, alice, token, "home/notes.txt").status_code == 404
    assert contents(installed, alice, token, "shared/from-alice.txt").status_code == 200
    r = contents(installed, alice, token, "home/after-reset.txt", "kept over the upgrade")
    assert r.status_code == 201, r.text
    alice.stop_server()


def test_helm_upgrade_keeps_data_and_database_and_restarts_the_hub_on_a_settings_change(installed, admin, users,
                                                                                           tmp_path):
    alice = users["alice"]
    kube = installed.kube
    hub_before = installed.pod("hub")
    checksum_before = hub_before["metadata"]["annotations"]["checksum/secret"]
    users_before = sorted(u["name"] for u in admin.api("GET", "/users").json())

    values = tmp_path / "changed.yaml"
    values.write_text(json.dumps({
        "jupyterhub": {"custom": {"brandingFiles": {"logo.svg": base64.b64encode(LOGO).decode()},
                                  "ds": {"branding": {"logo": "logo.svg"}, "lab": {"timezone": "Europe/Berlin"}}}},
    }))
    devenv.install_chart(installed.admin_kubeconfig, installed.namespace, values=[devenv.NODE_VALUES, values])
    deadline = time.monotonic() + 180
    while True:  # the hub Deployment rolls: a new pod with a new checksum
        pods = [p for p in kube.items("pods", "component=hub") if not p["metadata"].get("deletionTimestamp")]
        if len(pods) == 1 and pods[0]["metadata"]["uid"] != hub_before["metadata"]["uid"] and ready(pods[0]):
            break
        assert time.monotonic() < deadline, [p["metadata"]["name"] for p in pods]
        time.sleep(1)
    assert pods[0]["metadata"]["annotations"]["checksum/secret"] != checksum_before
    devenv.wait_installed(installed.admin_kubeconfig, installed.namespace)

    # the hub database survived (same users; the admin's login still works), and the settings took effect
    admin = admin_client(installed.url, installed.password)
    assert sorted(u["name"] for u in admin.api("GET", "/users").json()) == users_before
    r = requests.get(f"{installed.url}/hub/logo", timeout=30)
    assert r.status_code == 200 and r.content == LOGO, (r.status_code, r.content[:200])
    alice.login()
    alice.start_server(timeout=180)
    env = {e["name"]: e.get("value") for e in kube.user_pod(alice.username)["spec"]["containers"][0]["env"]}
    assert env["JUPYTERLAB_TIMEZONE"] == "Europe/Berlin"
    token = alice.token()
    assert contents(installed, alice, token, "home/after-reset.txt").json()["content"] == "kept over the upgrade"
    alice.stop_server()


def container_pids(container_id: str) -> list[int]:
    """The processes in a container on the real node (its cgroup); none once the container is gone."""
    procs = devenv.container_cgroup(container_id) / "cgroup.procs"
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


def test_no_process_outlives_its_pod(installed, users):
    """Every process of a stopped server's container is gone once its pod is (the kubelet and runc clean up)."""
    bob = users["bob"]
    bob.start_server(timeout=180)
    container = installed.kube.user_pod(bob.username)["status"]["containerStatuses"][0]["containerID"]
    pids = container_pids(container)
    assert pids, container
    bob.stop_server()
    installed.kube.wait_user_pod_gone(bob.username)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        if not alive:
            return
        time.sleep(0.5)
    pytest.fail(f"processes {alive} of {bob.username}'s server still run after its pod is gone")
