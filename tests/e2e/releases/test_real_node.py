"""The chart on the real node (ci/dev/node.sh: a kubelet, containerd and runc running the images built from
images/*/Dockerfile): what only a kubelet enforces is checked inside the running containers, not on the pod spec.
The hub and the proxy reach each other and the users' servers through kube-proxy and the cluster DNS.

- the user's server runs as uid 1000 and writes to its claims through the pod's fsGroup;
- a member of the docker-socket group opens a socket this test serves at the group's hostPath; a non-member has
  no such path; a member of the privileged group has every capability, others the runtime's default set;
- a group policy's limits are in the container's cgroups, its read-only mount refuses writes;
- a user's own environment variable reaches the process from their Secret;
- ``kubectl exec`` and ``kubectl logs`` go through the kubelet; a crashing container is restarted with back-off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..hubclient import ServiceClient, new_user
from ..release import Release
from ..spawnwatch import start_and_get_pod, stop_and_wait
from .conftest import DOCKER_GID

POLICIES = [
    {"group": "rn-limits", "resources": {"cpuLimit": "500m", "memoryLimit": "300Mi"},
     "mounts": [{"claimName": "rn-data", "mountPath": "/data", "readOnly": True}]},
]


@pytest.fixture(scope="module")
def release(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    release = Release.new(admin_kubeconfig, "e2e-node", tmp_path_factory)
    yield release
    release.remove()


@pytest.fixture(scope="module")
def hub(release: Release, docker_socket: Path, kube) -> Release:
    settings = {"gpu": {"mode": 0}, "groupPolicies": POLICIES,
                "groups": {"dockerSock": {"hostPath": str(docker_socket), "gid": DOCKER_GID}}}
    release.install(settings)
    # the policy's read-only claim, on the node's local volumes
    kube("apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: rn-data}\nspec: {storageClassName: node-local, "
        "accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"))
    # the privileged group's pods need a namespace that Pod Security admits them in
    kube("label", "--overwrite", f"namespace/{release.namespace}", "pod-security.kubernetes.io/enforce=privileged")
    return release


def set_member(api: ServiceClient, group: str, username: str) -> None:
    assert api.api("POST", f"/groups/{group}/users", json={"users": [username]}).status_code == 200


def exec_in(kube, pod: dict, *argv: str, check: bool = True) -> str:
    """``kubectl exec`` in the notebook container (through the API server and the kubelet)."""
    return kube("exec", pod["metadata"]["name"], "-c", "notebook", "--", *argv, check=check)


def py(kube, pod: dict, code: str) -> str:
    return exec_in(kube, pod, "python3", "-c", code).strip()


def test_the_pods_run_on_the_real_node(hub, kube):
    for component in ("hub", "proxy"):
        pod = kube.items("pods", f"component={component}")[0]
        assert pod["spec"]["nodeName"] == "node-1"
        state = pod["status"]["containerStatuses"][0]
        assert state["ready"] and state["containerID"].startswith("containerd://")


def test_server_runs_as_1000_and_writes_its_claims(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    # the user's own variable reaches the process through their Secret (envFrom), filled in by the kubelet
    r = user.api("PUT", f"/users/{username}/env-vars", json={"env_vars": [{"name": "MY_TOKEN", "value": "t0k"}]})
    assert r.status_code == 200, r.text
    try:
        pod = start_and_get_pod(user, kube)
        assert py(kube, pod, "import os; print(os.environ['MY_TOKEN'])") == "t0k"
        assert pod["spec"]["nodeName"] == "node-1"
        ids = py(kube, pod, "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()))")
        assert ids.startswith("1000 "), ids
        assert "100" in ids.split(" ", 2)[2], ids  # the fsGroup is a supplemental group
        claims = kube.user_claims(username)
        mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert claims
        for volume, claim in claims.items():
            py(kube, pod, f"open({mounts['ds-' + volume] + '/written-by-server'!r}, 'w').write('x')")
            on_node = kube.pv_dir(claim) / "written-by-server"
            assert on_node.read_text() == "x"
            assert on_node.stat().st_uid == 1000
    finally:
        stop_and_wait(user, kube)


def test_docker_socket_member_connects_non_member_cannot(hub, admin, service, kube, docker_socket, username):
    member = new_user(hub.url, admin, username)
    other = new_user(hub.url, admin, username + "x")
    set_member(service, "docker-sock", username)
    # the node's socket (the group's hostPath) is mounted where Docker clients look for it
    connect = ("import socket; s = socket.socket(socket.AF_UNIX)\ntry:\n s.connect('/var/run/docker.sock')\n"
               " print(s.recv(100).decode().strip())\nexcept OSError as e:\n print(type(e).__name__)")
    try:
        pod = start_and_get_pod(member, kube)
        assert py(kube, pod, connect) == "hello from the node"
        assert py(kube, start_and_get_pod(other, kube), connect) == "FileNotFoundError"
    finally:
        stop_and_wait(member, kube)
        stop_and_wait(other, kube)


def capabilities(kube, pod: dict) -> int:
    """The container's bounding set: what its processes can ever hold (the notebook runs as uid 1000, so even a
    privileged container's effective set is empty until something like sudo raises it)."""
    status = py(kube, pod, "print(open('/proc/self/status').read())")
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd")), 16)


def test_privileged_member_has_every_capability_others_do_not(hub, admin, service, kube, username):
    member = new_user(hub.url, admin, username)
    other = new_user(hub.url, admin, username + "x")
    set_member(service, "docker-privileged", username)
    try:
        member_caps = capabilities(kube, start_and_get_pod(member, kube))
        other_caps = capabilities(kube, start_and_get_pod(other, kube))
        cap_sys_admin = 1 << 21
        assert member_caps & cap_sys_admin
        assert not other_caps & cap_sys_admin
        assert bin(member_caps).count("1") > bin(other_caps).count("1") + 20
    finally:
        stop_and_wait(member, kube)
        stop_and_wait(other, kube)


def test_policy_limits_are_in_the_cgroups_and_read_only_mount_refuses(hub, admin, service, kube, username):
    assert admin.api("POST", "/groups/rn-limits").status_code in (201, 409)
    user = new_user(hub.url, admin, username)
    set_member(service, "rn-limits", username)
    try:
        pod = start_and_get_pod(user, kube)
        memory = py(kube, pod, "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())")
        assert int(memory) == 300 * 1024 * 1024
        quota = py(kube, pod, "print(open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read(), "
                              "open('/sys/fs/cgroup/cpu/cpu.cfs_period_us').read())")
        assert quota.split() == ["50000", "100000"]
        # what the dataset's owner put there (a read-only mount gets no fsGroup: its files keep their modes)
        data = kube.pv_dir(kube.json("pvc", "rn-data"))
        data.chmod(0o755)
        (data / "data.csv").write_text("a,b\n")
        assert py(kube, pod, "print(open('/data/data.csv').read().strip())") == "a,b"
        out = py(kube, pod, "try:\n open('/data/x', 'w')\nexcept OSError as e:\n print(e.strerror)")
        assert out == "Read-only file system"
    finally:
        stop_and_wait(user, kube)


def test_exec_and_logs_go_through_the_kubelet(hub, kube):
    hub_pod = kube.items("pods", "component=hub")[0]["metadata"]["name"]
    assert kube("exec", hub_pod, "--", "python3", "-c", "import os; print(os.getuid())").strip() == "1000"
    assert "JupyterHub is now running" in kube("logs", hub_pod) or "Hub API listening" in kube("logs", hub_pod)


def test_a_crashing_container_is_restarted_with_back_off(hub, kube):
    image = kube.items("pods", "component=hub")[0]["spec"]["containers"][0]["image"]
    kube("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  nodeSelector: {{jupyterhub-ds/node: real}}
  tolerations: [{{key: jupyterhub-ds/real-node, operator: Exists}}]
  containers:
  - name: c
    image: {image}
    imagePullPolicy: Never
    command: [python3, -c, "raise SystemExit(3)"]
""")
    try:
        deadline = time.monotonic() + 90
        while True:
            status = kube.json("pod", "crasher")["status"].get("containerStatuses") or [{}]
            waiting = status[0].get("state", {}).get("waiting", {}).get("reason")
            if status[0].get("restartCount", 0) >= 2 and waiting == "CrashLoopBackOff":
                break
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status[0]["lastState"]["terminated"]["exitCode"] == 3
    finally:
        kube("delete", "pod", "crasher", "--wait=false")


def test_cluster_dns_and_services_from_a_pod(hub, kube, release):
    """The hub reaches the proxy's API by its Service name (the DNS) at its ClusterIP (kube-proxy)."""
    hub_pod = kube.items("pods", "component=hub")[0]["metadata"]["name"]
    code = ("import socket; print(socket.gethostbyname('proxy-api'), "
            f"socket.gethostbyname('proxy-api.{release.namespace}.svc.cluster.local'))")
    names = kube("exec", hub_pod, "--", "python3", "-c", code).split()
    cluster_ip = kube.json("service", "proxy-api")["spec"]["clusterIP"]
    assert names == [cluster_ip, cluster_ip]


def test_pods_reach_no_port_of_the_machine_but_dns_and_the_api(hub, kube):
    """The node's own ports (the kubelet's, anything listening on this machine) are closed to pods; the cluster
    DNS and the API server (behind the `kubernetes` Service) are what they may reach."""
    hub_pod = kube.items("pods", "component=hub")[0]
    node_ip = hub_pod["status"]["hostIP"]
    code = "\n".join([
        "import socket",
        "for port in (10250, 53):",
        "    s = socket.socket(); s.settimeout(2)",
        "    try:",
        f"        s.connect(({node_ip!r}, port)); print(port, 'open')",
        "    except OSError:",
        "        print(port, 'closed')"])
    out = kube("exec", hub_pod["metadata"]["name"], "--", "python3", "-c", code).split("\n")
    assert "10250 closed" in out and "53 open" in out
