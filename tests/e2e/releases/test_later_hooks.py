"""A later ``hub.extraConfig`` snippet that assigns both spawner hooks: our policy stays, and so do its hooks.

The snippet below is a ``hub.extraConfig`` entry whose key sorts after ours: Z2JH's jupyterhub_config.py runs it
after our ``configure(c)``. The docker-socket group's hostPath is a socket this module serves on the real node.
"""

from __future__ import annotations

import pytest

from ..hubclient import ServiceClient, admin_client, new_user
from ..spawnwatch import env_of, notebook, start_and_get_pod, stop_and_wait
from .conftest import DOCKER_GID

LATER_SNIPPET = '''
async def pre_spawn_hook(spawner):
    spawner.environment = {**spawner.environment, "FROM_USER_PRE_SPAWN_HOOK": spawner.user.name}


def modify_pod_hook(spawner, pod):
    pod.metadata.labels = {**(pod.metadata.labels or {}), "example.org/user-hook": "ran"}
    return pod


c.KubeSpawner.pre_spawn_hook = pre_spawn_hook
c.KubeSpawner.modify_pod_hook = modify_pod_hook
'''


@pytest.fixture(scope="module")
def hub(release, docker_socket):
    return release.install({"groups": {"dockerSock": {"hostPath": str(docker_socket), "gid": DOCKER_GID}}},
                           extra_config=LATER_SNIPPET)


def test_hooks_set_by_a_later_snippet_run_and_our_policy_stays(hub, kube, docker_socket, username):
    admin = admin_client(hub.url)
    user = new_user(hub.url, admin, username)
    r = ServiceClient(hub.url, hub.service_token).api("POST", "/groups/docker-sock/users",
                                                      json={"users": [username]})
    assert r.status_code == 200, r.text
    try:
        pod = start_and_get_pod(user, kube)
        # the user's hooks ran
        assert pod["metadata"]["labels"]["example.org/user-hook"] == "ran"
        env = env_of(pod)
        assert env["FROM_USER_PRE_SPAWN_HOOK"] == username
        # our claims exist and are mounted
        claims = kube.user_claims(username)
        assert set(claims) == {"home", "workspace", "cache"}
        claim_names = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                       if "persistentVolumeClaim" in v}
        assert {c["metadata"]["name"] for c in claims.values()} <= claim_names
        assert "jupyterhub-ds-shared" in claim_names
        mounts = {m["mountPath"] for m in notebook(pod)["volumeMounts"]}
        assert {"/home", "/home/lab/workspace", "/home/lab/.cache", "/mnt/shared", "/var/run/docker.sock"} <= mounts
        # the group patch and the lab environment contract
        assert {"name": "ds-docker-sock", "hostPath": {"path": str(docker_socket), "type": "Socket"}} in \
            pod["spec"]["volumes"]
        assert DOCKER_GID in pod["spec"]["securityContext"]["supplementalGroups"]
        assert env["ENABLE_GPU_SUPPORT"] == "0" and env["MLFLOW_PORT"] == "5000"
    finally:
        stop_and_wait(user, kube)
