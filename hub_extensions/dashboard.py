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
(a ``template_vars`` callable). The route is :mod:`hub_extensions.dashboard_api`; reading the pod and its log
is :mod:`hub_extensions.pod_status`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import culler, docker_groups, gpu, group_policies, k8s
from .pod_status import notebook_container, pod_summary
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger("JupyterHub.ds.dashboard")


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


# ================================================================ pure: capabilities and why


def capabilities(settings: Settings, groups: Iterable[str], gpu_answer: bool | None,
                 pod: Mapping[str, Any] | None = None, root_refused: bool = False) -> list[dict[str, Any]]:
    """Docker socket, privileged and GPU: whether the user's next server gets each, and why.

    ``in_pod`` says what the running pod actually has (``None`` without a pod); when it differs from
    ``granted``, a group or setting changed since the start and Restart Server applies it.
    """
    groups = set(groups)
    sock, priv, g = settings.groups.docker_sock, settings.groups.docker_privileged, settings.gpu
    policy = group_policies.for_user(settings, groups, root_refused)
    out = []
    source = policy.sources.get("docker_socket")
    out.append({
        "key": "docker-sock", "label": "Docker socket", "granted": policy.docker_socket,
        "why": (f"You are in the group {source}: the node's Docker socket is mounted at "
                f"{docker_groups.DOCKER_SOCK_MOUNT} (this is root on that node)." if policy.docker_socket else
                f"Only members of the group {sock.group} (or of a group whose policy grants it) get the node's "
                "Docker socket."),
        "in_pod": _has_docker_sock(pod) if pod else None,
    })
    source = policy.sources.get("docker_privileged")
    out.append({
        "key": "privileged", "label": "Privileged container", "granted": policy.docker_privileged,
        "why": (f"You are in the group {source}: your server runs privileged (root on the node)."
                if policy.docker_privileged else
                f"Only members of the group {priv.group} (or of a group whose policy grants it) run privileged "
                "servers."),
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
    return any(v.get("name") == docker_groups.DOCKER_SOCK_VOLUME for v in (pod.get("spec") or {}).get("volumes") or [])


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
             volumes: list[dict[str, Any]] | None, grants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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
        "grants": grants or [],  # from the group policies (group_policies.grants)
        "volumes": volumes,
    }


# ================================================================ the live parts (no I/O here either)


def page_data(rt: Runtime, user: Any) -> dict[str, Any] | None:
    """What the home page renders for ``user`` (a JupyterHub ``User``; ``None`` when nobody is logged in).

    Memory only (settings, spawner, reflectors, the GPU node cache): safe for every page render.
    """
    if user is None:
        return None
    try:
        return _page_data(rt.settings, user)
    except Exception:  # every page renders this: a bug here must not break the hub's pages
        log.exception("jupyterhub-ds: the dashboard data of %s failed", getattr(user, "name", "?"))
        return None


def _page_data(settings: Settings, user: Any) -> dict[str, Any]:
    spawner = user.spawners.get("") if hasattr(user.spawners, "get") else None
    pod = k8s.reflected_pod(spawner) if spawner is not None else None
    return {
        "server": server_info(user, spawner),
        "image": getattr(spawner, "image", None),
        "pod": pod_summary(pod, settings.gpu.resource),
        "capabilities": capabilities(settings, docker_groups.group_names(user), gpu.auto_answer(settings.gpu), pod,
                                     docker_groups.root_refused(user, settings.groups)),
        "last_failure": getattr(spawner, "ds_last_failure", None),
        "grants": group_policies.user_grants(settings, docker_groups.group_names(user), pod,
                                             gpu.auto_answer(settings.gpu)),
    }
