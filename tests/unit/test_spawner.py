"""DsKubeSpawner: policy that other config cannot drop, shared settings, and what the user reads when a start fails."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiException
from kubespawner import KubeSpawner
from traitlets.config import Config

from hub_extensions import configure, docker_groups, spawner, storage
from hub_extensions.settings import DockerSockSettings
from hub_extensions.spawner import DsKubeSpawner

from .spawner_fixtures import as_json, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest

__all__ = ["fake_kubeconfig"]

SOCK = DockerSockSettings()


# ---------------------------------------------------------------- a later snippet sets both hooks

def later_snippet_sets_both_hooks(c: Config, calls: list) -> None:
    """What a hub.extraConfig snippet sorted after ours may do: assign both hooks outright."""
    async def pre_spawn_hook(spawner):
        calls.append(("pre_spawn_hook", spawner.user.name))
        spawner.environment = {**spawner.environment, "FROM_PRE_SPAWN_HOOK": "1"}

    def modify_pod_hook(spawner, pod):
        calls.append(("modify_pod_hook", spawner.user.name))
        pod.metadata.labels = {**(pod.metadata.labels or {}), "example.org/user-hook": "ran"}
        return pod

    c.KubeSpawner.pre_spawn_hook = pre_spawn_hook
    c.KubeSpawner.modify_pod_hook = modify_pod_hook


async def test_hooks_set_after_configure_run_and_keep_our_policy(fake_kubeconfig, monkeypatch):
    ensured = []

    async def ensure_claims(namespace, settings, owner, username, labels):
        ensured.append((username, owner))
        return []

    monkeypatch.setattr(storage, "ensure_claims", ensure_claims)
    monkeypatch.setattr(docker_groups, "ensure_groups", lambda db, names: [])
    c = Config()
    configure(c, {"gpu": {"mode": 1}})
    calls: list = []
    later_snippet_sets_both_hooks(c, calls)

    s = make_spawner(c, fake_user(groups=["docker-sock"]))
    await s.run_pre_spawn_hook()
    assert calls == [("pre_spawn_hook", "alice")]
    assert ensured == [("alice", s.ds_owner)]  # our pre-spawn ran too: the claims exist

    pod = as_json(await spawn_manifest(s))
    assert calls[-1] == ("modify_pod_hook", "alice")
    assert pod["metadata"]["labels"]["example.org/user-hook"] == "ran"
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert {"ds-home", "ds-workspace", "ds-cache", "ds-shared", "ds-docker-sock"} <= volumes
    env = {e["name"]: e.get("value") for e in notebook(pod)["env"]}
    assert env["FROM_PRE_SPAWN_HOOK"] == "1" and env["ENABLE_GPU_SUPPORT"] == "1"
    assert notebook(pod)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [999]


async def test_a_spawner_pre_spawn_hook_and_no_hooks_at_all(fake_kubeconfig, monkeypatch):
    monkeypatch.setattr(docker_groups, "ensure_groups", lambda db, names: [])
    c = Config()
    configure(c, {"gpu": {"mode": 0}, "storage": {"enabled": False}})
    assert c.KubeSpawner.get("modify_pod_hook") is None and c.KubeSpawner.get("pre_spawn_hook") is None
    s = make_spawner(c, fake_user(groups=["docker-privileged"]))
    await s.run_pre_spawn_hook()
    assert notebook(as_json(await spawn_manifest(s)))["securityContext"]["privileged"] is True

    calls = []
    c.Spawner.pre_spawn_hook = lambda spawner: calls.append("Spawner-level hook")
    await make_spawner(c, fake_user()).run_pre_spawn_hook()
    assert calls == ["Spawner-level hook"]


async def test_the_users_pre_spawn_hook_runs_before_ours(fake_kubeconfig, monkeypatch):
    order = []
    monkeypatch.setattr(docker_groups, "ensure_groups", lambda db, names: order.append("ours"))
    c = Config()
    configure(c, {"gpu": {"mode": 0}, "storage": {"enabled": False}})
    c.KubeSpawner.pre_spawn_hook = lambda spawner: order.append("theirs")
    await make_spawner(c, fake_user()).run_pre_spawn_hook()
    assert order == ["theirs", "ours"]


def test_configure_leaves_the_hooks_to_the_user():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    assert "pre_spawn_hook" not in c.KubeSpawner and "modify_pod_hook" not in c.KubeSpawner
    assert "pre_spawn_hook" not in c.Spawner


# ---------------------------------------------------------------- one settings object

async def test_every_spawner_shares_the_one_settings_object(fake_kubeconfig):
    c = Config()
    settings = configure(c, {"gpu": {"mode": 0}})
    first, second = make_spawner(c, fake_user("alice")), make_spawner(c, fake_user("bob", user_id=8))
    assert first.ds_settings is second.ds_settings is settings
    assert first.ds_branding is second.ds_branding


# ---------------------------------------------------------------- what the user reads

PSA_BODY = json.dumps({
    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'pods "jupyter-alice" is forbidden: violates PodSecurity "baseline:latest": privileged '
               '(container "notebook" must not set securityContext.privileged=true)'})
NO_SOCKET = ('MountVolume.SetUp failed for volume "ds-docker-sock" : hostPath type check failed: '
             '/var/run/docker.sock is not a socket file')


def test_refusal_carries_the_api_servers_words():
    e = ApiException(status=403, reason="Forbidden")
    e.body = PSA_BODY
    error = spawner.refused(e)
    assert error.status_code == 403
    assert 'violates PodSecurity "baseline:latest"' in error.jupyterhub_message
    assert "ask an administrator" in error.jupyterhub_message
    assert "HTTP response headers" not in error.jupyterhub_message
    assert error.log_message % error.args == error.jupyterhub_message

    plain = ApiException(status=500, reason="Internal Server Error")
    assert spawner.refused(plain).status_code == 502
    assert "500 Internal Server Error" in spawner.refused(plain).jupyterhub_message


def test_scheduling_hint_only_for_exhausted_gpus():
    event = {"reason": "FailedScheduling",
             "message": "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint"}
    assert "No free GPU" in spawner.scheduling_hint(event, "nvidia.com/gpu")
    assert spawner.scheduling_hint(event, "example.com/gpu") is None
    assert spawner.scheduling_hint({"reason": "Scheduled", "message": "ok"}, "nvidia.com/gpu") is None
    assert spawner.scheduling_hint(None, "nvidia.com/gpu") is None


def test_docker_socket_hint_only_for_our_socket_volume():
    hint = spawner.docker_socket_hint({"reason": "FailedMount", "message": NO_SOCKET}, SOCK)
    assert hint.startswith("No Docker socket on this node")
    assert "groups.dockerSock.nodeSelector" in hint and "/var/run/docker.sock" in hint
    other_volume = NO_SOCKET.replace("ds-docker-sock", "data")
    assert spawner.docker_socket_hint({"reason": "FailedMount", "message": other_volume}, SOCK) is None
    timeout = 'Unable to attach or mount volumes: unmounted volumes=[ds-docker-sock]: timed out'
    assert spawner.docker_socket_hint({"reason": "FailedMount", "message": timeout}, SOCK) is None
    assert spawner.docker_socket_hint({"reason": "FailedScheduling", "message": NO_SOCKET}, SOCK) is None
    assert spawner.docker_socket_hint(None, SOCK) is None


def _pod(uid: str, created: datetime) -> dict:
    return {"metadata": {"name": "jupyter-alice", "uid": uid,
                         "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def _mount_event(uid: str) -> dict:
    return {"type": "Warning", "reason": "FailedMount", "message": NO_SOCKET,
            "involvedObject": {"kind": "Pod", "name": "jupyter-alice", "uid": uid}}


def test_fatal_event_only_for_the_pod_of_this_start():
    now = datetime.now(UTC).replace(microsecond=0)
    pod = _pod("new", now)
    assert "No Docker socket" in spawner.fatal_event(pod, [_mount_event("new")], now, SOCK)
    assert spawner.fatal_event(pod, [_mount_event("old")], now, SOCK) is None  # a previous pod's event
    old_pod = _pod("old", now - timedelta(minutes=5))
    assert spawner.fatal_event(old_pod, [_mount_event("old")], now, SOCK) is None  # a previous start's pod
    assert spawner.fatal_event(None, [_mount_event("new")], now, SOCK) is None


# ---------------------------------------------------------------- start and progress, KubeSpawner faked

class _Probe(DsKubeSpawner):
    """DsKubeSpawner with KubeSpawner's reflectors replaced by plain attributes."""

    pod_reflector = None
    events: list = []  # noqa: RUF012 - replaced per instance
    ds_event_poll_seconds = 0.01


@pytest.fixture
async def probe(fake_kubeconfig):
    configure(Config(), {"gpu": {"mode": 0}})
    s = _Probe(_mock=True, config=Config(), user=fake_user(), hub=SimpleNamespace(
        public_host="", url="http://hub:8081/hub/", base_url="/hub/", api_url="http://hub:8081/hub/api"))
    s.events = []
    return s


def fake_start(monkeypatch, outcome):
    """KubeSpawner.start returns a future; ``outcome`` is a URL, an exception, or None (never finishes)."""
    futures = []

    def start(self):
        future = asyncio.get_running_loop().create_future()
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        elif outcome is not None:
            future.set_result(outcome)
        futures.append(future)
        return future

    monkeypatch.setattr(KubeSpawner, "start", start)
    return futures


async def test_start_returns_kubespawners_url(probe, monkeypatch):
    fake_start(monkeypatch, "http://127.1.2.3:8888")
    assert await probe.start() == "http://127.1.2.3:8888"


async def test_start_turns_a_refusal_into_a_readable_error(probe, monkeypatch):
    e = ApiException(status=403, reason="Forbidden")
    e.body = PSA_BODY
    fake_start(monkeypatch, e)
    with pytest.raises(Exception) as info:
        await probe.start()
    assert "violates PodSecurity" in info.value.jupyterhub_message
    assert info.value.__cause__ is e


async def test_start_fails_at_once_when_the_node_has_no_docker_socket(probe, monkeypatch):
    futures = fake_start(monkeypatch, None)  # KubeSpawner would wait for the start timeout
    probe.pod_reflector = SimpleNamespace(pods={
        f"{probe.namespace}/{probe.pod_name}": _pod("uid-1", datetime.now(UTC))})
    probe.events = [_mount_event("uid-1")]
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(probe.start(), 5)
    assert info.value.jupyterhub_message.startswith("No Docker socket on this node")
    assert "Kubelet: MountVolume.SetUp failed" in info.value.jupyterhub_message
    assert info.value.status_code == 503
    assert futures[0].cancelled()  # KubeSpawner's start stops too


async def test_start_ignores_a_previous_pods_mount_failure(probe, monkeypatch):
    fake_start(monkeypatch, None)
    probe.pod_reflector = SimpleNamespace(pods={
        f"{probe.namespace}/{probe.pod_name}": _pod("old", datetime.now(UTC) - timedelta(minutes=3))})
    probe.events = [_mount_event("old")]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(probe.start(), 0.3)


async def test_start_timeout_repeats_the_last_warning(probe, monkeypatch):
    fake_start(monkeypatch, TimeoutError("pod ns/jupyter-alice did not start in 120 seconds!"))
    probe.events = [
        {"type": "Warning", "reason": "FailedScheduling",
         "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."},
        {"type": "Normal", "reason": "Other", "message": "noise"},
    ]
    with pytest.raises(TimeoutError) as info:
        await probe.start()
    message = info.value.jupyterhub_message
    assert message.startswith("pod ns/jupyter-alice did not start in 120 seconds! Last event: No free GPU")
    assert "Insufficient nvidia.com/gpu" in message

    probe.events = []
    with pytest.raises(TimeoutError) as info:
        await probe.start()
    assert not hasattr(info.value, "jupyterhub_message")


async def test_progress_adds_each_hint_once_and_keeps_the_event(probe, monkeypatch):
    gpu_raw = {"reason": "FailedScheduling", "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}
    sock_raw = {"reason": "FailedMount", "message": NO_SOCKET}
    events = [{"progress": 30, "message": "2024 [Warning] " + gpu_raw["message"], "raw_event": gpu_raw}] * 2 + \
        [{"progress": 50, "message": "2024 [Warning] " + NO_SOCKET, "raw_event": sock_raw}] * 2

    async def progress(self):
        for event in events:
            yield event

    monkeypatch.setattr(KubeSpawner, "progress", progress)
    out = [e async for e in probe.progress()]
    assert out[0]["message"].startswith("No free GPU") and "Insufficient nvidia.com/gpu" in out[0]["message"]
    assert out[0]["raw_event"] is gpu_raw
    assert out[1] == events[1]
    assert out[2]["message"].startswith("No Docker socket on this node")
    assert out[2]["message"].endswith("Kubelet: 2024 [Warning] " + NO_SOCKET)
    assert out[3] == events[3]
