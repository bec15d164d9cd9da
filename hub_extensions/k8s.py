"""The one async Kubernetes access layer of the hub extensions.

Everything goes through KubeSpawner's shared ``kubernetes_asyncio`` clients (one per event loop),
so the hub keeps a single connection pool and never blocks its event loop. Call these functions
only from coroutines (handlers, hooks, background tasks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiException, CoreV1Api
from kubespawner.clients import load_config, shared_client

REQUEST_TIMEOUT = 10  # seconds per API call; the hub must never hang on a slow API server

# What a call into this layer may raise when the API server refuses or cannot be reached.
API_ERRORS = (ApiException, aiohttp.ClientError, asyncio.TimeoutError)


def describe(error: BaseException) -> str:
    """One line for users: the API server's status and reason, or why it could not be reached."""
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_client_settings: dict[str, Any] = {"host": "", "ssl_ca_cert": "", "verify_ssl": None}


def use_kubespawner_settings(host: str = "", ssl_ca_cert: str = "", verify_ssl: bool | None = None) -> None:
    """Load the client configuration exactly as KubeSpawner does (its k8s_api_* traits), so the shared
    client is the same whichever of us creates it first."""
    _client_settings.update(host=host, ssl_ca_cert=ssl_ca_cert, verify_ssl=verify_ssl)


def core() -> CoreV1Api:
    load_config(**_client_settings)  # same keyword order as KubeSpawner: one lru_cache entry
    return shared_client("CoreV1Api")


def custom_objects() -> Any:
    """The shared ``CustomObjectsApi`` (``metrics.k8s.io`` lists), on the same connection pool as :func:`core`."""
    load_config(**_client_settings)
    return shared_client("CustomObjectsApi")


async def server_version() -> str:
    """The API server's ``/version`` (readable by every authenticated client): the cheapest reachability check."""
    load_config(**_client_settings)
    info = await shared_client("VersionApi").get_code(_request_timeout=REQUEST_TIMEOUT)
    return str(info.git_version)


def sanitize(obj: Any) -> Any:
    """A kubernetes_asyncio model as the plain JSON dict the API server speaks."""
    return core().api_client.sanitize_for_serialization(obj)


async def list_claims(namespace: str, label_selector: str) -> list[dict]:
    """Claims matching a label selector, as JSON dicts (one list call)."""
    result = await core().list_namespaced_persistent_volume_claim(
        namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT)
    return sanitize(result)["items"]


async def read_claim(namespace: str, name: str) -> dict | None:
    try:
        return sanitize(await core().read_namespaced_persistent_volume_claim(
            name, namespace, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


async def create_claim(namespace: str, manifest: dict) -> bool:
    """Create a claim; False when it already exists (409), which callers treat as success."""
    try:
        await core().create_namespaced_persistent_volume_claim(
            namespace, manifest, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


async def delete_claim(namespace: str, name: str) -> bool:
    """Delete a claim; False when it was already gone (404)."""
    try:
        await core().delete_namespaced_persistent_volume_claim(
            name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def patch_claim_metadata(namespace: str, name: str, labels: dict[str, str | None],
                               annotations: dict[str, str | None] | None = None) -> None:
    """Set labels and annotations (a merge patch: ``None`` removes the key)."""
    body: dict[str, Any] = {"metadata": {"labels": labels}}
    if annotations:
        body["metadata"]["annotations"] = annotations
    await core().patch_namespaced_persistent_volume_claim(
        name, namespace, body, _request_timeout=REQUEST_TIMEOUT)


async def wait_claims_gone(namespace: str, label_selector: str, names: set[str],
                           within: float, interval: float = 0.5) -> set[str]:
    """Wait until none of ``names`` exists any more (the pvc-protection finalizer may hold them).

    Returns the names still present after ``within`` seconds (empty on success).
    """
    deadline = time.monotonic() + within
    remaining = set(names)
    while remaining:
        present = {c["metadata"]["name"] for c in await list_claims(namespace, label_selector)}
        remaining &= present
        if not remaining or time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    return remaining


def reflected_pod(spawner: Any) -> Mapping[str, Any] | None:
    """The spawner's pod as KubeSpawner's pod reflector last saw it (no I/O); ``None`` when there is none or
    the spawner is not a KubeSpawner (tests' spawners, a hub without our spawner)."""
    reflector = getattr(spawner, "pod_reflector", None)
    pods = getattr(reflector, "pods", None)
    if pods is None:
        return None
    return pods.get(f"{spawner.namespace}/{spawner.pod_name}")


async def pod_exists(namespace: str, name: str) -> bool:
    """Whether the pod is still in the API server (a stopped server's pod may still be terminating)."""
    try:
        await core().read_namespaced_pod(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def pod_log_tail(namespace: str, name: str, container: str, lines: int, previous: bool = False,
                       limit_bytes: int = 16384) -> str:
    """The last ``lines`` lines of a container's log (``pods/log`` get), at most ``limit_bytes``."""
    return await core().read_namespaced_pod_log(
        name, namespace, container=container, tail_lines=lines, previous=previous, limit_bytes=limit_bytes,
        _request_timeout=REQUEST_TIMEOUT)
