"""The hub's extra RBAC: exactly what Z2JH's hub Role lacks, every rule explained in the template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RBAC_TEMPLATE = Path(__file__).resolve().parents[2] / "chart" / "templates" / "hub" / "rbac.yaml"

# Z2JH 4.4.0 templates/hub/rbac.yaml, the hub's own Role (z2jh-integration reference, section 1.13).
Z2JH_HUB_ROLE = [
    {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
     "verbs": ["get", "watch", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]
EXPECTED_ROLE = [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["patch"]},
                 {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
                 {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                 {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]},
                 {"apiGroups": [""], "resources": ["secrets"], "verbs": ["update"]}]
EXPECTED_CLUSTER_ROLE = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
    {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"], "verbs": ["list"]},
]


def _granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def test_every_rule_has_an_explanatory_comment():
    lines = RBAC_TEMPLATE.read_text().splitlines()
    rule_lines = [i for i, line in enumerate(lines) if re.match(r"\s*- apiGroups:", line)]
    assert len(rule_lines) == len(EXPECTED_ROLE) + len(EXPECTED_CLUSTER_ROLE)
    for i in rule_lines:
        previous = lines[i - 1].strip()
        assert previous.startswith("#") and len(previous) > 10, f"rbac.yaml line {i + 1}: rule without a comment"
        feature = previous.lstrip("# ").split(":")[0]
        assert feature, f"rbac.yaml line {i}: the comment must start with the feature name"


def test_rendered_rules_keep_their_comments(renderer):
    text = renderer.text()
    for comment in ("# storage: mark retained claims orphaned on user deletion and refresh the username label "
                    "after a rename",
                    "# gpu: auto mode lists the nodes (in the background) to find allocatable nvidia.com/gpu",
                    "# activity monitor: one PodMetrics list of this namespace per refresh",
                    "# culler: record Culled, SessionExtended, ServerRestarted as Events on the user's pod",
                    "# home dashboard: the last lines of the user's notebook container log when it crashed",
                    "# cluster capacity: one NodeMetrics list (metrics-server, all nodes) per refresh"):
        assert comment in text


def test_role_and_cluster_role_grant_exactly_the_missing_permissions(renderer):
    docs = renderer.ours()
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert role["rules"] == EXPECTED_ROLE
    assert cluster_role["rules"] == EXPECTED_CLUSTER_ROLE
    # Nothing Z2JH already grants is granted again.
    assert not _granted(role["rules"]) & _granted(Z2JH_HUB_ROLE)


@pytest.mark.parametrize("namespace", ["jupyterhub", "team-a"])
def test_cluster_scoped_names_start_with_the_namespace(renderer, namespace):
    docs = renderer.ours(namespace=namespace)
    cluster = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert len(cluster) == 2
    for doc in cluster:
        assert doc["metadata"]["name"] == f"{namespace}-jupyterhub-ds-hub"
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": f"{namespace}-jupyterhub-ds-hub"}


def test_role_binding_refers_to_the_role(renderer):
    docs = renderer.ours()
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
