"""The pure pod helpers: dicts and models alike, replace by name, merges that keep what is there."""

from __future__ import annotations

from kubernetes_asyncio.client import (
    V1Container,
    V1EnvVar,
    V1ObjectMeta,
    V1Pod,
    V1PodSecurityContext,
    V1PodSpec,
    V1SecurityContext,
    V1Toleration,
    V1Volume,
)

from hub_extensions import objects

from .spawner_fixtures import as_json, notebook


def pod(**spec: object) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(
        containers=[V1Container(name="sidecar"), V1Container(name="notebook")], **spec))


def test_field_reader_reads_json_dicts_and_models():
    assert objects.snake("mountPath") == "mount_path" and objects.snake("name") == "name"
    assert objects.get_field({"mountPath": "/a"}, "mountPath") == "/a"
    assert objects.get_field(V1Volume(name="v"), "name") == "v"
    assert objects.get_field(V1PodSecurityContext(supplemental_groups=[5]), "supplementalGroups") == [5]
    assert objects.get_field(None, "name") is None


def test_notebook_container_and_replace_by_name():
    p = pod()
    assert objects.notebook_container(p).name == "notebook"
    kept = [{"name": "a", "value": "1"}, V1EnvVar(name="b", value="2")]
    assert objects.replace_by_name(kept, [{"name": "b", "value": "3"}]) == [kept[0], {"name": "b", "value": "3"}]
    assert objects.replace_by_name(None, [{"name": "x"}]) == [{"name": "x"}]


def test_supplemental_groups_merge_into_kubespawners_dict_or_a_model_or_nothing():
    p = pod(security_context={"fsGroup": 100, "supplementalGroups": [5]})
    objects.add_supplemental_groups(objects.add_supplemental_groups(p, [999]), [999])
    assert as_json(p)["spec"]["securityContext"] == {"fsGroup": 100, "supplementalGroups": [5, 999]}

    p = pod(security_context=V1PodSecurityContext(run_as_user=1000))
    assert as_json(objects.add_supplemental_groups(p, [999]))["spec"]["securityContext"] == {
        "runAsUser": 1000, "supplementalGroups": [999]}

    p = pod()
    assert as_json(objects.add_supplemental_groups(p, [999]))["spec"]["securityContext"] == {
        "supplementalGroups": [999]}
    assert "securityContext" not in as_json(objects.add_supplemental_groups(pod(), []))["spec"]


def test_container_security_context_dict_or_model():
    c = V1Container(name="notebook", security_context={"runAsUser": 1000})
    objects.merge_security_context(c, {"privileged": True})
    assert c.security_context == {"runAsUser": 1000, "privileged": True}
    c = V1Container(name="notebook", security_context=V1SecurityContext(run_as_user=1000))
    objects.merge_security_context(c, {"allowPrivilegeEscalation": True})
    assert c.security_context.allow_privilege_escalation is True and c.security_context.run_as_user == 1000


def test_tolerations_node_selector_and_limits():
    p = pod(tolerations=[V1Toleration(key="k", operator="Exists", effect="NoSchedule")], node_selector={"a": "1"})
    objects.add_toleration(p, {"key": "k", "operator": "Exists", "effect": "NoSchedule"})
    objects.add_toleration(p, {"key": "g", "operator": "Exists", "effect": "NoSchedule"})
    objects.merge_node_selector(p, {"a": "2", "b": "3"})
    objects.set_resource_limit(objects.notebook_container(p), "x.io/gpu", "2")
    j = as_json(p)
    assert [t["key"] for t in j["spec"]["tolerations"]] == ["k", "g"]
    assert j["spec"]["nodeSelector"] == {"a": "2", "b": "3"}
    assert notebook(j)["resources"] == {"limits": {"x.io/gpu": "2"}}

    c = V1Container(name="notebook", resources={"requests": {"x.io/gpu": "4", "cpu": "1"}})
    objects.set_resource_limit(c, "x.io/gpu", "1")
    assert c.resources.requests == {"x.io/gpu": "1", "cpu": "1"} and c.resources.limits == {"x.io/gpu": "1"}


def test_add_volumes_replaces_by_name_and_mount_path():
    p = pod(volumes=[V1Volume(name="old"), {"name": "keep"}])
    objects.notebook_container(p).volume_mounts = [{"name": "old", "mountPath": "/home"},
                                                   {"name": "keep", "mountPath": "/keep"}]
    new_volume, new_mount = {"name": "ds-home", "emptyDir": {}}, {"name": "ds-home", "mountPath": "/home"}
    objects.add_volumes(objects.add_volumes(p, [new_volume], [new_mount]), [new_volume], [new_mount])
    j = as_json(p)
    assert [v["name"] for v in j["spec"]["volumes"]] == ["old", "keep", "ds-home"]
    assert notebook(j)["volumeMounts"] == [{"name": "keep", "mountPath": "/keep"}, new_mount]
