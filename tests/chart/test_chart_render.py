"""helm template: which of our objects appear for which values, and that they are valid Kubernetes objects."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hub_extensions.settings import SHARED_CLAIM_NAME, SharedVolumeSettings

EXAMPLE_VALUES = Path(__file__).resolve().parents[2] / "values.example.yaml"
KUBE_VERSIONS = ("1.28.0", "1.34.0")

DS = "jupyterhub.custom.ds"
RBAC = {("Role", "jupyterhub-ds-hub"), ("RoleBinding", "jupyterhub-ds-hub"),
        ("ClusterRole", "jupyterhub-jupyterhub-ds-hub"), ("ClusterRoleBinding", "jupyterhub-jupyterhub-ds-hub")}
SHARED = {("PersistentVolumeClaim", SHARED_CLAIM_NAME)}
BRANDING = {("ConfigMap", "jupyterhub-ds-branding")}
FIRST_ADMIN = {("Secret", "jupyterhub-ds-first-admin")}  # always: the hub's env refers to it
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()

# (id, --set values, objects of ours expected)
MATRIX: list[tuple[str, tuple[str, ...], set[tuple[str, str]]]] = [
    ("defaults", (), RBAC | SHARED | FIRST_ADMIN),
    ("shared-off", (f"{DS}.storage.shared.enabled=false",), RBAC | FIRST_ADMIN),
    ("shared-on-explicit", (f"{DS}.storage.shared.enabled=true",), RBAC | SHARED | FIRST_ADMIN),
    ("storage-off", (f"{DS}.storage.enabled=false",), RBAC | FIRST_ADMIN),
    ("existing-claim", (f"{DS}.storage.shared.existingClaim=team-nfs",), RBAC | FIRST_ADMIN),
    ("rbac-off", ("rbac.create=false",), SHARED | FIRST_ADMIN),
    ("branding-files", (f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}",), RBAC | SHARED | BRANDING | FIRST_ADMIN),
    ("gpu-off", (f"{DS}.gpu.mode=0",), RBAC | SHARED | FIRST_ADMIN),
    ("gpu-forced", (f"{DS}.gpu.mode=1", f"{DS}.gpu.count=2"), RBAC | SHARED | FIRST_ADMIN),
    ("gpu-auto", (f"{DS}.gpu.mode=2",), RBAC | SHARED | FIRST_ADMIN),
    ("all-off", ("rbac.create=false", f"{DS}.storage.shared.enabled=false"), FIRST_ADMIN),
    ("namespace", ("podSecurity.manageNamespace=true",), RBAC | SHARED | {("Namespace", "jupyterhub")} | FIRST_ADMIN),
]
MATRIX_IDS = [case[0] for case in MATRIX]


def kinds(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {kinds(found)}"
    return found[0]


def subchart_values(renderer: Any, *set_values: str, **kwargs: Any) -> dict:
    """The values Z2JH's hub reads at runtime: the ``values.yaml`` key of Z2JH's hub Secret."""
    for r in renderer.documents(*set_values, **kwargs):
        doc = r.doc
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "hub" and "values.yaml" in (doc.get("data") or {}):
            return yaml.safe_load(base64.b64decode(doc["data"]["values.yaml"]))
    raise AssertionError("Z2JH's hub Secret with values.yaml not rendered")


@pytest.mark.parametrize(("set_values", "expected"), [case[1:] for case in MATRIX], ids=MATRIX_IDS)
def test_objects_appear_and_disappear(renderer, set_values, expected):
    assert kinds(renderer.ours(*set_values)) == expected


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("set_values", [case[1] for case in MATRIX], ids=MATRIX_IDS)
def test_our_objects_validate_strictly(renderer, set_values, kube_version):
    docs = renderer.ours(*set_values)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {kube_version}: {exc.message}")


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_example_values_objects_validate_strictly(renderer, kube_version):
    docs = renderer.ours(values=(EXAMPLE_VALUES,))
    assert kinds(docs) == RBAC | SHARED | FIRST_ADMIN
    for doc in docs:
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_every_object_of_ours_carries_standard_labels(renderer):
    docs = renderer.ours(f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}", release="ds")
    assert docs
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "jupyterhub-ds"
        assert labels["app.kubernetes.io/instance"] == "ds"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "jupyterhub-ds"
        assert labels["app.kubernetes.io/component"]
        assert labels["helm.sh/chart"] == "jupyterhub-ds-0.1.0"


def test_namespaced_objects_are_in_the_release_namespace(renderer):
    for doc in renderer.ours(f"jupyterhub.custom.brandingFiles.a={PNG}", namespace="team-a"):
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == "team-a"


def test_shared_claim_defaults_match_the_python_settings(renderer):
    pvc = one(renderer.ours(), "PersistentVolumeClaim")
    defaults = SharedVolumeSettings()
    assert pvc["metadata"]["name"] == SHARED_CLAIM_NAME
    assert pvc["spec"]["resources"]["requests"]["storage"] == defaults.size == "10Gi"
    assert pvc["spec"]["accessModes"] == defaults.access_modes == ["ReadWriteMany"]
    assert defaults.storage_class is None
    assert "storageClassName" not in pvc["spec"]  # null: the cluster's default StorageClass
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_shared_claim_follows_the_settings(renderer):
    pvc = one(renderer.ours(f"{DS}.storage.shared.size=2Ti", f"{DS}.storage.shared.storageClass=cephfs",
                            f"{DS}.storage.shared.accessModes={{ReadWriteMany,ReadOnlyMany}}"),
              "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Ti"
    assert pvc["spec"]["storageClassName"] == "cephfs"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany", "ReadOnlyMany"]


def test_shared_claim_empty_storage_class_is_kept(renderer):
    pvc = one(renderer.ours(f"{DS}.storage.shared.storageClass="), "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == ""


def test_branding_configmap_carries_the_files(renderer):
    cm = one(renderer.ours(f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}",
                           "jupyterhub.custom.brandingFiles.favicon\\.ico=AAAB"), "ConfigMap")
    assert cm["binaryData"] == {"logo.png": PNG, "favicon.ico": "AAAB"}
    assert "data" not in cm


def test_branding_mount_matches_the_settings_files_dir(chart_dir):
    """values.yaml mounts the branding ConfigMap where the hub looks for it (BrandingSettings.files_dir)."""
    from hub_extensions.settings import BrandingSettings

    hub = yaml.safe_load((chart_dir / "values.yaml").read_text())["jupyterhub"]["hub"]
    (volume,) = hub["extraVolumes"]
    (mount,) = hub["extraVolumeMounts"]
    assert volume == {"name": "jupyterhub-ds-branding",
                      "configMap": {"name": "jupyterhub-ds-branding", "optional": True}}
    assert mount == {"name": "jupyterhub-ds-branding", "mountPath": BrandingSettings().files_dir,
                     "readOnly": True}


def test_parent_values_reach_the_subchart(renderer):
    values = subchart_values(renderer, f"{DS}.gpu.mode=1")
    assert values["hub"]["image"]["name"] == "ghcr.io/jupyterhub-ds/hub"
    assert values["hub"]["image"]["tag"] == "0.1.0"
    assert values["singleuser"]["image"]["name"] == "ghcr.io/jupyterhub-ds/singleuser"
    assert values["custom"]["ds"] == {"gpu": {"mode": 1}}


def test_example_settings_reach_the_subchart(renderer):
    example = yaml.safe_load(EXAMPLE_VALUES.read_text())
    values = subchart_values(renderer, values=(EXAMPLE_VALUES,))
    assert values["custom"]["ds"] == example["jupyterhub"]["custom"]["ds"]


@pytest.mark.parametrize(("set_values", "release", "account"), [
    ((), "jupyterhub", "hub"),
    (("jupyterhub.fullnameOverride=jh",), "jupyterhub", "jh-hub"),
    (("jupyterhub.fullnameOverride=null",), "prod", "prod-jupyterhub-hub"),
    (("jupyterhub.fullnameOverride=null",), "my-jupyterhub", "my-jupyterhub-hub"),
    (("jupyterhub.fullnameOverride=null", "jupyterhub.nameOverride=lab"), "prod", "prod-lab-hub"),
    (("jupyterhub.hub.serviceAccount.name=hub-sa",), "jupyterhub", "hub-sa"),
    (("jupyterhub.hub.serviceAccount.create=false",), "jupyterhub", "default"),
], ids=["default", "fullname-override", "null-override", "null-override-contained", "name-override",
        "sa-name", "sa-not-created"])
def test_rbac_binds_the_hub_service_account(renderer, set_values, release, account):
    """Same naming rule as Z2JH's _helpers-names.tpl (jupyterhub.hub-serviceaccount.fullname)."""
    docs = renderer.ours(*set_values, release=release)
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        (binding,) = [d for d in docs if d["kind"] == kind]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "jupyterhub"}]
    # the real Z2JH chart names its hub ServiceAccount (when it creates one) and its hub Deployment's the same
    z2jh = [r.doc for r in renderer.documents(*set_values, release=release)
            if r.source.startswith("jupyterhub-ds/charts/jupyterhub/templates/hub/")]
    created = [d["metadata"]["name"] for d in z2jh if d["kind"] == "ServiceAccount"]
    assert created in ([account], [])
    (deployment,) = [d for d in z2jh if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"].get("serviceAccountName", "default") == account


def test_kube_version_constraint(renderer, chart_module):
    renderer.documents(kube_version="1.28.0")
    with pytest.raises(chart_module.HelmError, match=r"kubeVersion"):
        renderer.documents(kube_version="1.27.9")


@pytest.mark.parametrize(("set_values", "level"), [((), "privileged"), (("podSecurity.enforce=baseline",), "baseline")])
def test_managed_namespace_carries_pod_security_labels(renderer, set_values, level):
    ns = one(renderer.ours("podSecurity.manageNamespace=true", *set_values, namespace="team-a"), "Namespace")
    assert ns["metadata"]["name"] == "team-a"
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == level
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert ns["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_two_cullers_are_refused(renderer):
    """Z2JH's culler (on by default) and ours together: helm fails with a sentence naming both keys."""
    err = renderer.error("jupyterhub.custom.ds.culler.enabled=true")
    assert "jupyterhub.cull.enabled and jupyterhub.custom.ds.culler.enabled are both true" in err
    assert "Set jupyterhub.cull.enabled=false" in err


def test_one_culler_renders(renderer):
    assert renderer.ours("jupyterhub.custom.ds.culler.enabled=true", "jupyterhub.cull.enabled=false")
    assert renderer.ours()  # defaults: Z2JH's culler on, ours off
    example = yaml.safe_load(EXAMPLE_VALUES.read_text())["jupyterhub"]
    assert example["cull"]["enabled"] is False and example["custom"]["ds"]["culler"]["enabled"] is True
