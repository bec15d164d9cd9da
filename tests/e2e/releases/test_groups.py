"""Group membership patches the pod, on the installed chart and the real control plane: the built-in Docker groups
(exact patches, revocation, re-creation, Pod Security refusal) and group policies (``custom.ds.groupPolicies``:
a member of two groups gets the merged pod; leaving a group loses its grants at the next start). The servers run on
the real node, the docker-socket group's hostPath a socket this module serves there. The last test upgrades the
release to a hostPath with no socket (the hub restarts; its database stays): the kubelet refuses the mount."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..hubclient import ServiceClient, admin_client, new_user
from ..spawnwatch import (
    env_of,
    notebook,
    progress_events,
    request_start,
    start_and_get_pod,
    stop_and_wait,
    stop_quietly,
)
from .conftest import DOCKER_GID

# Storage and GPUs are other tests' business: keep these pods to exactly what the groups change.
POLICIES = [
    {"group": "gp-ml", "priority": 10, "env": {"TEAM": "ml"},
     "resources": {"cpuRequest": "100m", "cpuLimit": "1500m", "memoryRequest": "128Mi", "memoryLimit": "1Gi"},
     "mounts": [{"claimName": "gp-datasets", "mountPath": "/datasets", "readOnly": True}]},
    {"group": "gp-course", "env": {"TEAM": "course", "COURSE": "101"}, "resources": {"memoryLimit": "512Mi"},
     "mounts": [{"claimName": "gp-scratch", "mountPath": "/scratch", "readOnly": False}], "profiles": ["small"]},
    {"group": "gp-ci", "docker": {"socket": True}},
]
SETTINGS = {"storage": {"enabled": False}, "gpu": {"mode": 0}, "groupPolicies": POLICIES}
# Z2JH profiles: the default has no overrides, so the other tests' pods are what the groups alone make them
PROFILES = {"singleuser": {"profileList": [{"display_name": "Small", "slug": "small", "default": True},
                                           {"display_name": "Large", "slug": "large"}]}}
SOCK_MOUNT = {"name": "ds-docker-sock", "mountPath": "/var/run/docker.sock"}


def docker_settings(host_path) -> dict:
    return {**SETTINGS, "groups": {"dockerSock": {"hostPath": str(host_path), "gid": DOCKER_GID}}}


@pytest.fixture(scope="module")
def hub(release, docker_socket):
    return release.install(docker_settings(docker_socket), values=PROFILES)


@pytest.fixture(scope="module")
def sock(docker_socket) -> dict:
    """The socket volume a member's pod gets: the node's socket, type-checked by the kubelet."""
    return {"name": "ds-docker-sock", "hostPath": {"path": str(docker_socket), "type": "Socket"}}


def set_member(api: ServiceClient, group: str, username: str, member: bool = True) -> None:
    r = api.api("POST" if member else "DELETE", f"/groups/{group}/users", json={"users": [username]})
    assert r.status_code == 200, (r.status_code, r.text)


def has_sock(pod: dict) -> bool:
    return (any(v["name"] == "ds-docker-sock" for v in pod["spec"].get("volumes", []))
            or SOCK_MOUNT in notebook(pod).get("volumeMounts", []))


def privileged(pod: dict) -> bool:
    context = notebook(pod).get("securityContext") or {}
    return bool(context.get("privileged") or context.get("allowPrivilegeEscalation"))


def test_builtin_groups_exist_after_hub_start(service):
    names = {g["name"] for g in service.api("GET", "/groups").json()}
    assert {"docker-sock", "docker-privileged"} <= names


def test_docker_sock_member_gets_exactly_the_socket(hub, admin, service, kube, sock, username):
    user = new_user(hub.url, admin, username)
    set_member(service, "docker-sock", username)
    try:
        pod = start_and_get_pod(user, kube)
        assert sock in pod["spec"]["volumes"]
        assert SOCK_MOUNT in notebook(pod)["volumeMounts"]
        assert not privileged(pod)
        # the socket is root:docker 0660 on the node: the notebook (uid 1000) needs the docker GID
        assert pod["spec"]["securityContext"]["supplementalGroups"] == [DOCKER_GID]
        assert pod["spec"]["securityContext"]["fsGroup"] == 100  # KubeSpawner's own setting stays
    finally:
        stop_and_wait(user, kube)


def test_docker_privileged_member_gets_exactly_privileged(hub, admin, service, kube, username):
    user = new_user(hub.url, admin, username)
    set_member(service, "docker-privileged", username)
    try:
        pod = start_and_get_pod(user, kube)
        context = notebook(pod)["securityContext"]
        assert context["privileged"] is True
        assert context["allowPrivilegeEscalation"] is True
        assert context["runAsUser"] == 1000  # KubeSpawner's own settings stay
        assert not has_sock(pod)
    finally:
        stop_and_wait(user, kube)


def member_of(hub, admin, service, username: str, *groups: str):
    """A new user in ``groups`` (created when missing), logged in."""
    for group in groups:
        assert admin.api("POST", f"/groups/{group}").status_code in (201, 409)
    user = new_user(hub.url, admin, username)
    for group in groups:
        set_member(service, group, username)
    return user


def test_a_policy_gives_docker_to_another_group(hub, admin, service, kube, username):
    user = member_of(hub, admin, service, username, "gp-ci")
    try:
        pod = start_and_get_pod(user, kube)
        assert has_sock(pod) and not privileged(pod)
        assert pod["spec"]["securityContext"]["supplementalGroups"] == [DOCKER_GID]
    finally:
        stop_and_wait(user, kube)


def test_non_member_gets_neither(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_pod(user, kube)
        assert not has_sock(pod)
        assert not privileged(pod)
        assert "supplementalGroups" not in pod["spec"].get("securityContext", {})
        assert env_of(pod)["ENABLE_GPU_SUPPORT"] == "0"
    finally:
        stop_and_wait(user, kube)


def test_removed_member_gets_a_clean_pod_on_the_next_start(hub, admin, service, kube, username):
    user = new_user(hub.url, admin, username)
    for group in ("docker-sock", "docker-privileged"):
        set_member(service, group, username)
    try:
        pod = start_and_get_pod(user, kube)
        assert has_sock(pod) and privileged(pod)
        stop_and_wait(user, kube)

        for group in ("docker-sock", "docker-privileged"):
            set_member(service, group, username, member=False)
        pod = start_and_get_pod(user, kube)  # the same spawner object in the same hub
        assert not has_sock(pod)
        assert not privileged(pod)
    finally:
        stop_and_wait(user, kube)


def test_a_deleted_builtin_group_is_back_before_the_next_spawn(hub, admin, service, kube, username):
    r = service.api("DELETE", "/groups/docker-privileged")
    assert r.status_code == 204, r.text
    assert service.api("GET", "/groups/docker-privileged").status_code == 404

    user = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_pod(user, kube)
        r = service.api("GET", "/groups/docker-privileged")
        assert r.status_code == 200, r.text
        assert r.json()["users"] == []  # re-created empty: membership is the admin's decision
        assert not privileged(pod)
    finally:
        stop_and_wait(user, kube)
    hub.wait_log("Built-in group 'docker-privileged' was missing")


def test_pod_security_refusal_reaches_the_user(hub, admin, service, kube, namespace, username):
    """A namespace enforcing `baseline` refuses a privileged pod: the user reads the API server's reason."""
    user = new_user(hub.url, admin, username)
    set_member(service, "docker-privileged", username)
    kube("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline", "--overwrite")
    try:
        status, body = request_start(user)
        # Z2JH's slow_spawn_timeout 0: the start request answers 202 at once, and the refusal reaches the user on
        # the spawn page (the progress stream)
        assert status == 202, (status, body)

        events = progress_events(user, timeout=30)  # what the spawn page shows
        assert events[-1].get("failed") is True, events
        assert "violates PodSecurity" in events[-1]["message"] and "privileged" in events[-1]["message"]
        assert "HTTP response headers" not in events[-1]["message"]
        assert kube.items("pods", f"hub.jupyter.org/username={username}") == []
    finally:
        kube("label", "namespace", namespace, "pod-security.kubernetes.io/enforce-")
        stop_quietly(user)

    # the same user, once the namespace allows it, starts normally
    try:
        assert privileged(start_and_get_pod(user, kube))
    finally:
        stop_and_wait(user, kube)


CLAIM = """{{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {{"name": "{name}"}},
 "spec": {{"accessModes": ["ReadWriteOnce"], "resources": {{"requests": {{"storage": "1Gi"}}}}}}}}"""


def mounts_of(pod: dict) -> dict[str, bool]:
    return {m["mountPath"]: bool(m.get("readOnly")) for m in notebook(pod).get("volumeMounts", [])}


def test_group_policies_merge_and_leaving_a_group_loses_its_grants(hub, admin, service, kube, username):
    for claim in ("gp-datasets", "gp-scratch"):
        kube("apply", "-f", "-", stdin=CLAIM.format(name=claim))
    user = member_of(hub, admin, service, username, "gp-ml", "gp-course")
    try:
        pod = start_and_get_pod(user, kube)
        env, resources = env_of(pod), notebook(pod)["resources"]
        assert (env["TEAM"], env["COURSE"]) == ("ml", "101")  # gp-ml has the higher priority
        assert resources["requests"]["cpu"] == "100m" and resources["limits"]["cpu"] == "1500m"
        assert resources["requests"]["memory"] == "128Mi" and resources["limits"]["memory"] == "1Gi"  # largest
        assert mounts_of(pod)["/datasets"] is True and mounts_of(pod)["/scratch"] is False
        claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly", False)
                  for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"gp-datasets": True, "gp-scratch": False}
        assert notebook(pod)["securityContext"]["allowPrivilegeEscalation"] is False  # no sudo granted
        grants = {g["key"]: g for g in user.api("GET", f"/users/{username}/effective-grants").json()["grants"]}
        assert (grants["env.TEAM"]["from"], grants["memory_limit"]["from"]) == ("gp-ml", "gp-ml")
        assert grants["mount./scratch"]["from"] == "gp-course"
        assert grants["profiles"]["in_pod"] is None  # nothing a pod shows
        assert all(g["in_pod"] for k, g in grants.items() if k != "profiles"), grants
        stop_and_wait(user, kube)

        set_member(service, "gp-ml", username, member=False)
        pod = start_and_get_pod(user, kube)
        env, resources = env_of(pod), notebook(pod)["resources"]
        assert env["TEAM"] == "course" and resources["limits"]["memory"] == "512Mi"
        assert resources.get("requests", {}).get("cpu") != "100m" and resources["limits"].get("cpu") != "1500m"
        assert "/datasets" not in mounts_of(pod) and mounts_of(pod)["/scratch"] is False

        set_member(service, "gp-ml", username)  # while the server runs: the grant waits for the next start
        grants = {g["key"]: g for g in user.api("GET", f"/users/{username}/effective-grants").json()["grants"]}
        assert grants["mount./datasets"]["in_pod"] is False and grants["env.COURSE"]["in_pod"] is True
        assert "it applies at your next start (Restart Server)" in user.get("/hub/home").text
        other = new_user(hub.url, admin, f"{username}x")
        assert other.api("GET", f"/users/{username}/effective-grants").status_code == 404  # not theirs to read
    finally:
        stop_and_wait(user, kube)


def test_a_profile_the_groups_do_not_allow_is_refused_through_the_api(hub, admin, service, kube, username):
    user = member_of(hub, admin, service, username, "gp-course")
    try:
        r = user.api("POST", f"/users/{username}/server", json={"profile": "large"})
        assert r.status_code == 403, (r.status_code, r.text)
        assert r.json()["message"] == ("The profile 'large' is not available to you: the group policies of gp-course "
                                       "(custom.ds.groupPolicies) allow small.")
        assert kube.user_pod(username) is None  # refused before anything was created
        form = user.get("/hub/spawn").text
        assert "Small" in form and "Large" not in form  # and hidden from the form
        r = user.api("POST", f"/users/{username}/server", json={"profile": "small"})
        assert r.status_code in (201, 202), (r.status_code, r.text)
        user.wait_server(ready=True)
    finally:
        stop_and_wait(user, kube)


def test_no_docker_socket_on_the_node_fails_the_start_at_once(release, kube, username):
    """The kubelet's FailedMount for our socket volume ends the start within seconds, in plain words: the node has
    no socket at the group's hostPath, so the kubelet's ``Socket`` type check fails.

    Last in this module: it upgrades the release to that hostPath.
    """
    missing = "/run/jupyterhub-ds-e2e-no-docker.sock"
    hub = release.install(docker_settings(missing), values=PROFILES)
    service = ServiceClient(hub.url, hub.service_token)
    user = new_user(hub.url, admin_client(hub.url), username)
    set_member(service, "docker-sock", username)
    try:
        connected = threading.Event()  # set by the stream's first event ("Server requested")
        with ThreadPoolExecutor(1) as pool:
            status, body = request_start(user)
            assert status == 202, (status, body)  # pending: the pod is created, the kubelet tries its mounts
            requested = time.monotonic()
            # what the spawn page shows
            stream = pool.submit(progress_events, user, lambda e: connected.set() and False, 60)
            assert connected.wait(30), "the progress stream sent nothing"
            events = stream.result()
        failed_after = time.monotonic() - requested
        messages = [e.get("message", "") for e in events]
        assert events[-1].get("failed") is True, messages
        assert failed_after < 20, failed_after  # the start timeout is 300 s (Z2JH's singleuser.startTimeout)
        # the spawn page's last word is the plain sentence and the kubelet's own message
        final = events[-1]["message"]
        assert final.startswith("Spawn failed: No Docker socket on this node"), final
        assert "groups.dockerSock.nodeSelector" in final and "hostPath type check failed" in final
        # if KubeSpawner streamed the event itself before the failure, it carries the sentence too
        streamed = [m for m in messages[:-1] if "hostPath type check failed" in m]
        assert all(m.startswith("No Docker socket on this node") for m in streamed), streamed
        kube.wait_user_pod_gone(username)  # the failed start was cleaned up
        assert user.api("GET", f"/users/{username}").json()["servers"] == {}
    finally:
        stop_and_wait(user, kube)
