"""The installed chart's RBAC (Z2JH's hub Role and ours), exercised as the release's hub ServiceAccount itself
(a TokenRequest token, as its pod gets; not admin)."""

from __future__ import annotations

import pytest

from ci.dev import devenv

from ..conftest import Kube

# (verb, resource, expected) in the hub's own namespace; each line names the feature needing it
OWN_NAMESPACE = [
    ("create", "persistentvolumeclaims", "yes"),  # storage: ensure claims (Z2JH Role)
    ("delete", "persistentvolumeclaims", "yes"),  # storage: reset and onUserDelete=delete (Z2JH Role)
    ("patch", "persistentvolumeclaims", "yes"),  # storage: orphan label, rename label (our Role)
    ("list", "pods", "yes"),  # KubeSpawner reflector (Z2JH Role)
    ("patch", "pods", "no"),
    ("update", "persistentvolumeclaims", "no"),
    ("list", "pods.metrics.k8s.io", "yes"),  # activity monitor (our Role)
    ("create", "events", "yes"),  # culler: Culled / SessionExtended events (our Role)
    ("update", "secrets", "yes"),  # per-user environment variables: the user's Secret (our Role)
    ("patch", "secrets", "no"),
    ("delete", "events", "no"),
]
# (verb, resource, subresource, expected): `can-i get pods/log` would ask about a pod NAMED "log"
SUBRESOURCES = [
    ("get", "pods", "log", "yes"),  # home dashboard: log tail of a crashed or failed server (our Role)
    ("create", "pods", "exec", "no"),
    ("get", "pods", "exec", "no"),
    ("create", "pods", "portforward", "no"),
]
CLUSTER = [
    ("list", "nodes", "yes"),  # GPU auto mode (our ClusterRole)
    ("get", "nodes", "no"),
    ("watch", "nodes", "no"),
    ("list", "pods.metrics.k8s.io", "no"),  # cluster-wide: only the hub's namespace is granted
    ("list", "nodes.metrics.k8s.io", "yes"),  # cluster capacity: node usage (our ClusterRole)
    ("get", "nodes.metrics.k8s.io", "no"),
    ("list", "pods", "no"),  # cluster capacity counts requests from the hub's own namespace only
    ("patch", "nodes", "no"),
    ("delete", "nodes", "no"),
    ("list", "persistentvolumes", "no"),
]


@pytest.fixture(scope="module")
def as_hub(hub_kubeconfig, namespace) -> Kube:
    return Kube(hub_kubeconfig, namespace)


@pytest.mark.parametrize(("verb", "resource", "expected"), OWN_NAMESPACE)
def test_hub_permissions_in_its_namespace(as_hub, verb, resource, expected):
    assert as_hub("auth", "can-i", verb, resource, check=False).strip() == expected


@pytest.mark.parametrize(("verb", "resource", "subresource", "expected"), SUBRESOURCES)
def test_hub_permissions_on_pod_subresources(as_hub, verb, resource, subresource, expected):
    assert as_hub("auth", "can-i", verb, resource, f"--subresource={subresource}", check=False).strip() == expected


@pytest.mark.parametrize(("verb", "resource", "expected"), CLUSTER)
def test_hub_cluster_permissions(as_hub, verb, resource, expected):
    assert as_hub("auth", "can-i", verb, resource, "--all-namespaces", check=False).strip() == expected


def test_hub_cannot_touch_claims_in_another_namespace(admin_kubeconfig, hub_kubeconfig, namespace):
    other = f"{namespace}-other"
    devenv.kubectl(admin_kubeconfig, "create", "namespace", other)
    try:
        devenv.kubectl(admin_kubeconfig, "-n", other, "apply", "-f", "-", stdin="""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: someone-elses}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
""")
        with pytest.raises(RuntimeError, match=r"(?i)forbidden"):
            devenv.kubectl(hub_kubeconfig, "-n", other, "delete", "pvc", "someone-elses")
        assert devenv.kubectl(admin_kubeconfig, "-n", other, "get", "pvc", "someone-elses", "-o", "name").strip()
    finally:
        devenv.kubectl(admin_kubeconfig, "delete", "namespace", other, "--wait=false", check=False)


def test_hub_lists_nodes_and_pod_metrics_with_its_token(as_hub):
    assert "gpu-1" in as_hub("get", "nodes", "-o", "name")
    as_hub("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{as_hub.namespace}/pods")
    as_hub("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")  # cluster capacity: node usage
