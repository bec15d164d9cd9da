"""Built-in groups on the real control plane: exact patches, revocation, re-creation, Pod Security refusal."""

from __future__ import annotations

import pytest

from .hubclient import ServiceClient, new_user
from .spawnwatch import env_of, notebook, progress_events, request_start, start_and_get_pod, stop_and_wait, stop_quietly

# Storage and GPUs are other tests' business: keep these pods to exactly what the groups change.
SETTINGS = {"storage": {"enabled": False}, "gpu": {"mode": 0}}
SOCK = {"name": "ds-docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}
SOCK_MOUNT = {"name": "ds-docker-sock", "mountPath": "/var/run/docker.sock"}


@pytest.fixture(scope="module")
def hub(start_hub):
    return start_hub(SETTINGS)


def set_member(api: ServiceClient, group: str, username: str, member: bool = True) -> None:
    r = api.api("POST" if member else "DELETE", f"/groups/{group}/users", json={"users": [username]})
    assert r.status_code == 200, (r.status_code, r.text)


def has_sock(pod: dict) -> bool:
    return SOCK in pod["spec"].get("volumes", []) or SOCK_MOUNT in notebook(pod).get("volumeMounts", [])


def privileged(pod: dict) -> bool:
    context = notebook(pod).get("securityContext") or {}
    return bool(context.get("privileged") or context.get("allowPrivilegeEscalation"))


def test_builtin_groups_exist_after_hub_start(service):
    names = {g["name"] for g in service.api("GET", "/groups").json()}
    assert {"docker-sock", "docker-privileged"} <= names


def test_docker_sock_member_gets_exactly_the_socket(hub, admin, service, kube, username):
    user = new_user(hub.url, admin, username)
    set_member(service, "docker-sock", username)
    try:
        pod = start_and_get_pod(user, kube)
        assert SOCK in pod["spec"]["volumes"]
        assert SOCK_MOUNT in notebook(pod)["volumeMounts"]
        assert not privileged(pod)
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


def test_non_member_gets_neither(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    try:
        pod = start_and_get_pod(user, kube)
        assert not has_sock(pod)
        assert not privileged(pod)
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
    assert "Built-in group 'docker-privileged' was missing" in hub.log.read_text()


def test_pod_security_refusal_reaches_the_user(hub, admin, service, kube, namespace, username):
    """A namespace enforcing `baseline` refuses a privileged pod: the user reads the API server's reason."""
    user = new_user(hub.url, admin, username)
    set_member(service, "docker-privileged", username)
    kube("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline", "--overwrite")
    try:
        status, body = request_start(user)
        # refused within the hub's slow_spawn_timeout: the start request itself answers with the reason
        assert status == 403, (status, body)
        assert "violates PodSecurity" in body["message"]
        assert "privileged" in body["message"]

        events = progress_events(user, timeout=30)  # what the spawn page shows
        assert events[-1].get("failed") is True, events
        assert "violates PodSecurity" in events[-1]["message"]
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
