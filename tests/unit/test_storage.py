"""Pure storage builders: naming, manifests, pod wiring, reports, request validation."""

from __future__ import annotations

import re

import pytest
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1Volume, V1VolumeMount

from hub_extensions import objects, storage
from hub_extensions.settings import load_settings

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_owner_keys_are_unique_per_account():
    keys = {storage.new_owner_key(12) for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"u12-[0-9a-f]{8}", k) for k in keys)


@pytest.mark.parametrize("username", ["alice", "Alice.Smith@example.com", "a_b", "x" * 200, "用户"])
def test_claim_manifest_is_valid_for_any_username(username):
    s = load_settings(None).storage
    owner = storage.new_owner_key(7)
    m = storage.claim_manifest(s.volumes[0], owner, username, {"app": "jupyterhub"})
    assert DNS1123.match(m["metadata"]["name"]) and len(m["metadata"]["name"]) <= 63
    assert m["metadata"]["annotations"]["hub.jupyter.org/username"] == username
    labels = m["metadata"]["labels"]
    assert labels["jupyterhub-ds/owner"] == owner and labels["jupyterhub-ds/volume"] == "home"
    assert labels["app.kubernetes.io/managed-by"] == "jupyterhub-ds" and labels["app"] == "jupyterhub"
    assert all(len(v) <= 63 for v in labels.values())
    assert m["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in m["spec"]


def test_storage_class_is_passed_when_set():
    s = load_settings({"storage": {"volumes": [{"name": "home", "mountPath": "/h", "storageClass": ""}]}}).storage
    assert storage.claim_manifest(s.volumes[0], "u1-x", "a")["spec"]["storageClassName"] == ""


def _pod() -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(
        containers=[V1Container(name="notebook", volume_mounts=[V1VolumeMount(name="x", mount_path="/home")])],
        volumes=[V1Volume(name="x")]))


def test_pod_wiring_is_idempotent_and_replaces_conflicting_mounts():
    s = load_settings(None).storage
    volumes, mounts = storage.pod_volumes(s, "u1-abc")
    pod = objects.add_volumes(objects.add_volumes(_pod(), volumes, mounts), volumes, mounts)
    names = [v["name"] if isinstance(v, dict) else v.name for v in pod.spec.volumes]
    assert names == ["x", "ds-home", "ds-workspace", "ds-cache", "ds-shared"]
    paths = [m["mountPath"] if isinstance(m, dict) else m.mount_path for m in pod.spec.containers[0].volume_mounts]
    assert paths == ["/home", "/home/lab/workspace", "/home/lab/.cache", "/mnt/shared"]  # the old /home mount is gone
    assert volumes[-1]["persistentVolumeClaim"]["claimName"] == "jupyterhub-ds-shared"


def test_shared_volume_existing_claim_and_disabled():
    s = load_settings({"storage": {"shared": {"existingClaim": "nfs-home"}}}).storage
    assert storage.pod_volumes(s, "o")[0][-1]["persistentVolumeClaim"]["claimName"] == "nfs-home"
    s = load_settings({"storage": {"shared": {"enabled": False}}}).storage
    assert [v["name"] for v in storage.pod_volumes(s, "o")[0]] == ["ds-home", "ds-workspace", "ds-cache"]


def test_volume_report_covers_missing_bound_and_terminating():
    s = load_settings(None).storage
    claims = [
        {"metadata": {"name": "c-home", "labels": {"jupyterhub-ds/volume": "home"}},
         "spec": {"resources": {"requests": {"storage": "10Gi"}}},
         "status": {"phase": "Bound", "capacity": {"storage": "11Gi"}}},
        {"metadata": {"name": "c-cache", "labels": {"jupyterhub-ds/volume": "cache"},
                      "deletionTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"resources": {"requests": {"storage": "5Gi"}}}, "status": {"phase": "Bound"}},
    ]
    report = {r["volume"]: r for r in storage.volume_report(s, claims)}
    assert report["home"]["status"] == "Bound" and report["home"]["size"] == "11Gi"
    assert report["workspace"]["status"] == "Missing" and not report["workspace"]["exists"]
    assert report["cache"]["status"] == "Terminating"


@pytest.mark.parametrize(("body", "status", "text"), [
    (None, 400, "Expected a JSON object"),
    ([], 400, "Expected a JSON object"),
    ({"volumes": []}, 400, "No volumes specified"),
    ({"volumes": [1]}, 400, "No volumes specified"),
    ({"volumes": ["home", "shared"]}, 400, "Invalid volume types: shared"),
    ({"volumes": ["../home"]}, 400, "Invalid volume types: ../home"),
])
def test_reset_requests_are_validated(body, status, text):
    with pytest.raises(storage.StorageError) as err:
        storage.check_reset_request(load_settings(None).storage, body)
    assert err.value.status == status and text in err.value.message


def test_non_resettable_volumes_cannot_be_reset():
    s = load_settings({"storage": {"volumes": [{"name": "home", "mountPath": "/h", "resettable": False},
                                               {"name": "tmp", "mountPath": "/t"}]}}).storage
    assert storage.check_reset_request(s, {"volumes": ["tmp", "tmp"]}) == ["tmp"]
    with pytest.raises(storage.StorageError, match="Invalid volume types: home"):
        storage.check_reset_request(s, {"volumes": ["home"]})


def test_reset_result_status_codes():
    ok = storage.ResetResult(reset=["home"])
    assert ok.status == 200 and ok.as_json()["message"] == "Successfully reset 1 volume(s)"
    assert storage.ResetResult(reset=["a"], failed=[{"volume": "b", "reason": "x"}]).status == 207
    assert storage.ResetResult(failed=[{"volume": "b", "reason": "not found"}]).status == 404
    assert storage.ResetResult(failed=[{"volume": "b", "reason": "API error 500"}]).status == 500
