"""Fixtures for tests against a real install made by `make up` on kind (GitHub Actions, .github/workflows/kind.yaml).

Run with `make test-kind` (JHDS_TARGET=kind). Everywhere else these tests are skipped: there is no Docker
engine to run kind, and the same behaviour is covered on the local control plane by tests/e2e.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest

from tests.e2e.hubclient import HubClient, admin_client

NAMESPACE = os.environ.get("JHDS_NAMESPACE", "jupyterhub-ds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs the kind install of `make up` (JHDS_TARGET=kind, GitHub Actions)")
    for item in items:
        if "/kind/" in str(item.fspath):
            item.add_marker(pytest.mark.kind)
            if os.environ.get("JHDS_TARGET") != "kind":
                item.add_marker(skip)


def kubectl(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", "-n", NAMESPACE, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def items(kind: str, selector: str) -> list[dict]:
    return json.loads(kubectl("get", kind, "-l", selector, "-o", "json"))["items"]


@pytest.fixture(scope="session")
def hub_url() -> str:
    return os.environ.get("HUB_URL", "http://localhost:8080")


@pytest.fixture(scope="session")
def admin(hub_url: str) -> HubClient:
    """The first admin, with the password the chart generated into its Secret."""
    encoded = kubectl("get", "secret", "jupyterhub-ds-first-admin", "-o", "jsonpath={.data.password}")
    return admin_client(hub_url, base64.b64decode(encoded).decode())


@pytest.fixture
def username() -> str:
    return f"k{uuid.uuid4().hex[:8]}"
