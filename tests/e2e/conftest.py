"""End-to-end fixtures: the real control plane (kwok's simulated nodes and a real node) and the chart installed on
it with helm (real Z2JH 4.4.0), its pods on the real node, its hub configured by Z2JH's own jupyterhub_config.py.

The cluster starts once per run (``ci/dev/cluster.sh up`` provisions or reuses the binaries). Tests are marked
``cluster``; they skip only when Go is missing, with the reason printed.

Every module drives an installed chart's hub (``release.Release``):
- tests/e2e/chart/: one release shared by the directory (its conftest);
- tests/e2e/releases/: a release per module, upgraded to the other values a module tests (its conftest);
- test_installed.py, test_make_up.py, test_chart_namespace.py: installs of their own (upgrades, ``make up``,
  namespace handling).
The subdirectories provide ``namespace`` and ``hub``; ``kube``, ``admin`` and ``service`` here follow them.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.dev import devenv

from .browser import browser, new_page  # noqa: F401 - fixtures for the browser tests
from .hubclient import HubClient, ServiceClient, admin_client
from .release import Release, wait_removed

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def admin_kubeconfig() -> Iterator[Path]:
    """The cluster's admin kubeconfig. A cluster this run started is stopped at the end (its state and
    binaries stay cached, so the next run starts it in seconds); one that was already running is left be."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed: the local control plane is built from Go modules")
    was_running = devenv.cluster_running()
    yield devenv.cluster_up()
    wait_removed()
    if not was_running:
        devenv.cluster_stop()


class Kube:
    """kubectl as the cluster admin (the tests' view of the API server) or as the hub ServiceAccount."""

    def __init__(self, kubeconfig: Path, namespace: str):
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        return devenv.kubectl(self.kubeconfig, "-n", self.namespace, *args, check=check, stdin=stdin)

    def json(self, *args: str) -> dict:
        return json.loads(self("get", *args, "-o", "json"))

    def items(self, kind: str, selector: str | None = None) -> list[dict]:
        args = [kind] + (["-l", selector] if selector else [])
        return self.json(*args)["items"]

    def user_pods(self, username: str) -> list[dict]:
        return self.items("pods", f"hub.jupyter.org/username={username}")

    def user_pod(self, username: str) -> dict | None:
        """The user's server pod, or None; fails if there is more than one."""
        pods = self.user_pods(username)
        assert len(pods) <= 1, [p["metadata"]["name"] for p in pods]
        return pods[0] if pods else None

    def user_claims(self, username: str) -> dict[str, dict]:
        """The user's claims by volume name (home, workspace, ...)."""
        return {c["metadata"]["labels"]["jupyterhub-ds/volume"]: c
                for c in self.items("pvc", f"hub.jupyter.org/username={username}")}

    def pv_dir(self, claim: dict) -> Path:
        """The directory on this machine that holds a claim's files."""
        return devenv.claim_dir(self.kubeconfig, self.namespace, claim["metadata"]["name"])

    def wait_user_pod_gone(self, username: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.user_pods(username):
            assert time.monotonic() < deadline, f"pod of {username} still there after {timeout}s"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def kube(admin_kubeconfig: Path, namespace: str) -> Kube:
    return Kube(admin_kubeconfig, namespace)


@pytest.fixture(scope="module")
def admin(hub: Release) -> HubClient:
    return admin_client(hub.url)


@pytest.fixture(scope="module")
def service(hub: Release) -> ServiceClient:
    return ServiceClient(hub.url, hub.service_token)


@pytest.fixture
def username(request: pytest.FixtureRequest) -> str:
    """A fresh, valid username per test."""
    return f"u{uuid.uuid4().hex[:8]}"
