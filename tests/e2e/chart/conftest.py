"""The modules in this directory drive the INSTALLED chart's hub: one `helm upgrade --install` of chart/ (real Z2JH
4.4.0) with values.example.yaml and ci/local-values.yaml, shared by every module here, its pods run by
ci/node_agent.py, the hub configured by Z2JH's own jupyterhub_config.py and our hub.extraConfig.

Four things are added to the install, all through the chart's own values or objects: ``E2E_SETTINGS``
(``custom.ds``) and ``E2E_ROLES`` (``hub.loadRoles``); a hub service ``e2e`` with a token the tests choose
(``hub.services`` + ``hub.loadRoles``, as an admin would add an automation account); and the first admin's
password, pre-created in the chart's Secret (the chart keeps an existing one), so that ``hubclient.admin_client``
logs in as on the host hubs.

The fixtures ``namespace`` and ``hub`` are overridden here, so the parent conftest's ``kube``, ``admin`` and
``service`` work unchanged against the release's namespace.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import devenv
import pytest
import yaml

from ..hubclient import PASSWORD

# custom.ds settings of the release, on top of values.example.yaml and ci/local-values.yaml, as a site's own values
# file would set them: a 10-minute idle timeout with up to 3 extension hours (test_ui_culler's countdown), checked
# every 2 s; a volume reset that waits at most 60 s for a claim to go
E2E_SETTINGS = {
    "culler": {"timeoutSeconds": 600, "everySeconds": 2, "maxExtensionHours": 3},
    "storage": {"resetTimeoutSeconds": 60},
}
# roles an admin adds with hub.loadRoles (test_scopes): a `user` role of their own, merged with ours rather than
# replacing it, and a reset scope filtered to one group
SCOPES_GROUP, SCOPES_HELPER = "course", "helper"
E2E_ROLES = {
    "user": {"scopes": ["self", "read:hub"]},
    "volume-helper": {"scopes": [f"custom:ds-volumes:reset!group={SCOPES_GROUP}"], "users": [SCOPES_HELPER]},
}
# what the tests' e2e service may do (the host hubs' e2e service has the same scopes: ci/hub/jupyterhub_config.py)
E2E_SCOPES = ["admin:users", "admin:servers", "admin:groups", "list:users", "read:hub"]


@dataclass
class ChartHub:
    """The installed release's hub as the tests see it (the host hubs' ``devenv.Hub`` has the same three)."""

    namespace: str
    url: str
    service_token: str


def first_admin_secret(namespace: str, password: str) -> dict:
    """The chart's first-admin Secret with a chosen password, carrying the labels and annotations with which
    helm adopts an existing object into the release."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": devenv.FIRST_ADMIN_SECRET, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": devenv.RELEASE,
                                     "meta.helm.sh/release-namespace": namespace}},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


@pytest.fixture(scope="session")
def chart_hub(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartHub]:
    namespace = f"e2e-chart-{uuid.uuid4().hex[:6]}"
    state = tmp_path_factory.mktemp(namespace)
    token = os.urandom(16).hex()
    overlay = state / "e2e-values.yaml"
    overlay.write_text(yaml.safe_dump({"jupyterhub": {
        "hub": {
            "services": {"e2e": {"apiToken": token}},
            "loadRoles": {"e2e": {"description": "the end-to-end tests' admin-side calls", "services": ["e2e"],
                                  "scopes": E2E_SCOPES}, **E2E_ROLES},
        },
        "custom": {"ds": E2E_SETTINGS},
    }}))
    devenv.kubectl(admin_kubeconfig, "create", "namespace", namespace)
    devenv.kubectl(admin_kubeconfig, "-n", namespace, "apply", "-f", "-",
                   stdin=yaml.safe_dump(first_admin_secret(namespace, PASSWORD)))
    # missing typed hostPaths (the docker-sock group's socket on a machine without Docker) get a stand-in
    agent = devenv.start_test_node_agent(admin_kubeconfig, namespace, state)
    try:
        devenv.install_chart(admin_kubeconfig, namespace, values=[overlay], create_namespace=False)
        yield ChartHub(namespace, devenv.wait_installed(admin_kubeconfig, namespace), token)
    finally:
        devenv.remove_test_install(admin_kubeconfig, namespace, agent)


@pytest.fixture(scope="module")
def namespace(chart_hub: ChartHub) -> str:
    return chart_hub.namespace


@pytest.fixture(scope="module")
def hub(chart_hub: ChartHub) -> ChartHub:
    return chart_hub
