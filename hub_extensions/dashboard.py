"""The home page as the user's dashboard: what their server is doing, what it has, and why.

``GET /hub/api/users/<name>/dashboard`` answers one JSON document (``read:servers`` on that user: the user
for themselves, admins for anyone; JSON 403/404 otherwise):

- ``server``: state (running, pending, stopped), the pending action, started, last activity, URL;
- ``pod``: phase, node, IP, image, GPUs assigned, CPU/memory requests and limits, the notebook container's
  state, and the pod's recent events, all from KubeSpawner's reflectors (memory, no API call);
- ``log_tail``: the last lines of the notebook container's log when it crashed or restarts (one
  ``pods/log`` call, cached briefly), and ``last_failure``: what a failed start left behind (message, events,
  log tail, captured by ``DsKubeSpawner`` before the pod was deleted);
- ``usage``: live CPU/memory from the activity monitor (:func:`usage`; ``null`` until it is wired);
- ``session``: the culler's session info; ``capabilities``: Docker socket, privileged, GPU and why;
- ``volumes`` (with ``?volumes=1`` and ``custom:ds-volumes:read`` on the user): the claims, with sizes.

The assembling functions are pure; :func:`page_data` gives the home page the same picture without I/O
(a ``template_vars`` callable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from jupyterhub.scopes import needs_scope
from kubernetes_asyncio.client import ApiException

from . import culler, gpu, k8s, pod_policy, scopes, storage
from .handlers import DsAPIHandler
from .settings import Settings

log = logging.getLogger("JupyterHub.ds.dashboard")

LOG_LINES = 30
EVENT_LIMIT = 10
LOG_CACHE_SECONDS = 10.0
# container states after which the log says why
CRASH_REASONS = {"CrashLoopBackOff", "Error", "RunContainerError", "CreateContainerError", "OOMKilled",
                 "StartError", "ContainerCannotRun"}
NOTEBOOK = "notebook"


# ================================================================ the one hook for the activity monitor


async def usage(spawner: Any) -> dict[str, Any] | None:
    """Latest CPU/memory of a running server (``cpu_percent``, ``memory_mb``, ``memory_percent``; null values
    until metrics-server has scraped the pod), from the activity monitor's shared metrics cache: no API request
    per dashboard. ``None`` when the server is not running or the monitor is off (the page shows "—")."""
    from . import activity

    mon = activity.monitor()
    if mon is None or not mon.settings.enabled or not culler.is_running(spawner):
        return None
    return await mon.usage_of(spawner)


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


# ================================================================ pure: capabilities and why


def capabilities(settings: Settings, groups: Iterable[str], gpu_answer: bool | None,
                 pod: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Docker socket, privileged and GPU: whether the user's next server gets each, and why.

    ``in_pod`` says what the running pod actually has (``None`` without a pod); when it differs from
    ``granted``, a group or setting changed since the start and Restart Server applies it.
    """
    groups = set(groups)
    sock, priv, g = settings.groups.docker_sock, settings.groups.docker_privileged, settings.gpu
    out = []
    member = sock.group in groups
    out.append({
        "key": "docker-sock", "label": "Docker socket", "granted": member,
        "why": (f"You are in the group {sock.group}: the node's Docker socket is mounted at "
                f"{pod_policy.DOCKER_SOCK_MOUNT} (this is root on that node)." if member else
                f"Only members of the group {sock.group} get the node's Docker socket."),
        "in_pod": _has_docker_sock(pod) if pod else None,
    })
    member = priv.group in groups
    out.append({
        "key": "privileged", "label": "Privileged container", "granted": member,
        "why": (f"You are in the group {priv.group}: your server runs privileged (root on the node)." if member
                else f"Only members of the group {priv.group} run privileged servers."),
        "in_pod": _is_privileged(pod) if pod else None,
    })
    decision = gpu.decide(g, groups, gpu_answer)
    if g.mode == 0:
        why = "GPUs are off on this hub (gpu.mode 0)."
    elif g.group is not None and g.group not in groups:
        why = f"Only members of the group {g.group} get GPUs."
    elif g.mode == 1:
        why = f"Every server gets {g.count} {g.resource} (gpu.mode 1)" + (
            f"; you are in the group {g.group}." if g.group else ".")
    elif decision.gpu:
        why = f"A node advertises {g.resource}, so your server requests {g.count} (gpu.mode 2, auto)."
    elif gpu_answer is None:
        why = "Auto mode (gpu.mode 2) has not listed the nodes yet; it decides at your next start."
    else:
        why = f"Auto mode (gpu.mode 2): no node advertises {g.resource} right now."
    gpus = None
    if pod:
        limits = (notebook_container(pod).get("resources") or {}).get("limits") or {}
        gpus = str(limits.get(g.resource) or "0")
    out.append({"key": "gpu", "label": "GPU", "granted": decision.gpu, "why": why,
                "count": g.count if decision.gpu else 0, "in_pod": (gpus not in ("0", "")) if pod else None})
    return out


def _has_docker_sock(pod: Mapping[str, Any]) -> bool:
    return any(v.get("name") == pod_policy.DOCKER_SOCK_VOLUME for v in (pod.get("spec") or {}).get("volumes") or [])


def _is_privileged(pod: Mapping[str, Any]) -> bool:
    return bool((notebook_container(pod).get("securityContext") or {}).get("privileged"))


# ================================================================ pure: the whole picture


def server_info(user: Any, spawner: Any) -> dict[str, Any]:
    pending = spawner.pending if spawner is not None else None
    active = bool(spawner is not None and spawner.active)
    orm = getattr(spawner, "orm_spawner", None)
    return {
        "state": "pending" if pending else ("running" if active and spawner.ready else
                                            ("pending" if active else "stopped")),
        "pending": pending,
        "ready": bool(spawner is not None and spawner.ready),
        "url": user.server_url("") if active else None,
        "started": culler.iso(culler.timestamp(orm.started)) if orm is not None and active else None,
        "last_activity": culler.iso(culler.timestamp(orm.last_activity)) if orm is not None else None,
    }


def assemble(*, user_name: str, server: Mapping[str, Any], pod: Mapping[str, Any] | None,
             events: list[dict[str, Any]], log_tail: list[str] | None, log_error: str | None,
             last_failure: Mapping[str, Any] | None, usage_now: Mapping[str, Any] | None,
             session: Mapping[str, Any], caps: list[dict[str, Any]], image: str | None,
             volumes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The dashboard document (see the module docstring)."""
    return {
        "user": user_name,
        "server": dict(server),
        "image": (pod or {}).get("image") or image,
        "pod": dict(pod) if pod else None,
        "events": events,
        "log_tail": log_tail,
        "log_error": log_error,
        "last_failure": dict(last_failure) if last_failure else None,
        "usage": dict(usage_now) if usage_now else None,
        "session": dict(session),
        "capabilities": caps,
        "volumes": volumes,
    }


# ================================================================ the live parts (no I/O here either)


def page_data(user: Any) -> dict[str, Any] | None:
    """What the home page renders for ``user`` (a JupyterHub ``User``; ``None`` when nobody is logged in).

    Memory only (settings, spawner, reflectors, the GPU node cache): safe for every page render.
    """
    if user is None:
        return None
    try:
        return _page_data(user)
    except Exception:  # every page renders this: a bug here must not break the hub's pages
        log.exception("jupyterhub-ds: the dashboard data of %s failed", getattr(user, "name", "?"))
        return None


def _page_data(user: Any) -> dict[str, Any]:
    from .spawner import DsKubeSpawner

    settings = DsKubeSpawner.ds_settings
    spawner = user.spawners.get("") if hasattr(user.spawners, "get") else None
    pod = k8s.reflected_pod(spawner) if spawner is not None else None
    return {
        "server": server_info(user, spawner),
        "image": getattr(spawner, "image", None),
        "pod": pod_summary(pod, settings.gpu.resource),
        "capabilities": capabilities(settings, pod_policy.group_names(user, settings.groups),
                                     gpu.auto_answer(settings.gpu), pod),
        "last_failure": getattr(spawner, "ds_last_failure", None),
    }


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


class DashboardHandler(DsAPIHandler):
    """``GET /hub/api/users/<name>/dashboard[?volumes=1]``."""

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        settings = self.ds_settings
        raw_pod = k8s.reflected_pod(spawner)
        pod = pod_summary(raw_pod, settings.gpu.resource)
        events = events_summary(getattr(spawner, "events", None) or []) if (raw_pod or spawner.pending) else []
        log_tail, log_error = None, None
        if needs_log(pod):
            state = pod["container"] or {}
            previous = state.get("state") == "waiting" and (state.get("restarts") or 0) > 0
            try:
                log_tail = await cached_log_tail(spawner.namespace, pod, previous)
            except k8s.API_ERRORS as e:
                log_error = f"Could not read the log: {k8s.describe(e)}"
        volumes = None
        if self.get_argument("volumes", "") in ("1", "true") and settings.storage.enabled and self.covers(
                user, scopes.READ, scopes.ADMIN):
            try:
                claims = await asyncio.wait_for(
                    k8s.list_claims(spawner.namespace, storage.owner_selector(spawner.ds_owner)), k8s.REQUEST_TIMEOUT)
                volumes = storage.volume_report(settings.storage, claims)
            except (*k8s.API_ERRORS, TimeoutError) as e:
                volumes = [{"error": f"Kubernetes API unavailable: {k8s.describe(e)}"}]
        doc = assemble(
            user_name=user.name, server=server_info(user, spawner), pod=pod, events=events, log_tail=log_tail,
            log_error=log_error, last_failure=getattr(spawner, "ds_last_failure", None),
            usage_now=await usage(spawner), session=culler.session_info(spawner, settings.culler),
            caps=capabilities(settings, pod_policy.group_names(user, settings.groups), gpu.auto_answer(settings.gpu),
                              raw_pod),
            image=getattr(spawner, "image", None), volumes=volumes)
        self.write_json(doc)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/api/users/([^/]+)/dashboard", DashboardHandler)]
