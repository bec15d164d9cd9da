"""Kubernetes Events for what the hub did to a user's server, so ``kubectl get events`` tells an admin.

Reasons: ``Culled`` (message names idle or max-age), ``SessionExtended`` and ``ServerRestarted`` (on the new
pod of Restart Server), and ``VolumeReset`` (on each claim a reset deleted). Each is a core/v1 Event on the
user's pod (``involvedObject`` Pod, with its uid when the reflector knows it, so ``kubectl describe pod``
lists it), from the component ``jupyterhub-ds``. Emitting never delays or fails what it reports: it runs
in the background and a refusal is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from . import k8s

log = logging.getLogger("JupyterHub.ds.events")

COMPONENT = "jupyterhub-ds"
CULLED = "Culled"
SESSION_EXTENDED = "SessionExtended"
SERVER_RESTARTED = "ServerRestarted"
VOLUME_RESET = "VolumeReset"

_pending: set[asyncio.Task] = set()


def event_manifest(namespace: str, pod_name: str, pod_uid: str | None, reason: str, message: str,
                   now: datetime | None = None, event_type: str = "Normal", kind: str = "Pod") -> dict[str, Any]:
    """A core/v1 Event about a pod (or, with ``kind``, another namespaced core object such as a claim) (pure)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {"apiVersion": "v1", "kind": kind, "name": pod_name, "namespace": namespace}
    if pod_uid:
        involved["uid"] = pod_uid
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod_name}.{uuid.uuid4().hex[:16]}", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": COMPONENT}},
        "involvedObject": involved,
        "reason": reason, "message": message[:1024], "type": event_type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT, "reportingInstance": os.environ.get("HOSTNAME", "hub"),
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


def pod_of(spawner: Any) -> tuple[str, str, str | None] | None:
    """(namespace, pod name, uid) of a KubeSpawner's pod, or None for a spawner without one."""
    namespace, name = getattr(spawner, "namespace", None), getattr(spawner, "pod_name", None)
    if not namespace or not name:
        return None
    uid = ((k8s.reflected_pod(spawner) or {}).get("metadata") or {}).get("uid")
    return namespace, name, uid


async def _create(manifest: dict[str, Any]) -> None:
    try:
        await k8s.core().create_namespaced_event(manifest["metadata"]["namespace"], manifest,
                                                 _request_timeout=k8s.REQUEST_TIMEOUT)
    except k8s.API_ERRORS as e:
        log.warning("Could not record the %s event on %s %s: %s", manifest["reason"],
                    manifest["involvedObject"]["kind"], manifest["involvedObject"]["name"], k8s.describe(e))


def emit(spawner: Any, reason: str, message: str) -> None:
    """Record an event on the spawner's pod in the background (no pod, no event)."""
    target = pod_of(spawner)
    if target is None:
        return
    _background(event_manifest(*target, reason, message))


def emit_on_claim(namespace: str, claim: str, reason: str, message: str) -> None:
    """Record an event on a claim (e.g. one a reset deleted: ``kubectl get events`` still lists it)."""
    _background(event_manifest(namespace, claim, None, reason, message, kind="PersistentVolumeClaim"))


def _background(manifest: dict[str, Any]) -> None:
    task = asyncio.ensure_future(_create(manifest))
    _pending.add(task)  # keep a reference until it is done
    task.add_done_callback(_pending.discard)
