"""End-to-end fixtures: the real control plane (kwok), a namespace per test module with the hub
ServiceAccount's RBAC, the node agent (ci/node_agent.py, the ``node_agent`` fixture), and real hubs with our
extensions.

The cluster starts once per run (``ci/cluster.sh up`` provisions or reuses the binaries). Tests are
marked ``cluster``; they skip only when Go is missing, with the reason printed.

Two kinds of hub. The modules in tests/e2e/chart/ drive the INSTALLED chart (one `helm upgrade --install` shared by
that directory, see its conftest), as do test_installed.py and test_make_up.py (their own installs: upgrades,
`make up`). The modules here drive a hub on the host (``start_hub``, configured by ci/hub/jupyterhub_config.py the
way Z2JH's jupyterhub_config.py configures the chart's hub) where a test needs a knob one shared release cannot
offer: settings that contradict the release's (storage off, a 20 s idle timeout, GPU auto mode, a docker-sock node
selector, onUserDelete: delete, PostgreSQL), config snippets after ``configure(c)`` (a crashing server command,
stub servers), a hub restarted in place with its database, a hub log to read, or exact user counts.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ci"))

import devenv  # noqa: E402

from .browser import browser, new_page  # noqa: E402, F401 - fixtures for the browser tests
from .hubclient import PASSWORD, HubClient, ServiceClient, admin_client  # noqa: E402
from .release import wait_removed  # noqa: E402


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

    def wait_user_pod_gone(self, username: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.user_pods(username):
            assert time.monotonic() < deadline, f"pod of {username} still there after {timeout}s"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def namespace(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    state = tmp_path_factory.mktemp(name)
    devenv.prepare_namespace(admin_kubeconfig, name, state)
    yield name
    devenv.kubectl(admin_kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def kube(admin_kubeconfig: Path, namespace: str) -> Kube:
    return Kube(admin_kubeconfig, namespace)


@pytest.fixture(scope="module")
def hub_kubeconfig(admin_kubeconfig: Path, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh token for the hub ServiceAccount (the same thing the hub process uses)."""
    return devenv.prepare_namespace(admin_kubeconfig, namespace, tmp_path_factory.mktemp("sa"))


@pytest.fixture(scope="module")
def node_agent(admin_kubeconfig: Path, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    proc = devenv.start_test_node_agent(admin_kubeconfig, namespace, tmp_path_factory.mktemp("node-agent"))
    yield
    devenv.stop_process(proc)


@pytest.fixture(scope="module")
def start_hub(namespace: str, hub_kubeconfig: Path, node_agent: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., devenv.Hub]]:
    """Start a hub with the given ``custom.ds`` settings, extra ``hub.config`` sections and a later extraConfig
    snippet (one per call; all stopped at module end). Its first admin's password is ``hubclient.PASSWORD``
    (see ``admin_client``)."""
    hubs: list[devenv.Hub] = []

    def start(settings: dict | None = None, hub_config: dict | None = None, extra_config: str = "") -> devenv.Hub:
        hub = devenv.Hub(namespace, hub_kubeconfig, tmp_path_factory.mktemp("hub"), settings=settings or {},
                         hub_config=hub_config or {}, extra_config=extra_config, first_admin_password=PASSWORD)
        hubs.append(hub)
        return hub.start()

    yield start
    for hub in hubs:
        hub.stop()


@pytest.fixture(scope="module")
def hub(start_hub: Callable[..., devenv.Hub]) -> devenv.Hub:
    """A hub with default settings except GPUs off: gpu-1's two GPUs would cap concurrent test servers.

    Modules that test GPUs or the defaults start their own hub with ``start_hub``.
    """
    return start_hub({"gpu": {"mode": 0}})


@pytest.fixture(scope="module")
def admin(hub: devenv.Hub) -> HubClient:
    return admin_client(hub.url)


@pytest.fixture(scope="module")
def service(hub: devenv.Hub) -> ServiceClient:
    return ServiceClient(hub.url, hub.service_token)


@pytest.fixture
def username(request: pytest.FixtureRequest) -> str:
    """A fresh, valid username per test."""
    return f"u{uuid.uuid4().hex[:8]}"
