"""The modules in this directory drive the INSTALLED chart's hub: one `helm upgrade --install` of chart/ (real Z2JH
4.4.0) with values.example.yaml, ci/dev/local-values.yaml and ci/dev/node-values.yaml, shared by every module here,
its pods on the real node, the hub configured by Z2JH's own jupyterhub_config.py and our hub.extraConfig.

The install is a ``release.Release`` (its e2e service and first admin's password) with ``E2E_SETTINGS``
(``custom.ds``) and ``E2E_ROLES`` (``hub.loadRoles``) added, as a site's own values file would add them.

The fixtures ``namespace``, ``hub`` and ``hub_kubeconfig`` (the release's hub ServiceAccount) are overridden here,
so the parent conftest's ``kube``, ``admin`` and ``service`` work unchanged against the release's namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.dev import devenv

from ..release import Release

# custom.ds settings of the release, on top of values.example.yaml and ci/dev/local-values.yaml, as a site's own values
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


@pytest.fixture(scope="session")
def chart_hub(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    release = Release.new(admin_kubeconfig, "e2e-chart", tmp_path_factory)
    try:
        yield release.install(E2E_SETTINGS, values={"hub": {"loadRoles": E2E_ROLES}})
    finally:
        release.remove()


@pytest.fixture(scope="module")
def namespace(chart_hub: Release) -> str:
    return chart_hub.namespace


@pytest.fixture(scope="module")
def hub(chart_hub: Release) -> Release:
    return chart_hub


@pytest.fixture(scope="module")
def hub_kubeconfig(chart_hub: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token of the release's hub ServiceAccount (bound to Z2JH's hub Role and ours)."""
    return devenv.service_account_kubeconfig(chart_hub.admin, chart_hub.namespace,
                                             tmp_path_factory.mktemp("sa") / "hub.kubeconfig")
