"""Reading a user's pod for people: a summary, the notebook container's state, its events and its log tail.

Pure readers of the pod's API JSON (from KubeSpawner's reflectors), plus the two log reads (one ``pods/log`` call,
cached briefly). Used by the dashboard (:mod:`hub_extensions.dashboard_api`) and by ``DsKubeSpawner``, which keeps
what a failed start left behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes_asyncio.client import ApiException

from . import k8s

LOG_LINES = 30
EVENT_LIMIT = 10
LOG_CACHE_SECONDS = 10.0
# container states after which the log says why
CRASH_REASONS = {"CrashLoopBackOff", "Error", "RunContainerError", "CreateContainerError", "OOMKilled",
                 "StartError", "ContainerCannotRun"}
NOTEBOOK = "notebook"


# ================================================================ pure: reading a pod (API JSON)


def notebook_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == NOTEBOOK), containers[0] if containers else {})


def container_state(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The notebook container's state: ``{"state", "reason", "message", "exit_code", "restarts"}``."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status = next((s for s in statuses if s.get("name") == NOTEBOOK), statuses[0] if statuses else None)
    if status is None:
        return None
    state = status.get("state") or {}
    kind = next((k for k in ("terminated", "waiting", "running") if state.get(k) is not None), "unknown")
    detail = state.get(kind) or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    return {"state": kind, "reason": detail.get("reason"), "message": detail.get("message"),
            "exit_code": detail.get("exitCode", last.get("exitCode")), "restarts": status.get("restartCount", 0),
            "last_reason": last.get("reason")}


def pod_summary(pod: Mapping[str, Any] | None, gpu_resource: str) -> dict[str, Any] | None:
    """What the dashboard shows of the user's pod."""
    if not pod:
        return None
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    container = notebook_container(pod)
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    gpus = limits.get(gpu_resource) or requests.get(gpu_resource)
    phase = status.get("phase") or "Pending"
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "phase": phase,
        "node": spec.get("nodeName"),
        "ip": status.get("podIP"),
        "image": container.get("image"),
        "gpus": int(gpus) if str(gpus or "").isdigit() else 0,
        "gpu_resource": gpu_resource,
        "cpu_limit": limits.get("cpu"), "cpu_request": requests.get("cpu"),
        "memory_limit": limits.get("memory"), "memory_request": requests.get("memory"),
        "container": container_state(pod),
        "created": meta.get("creationTimestamp"),
    }


def needs_log(summary: Mapping[str, Any] | None) -> bool:
    """Whether the pod's log says something the user needs: the container crashed, failed or restarts."""
    if not summary:
        return False
    state = summary.get("container") or {}
    return bool(summary.get("phase") == "Failed" or state.get("state") == "terminated"
                or state.get("reason") in CRASH_REASONS or (state.get("restarts") or 0) > 0)


def event_time(event: Mapping[str, Any]) -> str | None:
    return (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp"))


def events_summary(events: Iterable[Mapping[str, Any]], limit: int = EVENT_LIMIT) -> list[dict[str, Any]]:
    """The pod's last events, oldest first: type, reason, message, time, count."""
    out = [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
            "time": event_time(e), "count": e.get("count") or 1} for e in events]
    return out[-limit:]


def tail_lines(text: str | None, lines: int = LOG_LINES) -> list[str]:
    return (text or "").rstrip("\n").splitlines()[-lines:] if text else []


_log_cache: dict[str, tuple[float, list[str]]] = {}


async def cached_log_tail(namespace: str, pod: Mapping[str, Any], previous: bool) -> list[str]:
    """The pod's log tail, at most one ``pods/log`` call per pod every ``LOG_CACHE_SECONDS``."""
    key = f"{pod['uid']}/{previous}"
    now = time.monotonic()
    hit = _log_cache.get(key)
    if hit and now - hit[0] < LOG_CACHE_SECONDS:
        return hit[1]
    for old in [k for k, (t, _) in _log_cache.items() if now - t > 10 * LOG_CACHE_SECONDS]:
        _log_cache.pop(old, None)
    lines = tail_lines(await k8s.pod_log_tail(namespace, pod["name"], NOTEBOOK, LOG_LINES, previous=previous))
    _log_cache[key] = (now, lines)
    return lines


async def crash_log_tail(namespace: str, pod_name: str) -> list[str]:
    """The log tail of a container that failed to start: the current run's, or the previous run's when the
    kubelet has already restarted the container and the new run has not written anything yet."""
    lines = tail_lines(await k8s.pod_log_tail(namespace, pod_name, NOTEBOOK, LOG_LINES))
    if lines:
        return lines
    try:
        return tail_lines(await k8s.pod_log_tail(namespace, pod_name, NOTEBOOK, LOG_LINES, previous=True))
    except ApiException as e:
        if e.status == 400:  # no previous run: the container has not restarted
            return []
        raise
