"""Group policies: the golden cases of resolution and validation, and what a resolved policy does to a real
KubeSpawner pod (resources, GPUs, shared volume, mounts, environment, securityContext, node pool)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from hub_extensions import configure, culler, docker_groups, group_policies
from hub_extensions.settings import CullerSettings, SettingsError, load_settings
from hub_extensions.settings_schema import camel, to_values

from .spawner_fixtures import as_json, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest

__all__ = ["fake_kubeconfig"]  # a fixture, used by name

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden" / "group_policies.yaml").read_text())["cases"]
EMPTY = to_values(group_policies.Resolved())


def resolved_values(resolved: group_policies.Resolved) -> dict[str, Any]:
    """The fields of a resolved policy that differ from the empty one, camelCase as in the golden file."""
    out = {camel(k): v for k, v in to_values(resolved).items() if k != "sources"}
    return {k: v for k, v in out.items() if v != EMPTY[k]}


def load(policies: list[dict]) -> Any:
    settings = load_settings({"groupPolicies": policies})
    group_policies.check(settings)
    return settings


def test_there_are_at_least_30_golden_cases():
    assert len(GOLDEN) >= 30 and len({c["name"] for c in GOLDEN}) == len(GOLDEN)


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden(case: dict) -> None:
    if "error" in case:
        with pytest.raises(SettingsError) as e:
            load(case["policies"])
        assert case["error"] in str(e.value)
        assert str(e.value).startswith("jupyterhub.custom.ds.groupPolicies[")  # one line naming the key
        return
    settings = load(case["policies"])
    assert resolved_values(group_policies.resolve(settings.group_policies, case["groups"])) == case["expect"]


def test_every_value_names_the_group_it_came_from():
    settings = load([{"group": "a", "priority": 2, "env": {"A": "1"}, "resources": {"cpuLimit": "1"}},
                     {"group": "b", "resources": {"cpuLimit": "3"}, "gpus": {"count": 1}, "sudo": True}])
    resolved = group_policies.resolve(settings.group_policies, {"a", "b"})
    assert resolved.sources == {"env.A": "a", "cpu_limit": "b", "gpus": "b", "sudo": "b"}


def test_a_bad_policy_stops_the_hub_with_one_line(capsys):
    with pytest.raises(SystemExit):
        configure(Config(), {"groupPolicies": [{"group": "a", "env": {"DOCKER_HOST": "tcp://x"}}]})
    assert capsys.readouterr().err.strip() == (
        "jupyterhub-ds: invalid setting: jupyterhub.custom.ds.groupPolicies[0].env.DOCKER_HOST: expected a name the "
        "platform does not set itself (reserved: JUPYTERHUB_*, JPY_*, JUPYTERLAB_*, MEM_*, CPU_*, NB_* and the "
        "lab's own variables)")


def test_five_groups_among_1000_policies():
    """Only the user's groups count, however many policies exist (the cost: ci/bench/group_policies.py)."""
    policies = [{"group": f"g{i}", "priority": i % 7, "env": {f"V{i}": "x"}, "resources": {"cpuLimit": f"{i % 9 + 1}"},
                 "mounts": [{"claimName": f"c{i}", "mountPath": f"/data/{i}"}]} for i in range(1000)]
    resolved = group_policies.resolve(load(policies).group_policies, {"g1", "g20", "g300", "g400", "g999"})
    assert len(resolved.mounts) == 5 and resolved.cpu_limit == "5"  # g400: 400 % 9 + 1
    assert set(resolved.env) == {"V1", "V20", "V300", "V400", "V999"}


# ---------------------------------------------------------------- on a real KubeSpawner pod

POLICIES = [
    {"group": "ml", "priority": 10, "env": {"TEAM": "ml"},
     "resources": {"cpuRequest": "1", "cpuLimit": "4", "memoryRequest": "8Gi", "memoryLimit": "16Gi"},
     "gpus": {"count": 2, "product": "A100"}, "mounts": [{"claimName": "datasets", "mountPath": "/datasets"}],
     "nodeSelector": {"pool": "ml"}, "tolerations": [{"key": "pool", "operator": "Equal", "value": "ml",
                                                       "effect": "NoSchedule"}]},
    {"group": "course", "env": {"TEAM": "course", "COURSE": "101"}, "sharedVolume": "ro",
     "resources": {"memoryRequest": "1Gi", "memoryLimit": "2Gi"},
     "mounts": [{"claimName": "scratch", "mountPath": "/scratch", "readOnly": False}]},
    {"group": "hidden", "sharedVolume": "none"},
    {"group": "admins", "sudo": True},
]


async def pod_of(groups: list[str], monkeypatch, extra: dict | None = None) -> dict:
    monkeypatch.setattr(docker_groups, "ensure_groups", lambda db, names: [])
    c = Config()
    c.KubeSpawner.cpu_limit = 2.0
    c.KubeSpawner.mem_guarantee = "512M"
    configure(c, {"storage": {"volumes": [{"name": "home", "mountPath": "/home/jovyan"}]},
                  "gpu": {"mode": 1, "group": "gpu-users"}, "groupPolicies": POLICIES, **(extra or {})})
    return as_json(await spawn_manifest(make_spawner(c, fake_user(groups=groups))))


def mounts_of(pod: dict) -> dict[str, bool]:
    return {m["mountPath"]: bool(m.get("readOnly")) for m in notebook(pod)["volumeMounts"]}


async def test_a_member_of_two_groups_starts_with_the_merged_pod(fake_kubeconfig, monkeypatch):
    pod = await pod_of(["ml", "course"], monkeypatch)
    nb = notebook(pod)
    env = {e["name"]: e.get("value") for e in nb["env"]}
    assert (env["TEAM"], env["COURSE"]) == ("ml", "101")
    assert env["ENABLE_GPU_SUPPORT"] == "1"  # the lab contract follows the policy's GPUs
    assert nb["resources"]["requests"]["cpu"] == "1" and nb["resources"]["limits"]["cpu"] == "4"
    assert nb["resources"]["requests"]["memory"] == "8Gi" and nb["resources"]["limits"]["memory"] == "16Gi"
    assert nb["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # course says read-only and ml says nothing: read-only
    assert mounts_of(pod) == {"/home/jovyan": False, "/mnt/shared": True, "/datasets": True, "/scratch": False}
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly")
              for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims["datasets"] is True and claims["scratch"] is False
    assert pod["spec"]["nodeSelector"] == {"pool": "ml", "nvidia.com/gpu.product": "A100"}
    assert {"key": "pool", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert nb["securityContext"]["allowPrivilegeEscalation"] is False


async def test_without_the_group_the_next_start_loses_it(fake_kubeconfig, monkeypatch):
    pod = await pod_of(["course"], monkeypatch)
    nb = notebook(pod)
    assert "nvidia.com/gpu" not in (nb["resources"].get("limits") or {})
    assert nb["resources"]["limits"]["cpu"] == 2.0  # KubeSpawner's (singleuser.cpu.limit)
    assert mounts_of(pod)["/mnt/shared"] is True and "/datasets" not in mounts_of(pod)
    assert "nodeSelector" not in pod["spec"] or "pool" not in pod["spec"]["nodeSelector"]


async def test_the_shared_volume_can_be_hidden_and_the_widest_grant_wins(fake_kubeconfig, monkeypatch):
    assert "/mnt/shared" not in mounts_of(await pod_of(["hidden"], monkeypatch))
    assert mounts_of(await pod_of(["hidden", "course"], monkeypatch))["/mnt/shared"] is True
    assert "ds-shared" not in {v["name"] for v in (await pod_of(["hidden"], monkeypatch))["spec"]["volumes"]}


async def test_a_limit_is_never_below_the_request(fake_kubeconfig, monkeypatch):
    pod = await pod_of(["x"], monkeypatch, {"groupPolicies": [{"group": "x", "resources": {"cpuRequest": "3"}}]})
    assert notebook(pod)["resources"]["limits"]["cpu"] == "3"  # KubeSpawner's limit 2 raised to the request
    pod = await pod_of(["x"], monkeypatch, {"groupPolicies": [{"group": "x", "resources": {"memoryLimit": "256M"}}]})
    resources = notebook(pod)["resources"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == "256M"  # caps the chart's 512M


async def test_sudo_starts_as_root_and_no_sudo_forbids_escalation(fake_kubeconfig, monkeypatch):
    nb = notebook(await pod_of(["admins"], monkeypatch))
    assert nb["securityContext"]["runAsUser"] == 0 and nb["securityContext"]["allowPrivilegeEscalation"] is True
    assert nb["securityContext"]["runAsNonRoot"] is False  # a chart-wide runAsNonRoot would refuse the root start
    assert {"name": "GRANT_SUDO", "value": "yes"} in nb["env"]
    nb = notebook(await pod_of(["course"], monkeypatch, {"groupPolicies": POLICIES}))
    assert nb["securityContext"]["allowPrivilegeEscalation"] is False and "GRANT_SUDO" not in {
        e["name"] for e in nb["env"]}


async def test_a_privileged_member_keeps_a_valid_security_context(fake_kubeconfig, monkeypatch):
    nb = notebook(await pod_of(["docker-privileged"], monkeypatch))
    # Kubernetes refuses privileged with allowPrivilegeEscalation false
    assert nb["securityContext"]["privileged"] is True
    assert nb["securityContext"].get("allowPrivilegeEscalation") is not False


async def test_policy_gpus_follow_the_gpu_mode(fake_kubeconfig, monkeypatch):
    nb = notebook(await pod_of(["ml"], monkeypatch, {"gpu": {"mode": 0}}))
    assert "nvidia.com/gpu" not in (nb["resources"].get("limits") or {})
    assert {e["name"]: e.get("value") for e in nb["env"]}["ENABLE_GPU_SUPPORT"] == "0"


# ---------------------------------------------------------------- profiles per group

PROFILES = [{"display_name": "Small", "slug": "small"}, {"display_name": "Large", "slug": "large", "default": True},
            {"display_name": "GPU box", "kubespawner_override": {"cpu_limit": 8}}]


def profile_spawner(groups: list[str], monkeypatch, user_options: dict | None = None) -> Any:
    monkeypatch.setattr(docker_groups, "ensure_groups", lambda db, names: [])
    c = Config()
    c.KubeSpawner.profile_list = PROFILES
    configure(c, {"storage": {"enabled": False}, "gpu": {"mode": 0}, "groupPolicies": [
        {"group": "course", "profiles": ["small"]}, {"group": "gpu", "profiles": ["gpu-box"]},
        {"group": "nothing", "profiles": []}]})
    spawner = make_spawner(c, fake_user(groups=groups))
    spawner.user_options = user_options or {}
    return spawner


async def test_a_profile_not_allowed_is_hidden_from_the_form(fake_kubeconfig, monkeypatch):
    form = profile_spawner(["course"], monkeypatch).options_form
    assert "Small" in form and "Large" not in form and "GPU box" not in form
    form = profile_spawner(["course", "gpu"], monkeypatch).options_form
    assert "Small" in form and "GPU box" in form and "Large" not in form
    form = profile_spawner(["others"], monkeypatch).options_form  # no group restricts: every profile
    assert "Small" in form and "Large" in form and "GPU box" in form


async def test_a_profile_not_allowed_is_refused_with_403_naming_the_policy(fake_kubeconfig, monkeypatch):
    from tornado import web

    with pytest.raises(web.HTTPError) as e:
        await profile_spawner(["course"], monkeypatch, {"profile": "large"}).ds_check_profile()
    assert e.value.status_code == 403
    assert "'large' is not available to you: the group policies of course (custom.ds.groupPolicies) allow small" in (
        e.value.log_message % e.value.args)
    with pytest.raises(web.HTTPError) as e:
        await profile_spawner(["nothing"], monkeypatch).ds_check_profile()
    assert e.value.status_code == 403 and "No server profile is available to you" in e.value.args[0]
    await profile_spawner(["course"], monkeypatch, {"profile": "small"}).ds_check_profile()
    await profile_spawner(["course"], monkeypatch).ds_check_profile()  # the default: small, the only one allowed
    await profile_spawner(["course"], monkeypatch, {"profile": ""}).ds_check_profile()  # KubeSpawner: the default
    await profile_spawner(["others"], monkeypatch, {"profile": "large"}).ds_check_profile()


async def test_the_allowed_profile_becomes_the_default_and_its_overrides_apply(fake_kubeconfig, monkeypatch):
    spawner = profile_spawner(["gpu"], monkeypatch)
    await spawner.load_user_options()  # no choice sent: the default of what the user may use
    assert spawner.cpu_limit == 8
    spawner = profile_spawner(["course"], monkeypatch, {"profile": "gpu-box"})
    with pytest.raises(ValueError):  # KubeSpawner itself cannot pick a hidden profile either
        await spawner.load_user_options()


# ---------------------------------------------------------------- effective grants

async def test_effective_grants_say_where_each_came_from_and_what_the_pod_has(fake_kubeconfig, monkeypatch):
    from hub_extensions.settings import load_settings as settings_of

    settings = settings_of({"storage": {"volumes": [{"name": "home", "mountPath": "/home/jovyan"}]},
                            "gpu": {"mode": 1, "group": "gpu-users"}, "groupPolicies": POLICIES})
    pod = await pod_of(["ml", "course"], monkeypatch)
    grants = {g["key"]: g for g in group_policies.user_grants(settings, {"ml", "course"}, pod, None)}
    assert grants["env.TEAM"] == {"key": "env.TEAM", "label": "Variable TEAM", "value": "ml", "from": "ml",
                                  "in_pod": True}
    assert (grants["cpu_limit"]["value"], grants["cpu_limit"]["from"]) == ("4", "ml")
    assert grants["memory_request"]["from"] == "ml" and grants["gpus"]["value"] == "2"
    assert grants["sharedVolume"] == {"key": "sharedVolume", "label": "Shared volume", "value": "read-only",
                                      "from": "course", "in_pod": True}
    assert grants["mount./scratch"]["value"] == "scratch (read-write)"
    assert all(g["in_pod"] for g in grants.values()), [g for g in grants.values() if not g["in_pod"]]
    # added to the ml group since the start: the running pod lacks what only ml gives
    later = {g["key"]: g for g in group_policies.user_grants(settings, {"ml", "course"},
                                                             await pod_of(["course"], monkeypatch), None)}
    assert later["cpu_limit"]["in_pod"] is False and later["mount./datasets"]["in_pod"] is False
    assert later["env.COURSE"]["in_pod"] is True and later["sharedVolume"]["in_pod"] is True
    # no server: nothing to compare; GPUs off: not listed
    stopped = group_policies.user_grants(settings_of({"gpu": {"mode": 0}, "groupPolicies": POLICIES}), {"ml"}, None,
                                         None)
    assert all(g["in_pod"] is None for g in stopped) and "gpus" not in {g["key"] for g in stopped}


# ---------------------------------------------------------------- culling per group

def test_a_servers_culling_comes_from_its_policies_when_it_started():
    hub = CullerSettings(enabled=True, timeout_seconds=3600, max_extension_hours=24)
    now = 1_750_000_000.0
    orm_spawner = SimpleNamespace(server=object(), last_activity=None, started=None)
    gpu_server = SimpleNamespace(pending=None, orm_spawner=orm_spawner, ds_extended_until=None, ds_extension_hours=0,
                                 ds_culling={"timeout_seconds": 600, "max_extension_hours": 0})
    plain = SimpleNamespace(pending=None, orm_spawner=orm_spawner, ds_extended_until=None, ds_extension_hours=0)
    assert culler.effective(hub, plain) is hub
    assert (culler.effective(hub, gpu_server).timeout_seconds, culler.effective(hub, gpu_server).max_extension_hours
            ) == (600, 0)
    info = culler.session_info(gpu_server, hub, now)
    assert (info["timeout_seconds"], info["max_extension_hours"], info["extensions_available_hours"]) == (600, 0, 0)
    assert culler.extend_spawner(gpu_server, hub, 1, now).hours == 0  # no extensions for this server
    # idle for 20 minutes: the GPU server is due, the plain one is not
    gpu_server.orm_spawner = SimpleNamespace(server=object(), last_activity=None, started=None)
    users = [SimpleNamespace(id=1, spawners={"": gpu_server}), SimpleNamespace(id=2, spawners={"": plain})]
    idle_since = datetime.fromtimestamp(now - 1200, UTC).replace(tzinfo=None)
    for s in (gpu_server, plain):
        s.orm_spawner = SimpleNamespace(server=object(), last_activity=idle_since, started=idle_since)
    assert [c.user.id for c in culler.due(users, hub, now)] == [1]


# ---------------------------------------------------------------- what Kubernetes would refuse, and the review's cases

def bare_pod(**context: Any) -> Any:
    from kubernetes_asyncio.client import V1Container, V1Pod, V1PodSpec

    return V1Pod(spec=V1PodSpec(containers=[V1Container(name="notebook", security_context=context or None)],
                                volumes=[]))


@pytest.mark.parametrize("context", [{"privileged": True}, {"capabilities": {"add": ["SYS_ADMIN"]}}])
def test_no_escalation_is_not_forced_where_kubernetes_refuses_it(context):
    """A chart that makes every server privileged or gives CAP_SYS_ADMIN (FUSE): Kubernetes refuses
    allowPrivilegeEscalation false with either, so every start would fail."""
    pod = bare_pod(**context)
    group_policies.apply(pod, group_policies.Resolved(), gpu_granted=False, privileged=False)
    assert "allowPrivilegeEscalation" not in pod.spec.containers[0].security_context


def test_tolerations_that_differ_in_value_are_all_kept():
    settings = load([{"group": "a", "tolerations": [{"key": "pool", "operator": "Equal", "value": "ml",
                                                      "effect": "NoSchedule"}]},
                     {"group": "b", "tolerations": [{"key": "pool", "operator": "Equal", "value": "gpu",
                                                      "effect": "NoSchedule"}]}])
    pod = bare_pod()
    group_policies.apply(pod, group_policies.resolve(settings.group_policies, {"a", "b"}), False, False)
    assert [t["value"] for t in pod.spec.tolerations] == ["ml", "gpu"]


def test_identity_provider_groups_give_no_sudo_without_allow_managed_root():
    settings = load([{"group": "staff", "sudo": True, "env": {"A": "1"}}])
    assert group_policies.for_user(settings, {"staff"}).sudo
    refused = group_policies.for_user(settings, {"staff"}, root_refused=True)
    assert not refused.sudo and refused.env == {"A": "1"}


def test_an_extension_kept_across_restart_server_stays_under_the_new_ceiling():
    hub = CullerSettings(enabled=True, timeout_seconds=3600, max_extension_hours=24)
    now = 1_750_000_000.0
    spawner = SimpleNamespace(ds_extended_until=now + 24 * 3600, ds_culling={"timeout_seconds": 900,
                                                                            "max_extension_hours": 1})
    culler.keep_within_ceiling(spawner, hub, now)  # joined the GPU group, then pressed Restart Server
    assert spawner.ds_extended_until == now + 900 + 3600
    spawner = SimpleNamespace(ds_extended_until=now + 600, ds_culling=None)
    culler.keep_within_ceiling(spawner, hub, now)
    assert spawner.ds_extended_until == now + 600


def test_a_grant_filtered_to_a_group_sees_no_environment_values():
    from hub_extensions.group_policies_api import visible

    grants = [{"key": "env.TOKEN", "value": "s3cret"}, {"key": "cpu_limit", "value": "4"}]
    user = SimpleNamespace(name="al")

    def caller(name: str, admin: bool) -> Any:
        return SimpleNamespace(current_user=SimpleNamespace(name=name), covers=lambda user, *scopes: admin)

    assert visible(caller("al", False), user, grants) == grants  # the user
    assert visible(caller("root", True), user, grants) == grants  # admin:users on them
    assert visible(caller("dora", False), user, grants) == [{"key": "env.TOKEN", "value": "(set)"},
                                                             {"key": "cpu_limit", "value": "4"}]
    service = SimpleNamespace(current_user=SimpleNamespace(name="al", kind="service"), covers=lambda u, *s: False)
    assert visible(service, user, grants)[0]["value"] == "(set)"  # a service named like the user is not the user


async def test_the_start_api_refuses_a_profile_before_the_start_begins(monkeypatch):
    """Z2JH answers a start at once (slow_spawn_timeout 0): the check sits in front of spawn_single_user."""
    from jupyterhub.handlers.base import BaseHandler
    from tornado import web

    from hub_extensions.group_policies_api import ProfileCheckedServerAPIHandler

    started = []

    async def spawn_single_user(self, user, server_name="", options=None):
        started.append((user.name, server_name, options))

    monkeypatch.setattr(BaseHandler, "spawn_single_user", spawn_single_user)

    async def check(options):
        if options.get("profile") == "large":
            raise web.HTTPError(403, "not for you")

    user = SimpleNamespace(name="al", spawners={"": SimpleNamespace(ds_check_profile=check), "x": SimpleNamespace()})
    handler = object.__new__(ProfileCheckedServerAPIHandler)
    with pytest.raises(web.HTTPError) as e:
        await handler.spawn_single_user(user, "", {"profile": "large"})
    assert e.value.status_code == 403 and started == []
    await handler.spawn_single_user(user, "", {"profile": "small"})
    await handler.spawn_single_user(user, "x", None)  # a spawner without the check (not ours): as JupyterHub
    assert started == [("al", "", {"profile": "small"}), ("al", "x", None)]


def test_routes_ahead_of_jupyterhubs_own():
    from hub_extensions.handler_base import routes_ahead

    app = SimpleNamespace(hub_prefix="/hub/", handlers=[])
    app.add_url_prefix = lambda prefix, routes: [(prefix.rstrip("/") + r[0], *r[1:]) for r in routes]
    app.init_handlers = lambda: app.handlers.extend([("/hub/api/users/([^/]+)/server", "JupyterHub's")])
    routes_ahead(app, [("/api/users/([^/]+)/server", "ours")])
    app.init_handlers()
    assert app.handlers == [("/hub/api/users/([^/]+)/server", "ours"),
                            ("/hub/api/users/([^/]+)/server", "JupyterHub's")]
