"""Shared helpers for unit tests that build real pod manifests with KubeSpawner (no cluster).

KubeSpawner loads a kubeconfig in ``__init__`` even when mocked, so ``fake_kubeconfig`` points it at
an address nothing listens on: a unit test that tried to reach an API server would fail, not wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

FAKE_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "fake",
    "clusters": [{"name": "fake", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "fake", "user": {"token": "not-a-token"}}],
    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "unit"}}],
}


@pytest.fixture(scope="session")
def fake_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump(FAKE_KUBECONFIG))
    from kubernetes_asyncio.config import kube_config

    mp = pytest.MonkeyPatch()
    # read from $KUBECONFIG when kubernetes_asyncio is imported, which happened already
    mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    mp.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield path
    mp.undo()


def fake_user(name: str = "alice", groups: Iterable[str] = (), user_id: int = 7) -> SimpleNamespace:
    """What the hooks read from ``spawner.user``: name, id, creation time and ORM-like groups."""
    return SimpleNamespace(name=name, id=user_id, url=f"/user/{name}/", escaped_name=name,
                           created=datetime(2024, 1, 1), groups=[SimpleNamespace(name=g) for g in groups], db=None)


def fake_hub(url: str = "http://hub:8081/hub/", base_url: str = "/hub/") -> SimpleNamespace:
    return SimpleNamespace(public_host="", url=url, base_url=base_url, api_url=url + "api")


def make_spawner(c: Config, user: Any, hub: Any | None = None) -> Any:
    """A DsKubeSpawner built from a configured ``c`` (hooks, profile_list and all)."""
    from hub_extensions.spawner import DsKubeSpawner

    return DsKubeSpawner(_mock=True, config=c, user=user, hub=hub or fake_hub())


async def spawn_manifest(spawner: Any, user_options: dict | None = None) -> Any:
    """What KubeSpawner._start does up to creating the pod: overrides, manifest, modify_pod_hook if set."""
    spawner.user_options = user_options or {}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    if spawner.modify_pod_hook:
        pod = await maybe_future(spawner.modify_pod_hook(spawner, pod))
    return pod


def as_json(pod: Any) -> dict:
    """The pod as the API server would receive it (camelCase JSON).

    ``sanitize_for_serialization`` needs no connection; a bare instance avoids opening an HTTP session.
    """
    return ApiClient.__new__(ApiClient).sanitize_for_serialization(pod)


def notebook(pod_json: dict) -> dict:
    return next(c for c in pod_json["spec"]["containers"] if c["name"] == "notebook")
