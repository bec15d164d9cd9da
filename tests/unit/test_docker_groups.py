"""Built-in groups: each patch exactly, nothing for non-members, revocation, profiles, the groups."""

from __future__ import annotations

import copy
import logging
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1SecurityContext
from traitlets.config import Config

from hub_extensions import configure, docker_groups, group_policies
from hub_extensions.settings import DockerSockSettings, GroupsSettings, load_settings

from .spawner_fixtures import as_json, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest

__all__ = ["fake_kubeconfig"]  # the fixture, imported for pytest

GROUPS = GroupsSettings()


def bare_pod(security_context: object = None) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="jupyter-alice"), spec=V1PodSpec(
        containers=[V1Container(name="notebook", image="lab", security_context=security_context)],
        volumes=[], node_selector=None))


def test_builtin_group_names_default_and_configurable():
    assert docker_groups.builtin_groups(GROUPS) == ["docker-sock", "docker-privileged"]
    custom = load_settings({"groups": {"dockerSock": {"group": "sock"}, "dockerPrivileged": {"group": "priv"}}})
    assert docker_groups.builtin_groups(custom.groups) == ["sock", "priv"]


def test_docker_sock_patch_is_a_socket_hostpath_at_the_docker_path():
    pod = as_json(docker_groups.add_docker_sock(bare_pod(), DockerSockSettings()))
    assert pod["spec"]["securityContext"] == {"supplementalGroups": [999]}
    assert pod["spec"]["volumes"] == [
        {"name": "ds-docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}]
    assert notebook(pod)["volumeMounts"] == [{"name": "ds-docker-sock", "mountPath": "/var/run/docker.sock"}]
    assert "nodeSelector" not in pod["spec"]
    assert "securityContext" not in notebook(pod)


def test_docker_sock_custom_host_path_node_selector_and_idempotent():
    settings = DockerSockSettings(host_path="/run/docker/docker.sock", node_selector={"docker": "true"})
    pod = bare_pod()
    pod.spec.node_selector = {"zone": "a"}
    docker_groups.add_docker_sock(pod, settings)
    docker_groups.add_docker_sock(pod, settings)
    pod = as_json(pod)
    assert pod["spec"]["volumes"] == [
        {"name": "ds-docker-sock", "hostPath": {"path": "/run/docker/docker.sock", "type": "Socket"}}]
    assert len(notebook(pod)["volumeMounts"]) == 1
    assert notebook(pod)["volumeMounts"][0]["mountPath"] == "/var/run/docker.sock"
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "docker": "true"}


def test_privileged_patch_keeps_the_rest_of_the_security_context():
    pod = as_json(docker_groups.add_privileged(bare_pod({"runAsUser": 1000})))
    assert notebook(pod)["securityContext"] == {"runAsUser": 1000, "privileged": True,
                                                "allowPrivilegeEscalation": True}
    assert pod["spec"]["volumes"] == []


def test_privileged_patch_on_a_model_security_context():
    pod = as_json(docker_groups.add_privileged(bare_pod(V1SecurityContext(run_as_user=1000, privileged=False))))
    assert notebook(pod)["securityContext"] == {"runAsUser": 1000, "privileged": True,
                                                "allowPrivilegeEscalation": True}


@pytest.mark.parametrize(("groups", "expected"), [
    (set(), []),
    ({"other", "docker"}, []),
    ({"docker-sock"}, ["the Docker socket"]),
    ({"docker-privileged"}, ["a privileged container"]),
    ({"docker-sock", "docker-privileged"}, ["the Docker socket", "a privileged container"]),
])
def test_the_builtin_groups_patch_exactly_their_grants(groups, expected):
    """The built-in groups' grants are seeded group policies: an install without any policy behaves as before."""
    pod = bare_pod({"runAsUser": 1000})
    before = copy.deepcopy(as_json(pod))
    policy = group_policies.for_user(load_settings({}), groups)
    assert docker_groups.apply_docker(pod, GROUPS, policy.docker_socket, policy.docker_privileged) == expected
    after = as_json(pod)
    has_sock = any(v["name"] == "ds-docker-sock" for v in after["spec"]["volumes"])
    assert has_sock == ("the Docker socket" in expected)
    assert bool(notebook(after)["securityContext"].get("privileged")) == ("a privileged container" in expected)
    if not expected:
        assert after == before


@pytest.mark.parametrize(("policies", "groups", "socket", "privileged"), [
    ([{"group": "docker-sock", "docker": {"socket": False}}], {"docker-sock"}, False, False),  # revoked by its policy
    ([{"group": "docker-sock", "env": {"A": "1"}}], {"docker-sock"}, True, False),  # a policy keeps the seed
    ([{"group": "ci", "docker": {"socket": True}}], {"ci"}, True, False),  # any group may grant it
    ([{"group": "ci", "docker": {"socket": False}}], {"ci", "docker-sock"}, True, False),  # no revoking others
    ([{"group": "admins", "docker": {"privileged": True}}], {"admins"}, False, True),
])
def test_docker_grants_are_group_policies(policies, groups, socket, privileged):
    policy = group_policies.for_user(load_settings({"groupPolicies": policies}), groups)
    assert (policy.docker_socket, policy.docker_privileged) == (socket, privileged)


def test_group_names_reads_orm_like_groups():
    assert docker_groups.group_names(fake_user(groups=["a", "b"])) == {"a", "b"}
    assert docker_groups.group_names(fake_user()) == set()


def managed_user(groups: list[str], manage_groups: bool) -> object:
    user = fake_user(groups=groups)
    user.authenticator = SimpleNamespace(manage_groups=manage_groups)
    return user


def test_an_identity_provider_cannot_grant_root_unless_allowed(caplog):
    """Attack: with manage_groups, whoever controls a provider group named docker-privileged (or any group whose
    policy grants Docker) would get root on a node. Docker grants apply then only when the site sets
    allowManagedRoot."""
    groups = ["docker-sock", "docker-privileged", "course"]
    settings = load_settings({"groupPolicies": [{"group": "course", "docker": {"socket": True}, "env": {"A": "1"}}]})
    assert docker_groups.root_refused(managed_user(groups, True), GROUPS)
    assert not docker_groups.root_refused(managed_user(groups, False), GROUPS)
    assert not docker_groups.root_refused(managed_user(groups, True), GroupsSettings(allow_managed_root=True))
    with caplog.at_level(logging.WARNING, logger="JupyterHub.ds.group_policies"):
        policy = group_policies.for_user(settings, groups, root_refused=True, warn=True)
    assert "allowManagedRoot" in caplog.text and "course" in caplog.text
    assert (policy.docker_socket, policy.docker_privileged, policy.env) == (False, False, {"A": "1"})
    assert group_policies.for_user(settings, groups).docker_privileged


# ---------------------------------------------------------------- through KubeSpawner (no cluster)

def configured(settings: dict | None = None, **spawner_config: object) -> Config:
    c = Config()
    for key, value in spawner_config.items():
        setattr(c.KubeSpawner, key, value)
    configure(c, {"gpu": {"mode": 0}, **(settings or {})})
    return c


async def test_revocation_on_the_same_spawner_object(fake_kubeconfig):
    """Spawner objects live as long as the hub: a removed member must get a clean pod next time."""
    user = fake_user(groups=["docker-sock", "docker-privileged"])
    spawner = make_spawner(configured(), user)

    granted = as_json(await spawn_manifest(spawner))
    assert any(v["name"] == "ds-docker-sock" for v in granted["spec"]["volumes"])
    assert notebook(granted)["securityContext"]["privileged"] is True

    user.groups = []  # an admin removed the user from both groups
    revoked = as_json(await spawn_manifest(spawner))
    assert not any(v["name"] == "ds-docker-sock" for v in revoked["spec"]["volumes"])
    assert not any(m["mountPath"] == "/var/run/docker.sock" for m in notebook(revoked)["volumeMounts"])
    assert not notebook(revoked).get("securityContext", {}).get("privileged")
    assert not notebook(revoked).get("securityContext", {}).get("allowPrivilegeEscalation")
    assert spawner.privileged is False  # the traits were never touched


async def test_a_profile_override_cannot_undo_the_patch(fake_kubeconfig):
    """Our patches apply after kubespawner_override, so a profile cannot drop privileges we grant."""
    profiles = [{"display_name": "Small", "slug": "small", "default": True, "kubespawner_override": {
        "privileged": False, "allow_privilege_escalation": False,
        "container_security_context": {"privileged": False, "allowPrivilegeEscalation": False},
        "volumes": [], "node_selector": {"pool": "small"},
    }}]
    c = configured({"groups": {"dockerSock": {"nodeSelector": {"docker": "true"}}}}, profile_list=profiles)
    spawner = make_spawner(c, fake_user(groups=["docker-sock", "docker-privileged"]))
    pod = as_json(await spawn_manifest(spawner, {"profile": "small"}))
    assert notebook(pod)["securityContext"]["privileged"] is True
    assert notebook(pod)["securityContext"]["allowPrivilegeEscalation"] is True
    assert {"name": "ds-docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}} in \
        pod["spec"]["volumes"]
    assert pod["spec"]["nodeSelector"] == {"pool": "small", "docker": "true"}


async def test_a_configured_modify_pod_hook_sees_our_patches(fake_kubeconfig):
    seen = []

    def theirs(spawner, pod):
        seen.append(as_json(pod)["spec"]["containers"][0]["securityContext"].get("privileged"))
        pod.metadata.labels["theirs"] = "yes"
        return pod

    c = configured(modify_pod_hook=theirs)
    spawner = make_spawner(c, fake_user(groups=["docker-privileged"]))
    pod = as_json(await spawn_manifest(spawner))
    assert seen == [True]
    assert pod["metadata"]["labels"]["theirs"] == "yes"
    assert notebook(pod)["securityContext"]["privileged"] is True


async def test_docker_sock_members_get_the_sockets_group(fake_kubeconfig):
    """The socket is root:docker 0660 and the notebook runs as uid 1000: the pod needs the docker GID."""
    c = configured(fs_gid=100, supplemental_gids=[5])
    member = as_json(await spawn_manifest(make_spawner(c, fake_user(groups=["docker-sock"]))))
    assert member["spec"]["securityContext"] == {"fsGroup": 100, "supplementalGroups": [5, 999]}
    other = as_json(await spawn_manifest(make_spawner(c, fake_user(groups=["docker-privileged"]))))
    assert other["spec"]["securityContext"] == {"fsGroup": 100, "supplementalGroups": [5]}

    c = configured({"groups": {"dockerSock": {"gid": 2000}}})
    assert as_json(await spawn_manifest(make_spawner(c, fake_user(groups=["docker-sock"]))))[
        "spec"]["securityContext"]["supplementalGroups"] == [2000]
    c = configured({"groups": {"dockerSock": {"gid": None}}})
    unset = as_json(await spawn_manifest(make_spawner(c, fake_user(groups=["docker-sock"]))))
    assert "supplementalGroups" not in (unset["spec"].get("securityContext") or {})


# ---------------------------------------------------------------- the groups themselves

def test_load_groups_creates_without_touching_membership_and_keeps_configured_groups():
    c = Config()
    c.JupyterHub.load_groups = {"teachers": {"users": ["t"]}, "docker-sock": {"properties": {"x": "y"}}}
    docker_groups.load_groups(c, ["docker-sock", "docker-privileged"])
    assert c.JupyterHub.load_groups == {"teachers": {"users": ["t"]}, "docker-sock": {"properties": {"x": "y"}},
                                        "docker-privileged": {}}
    assert all("users" not in spec for name, spec in c.JupyterHub.load_groups.items() if name != "teachers")


def test_load_groups_is_skipped_when_the_authenticator_manages_groups():
    c = Config()
    c.GenericOAuthenticator.manage_groups = True
    docker_groups.load_groups(c, ["docker-sock"])
    assert "load_groups" not in c.JupyterHub


def test_configure_loads_builtin_and_gpu_groups():
    c = Config()
    configure(c, {"gpu": {"mode": 1, "group": "gpu-users"}})
    assert c.JupyterHub.load_groups == {"docker-sock": {}, "docker-privileged": {}, "gpu-users": {}}


@pytest.fixture
def db():
    session = orm.new_session_factory("sqlite://")()
    yield session
    session.close()


def test_ensure_groups_recreates_a_deleted_group_and_logs_it(db, caplog):
    for name in ("docker-sock", "docker-privileged"):
        db.add(orm.Group(name=name))
    user = orm.User(name="alice")
    db.add(user)
    db.commit()
    assert docker_groups.ensure_groups(db, ["docker-sock", "docker-privileged"]) == []

    db.delete(orm.Group.find(db, "docker-privileged"))
    db.commit()
    with caplog.at_level(logging.WARNING, logger="JupyterHub.ds.docker_groups"):
        assert docker_groups.ensure_groups(db, ["docker-sock", "docker-privileged"]) == ["docker-privileged"]
    assert orm.Group.find(db, "docker-privileged") is not None
    assert orm.Group.find(db, "docker-privileged").users == []
    assert "'docker-privileged' was missing" in caplog.text


def test_load_groups_merges_with_a_lazy_update():
    c = Config()
    c.JupyterHub.load_groups.update({"teachers": {}})
    docker_groups.load_groups(c, ["docker-sock"])
    assert c.JupyterHub.load_groups == {"teachers": {}, "docker-sock": {}}
