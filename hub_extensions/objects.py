"""Pure helpers on the pod KubeSpawner builds, in the spirit of KubeSpawner's own ``objects.py``.

KubeSpawner mixes camelCase dicts (from ``extra_*`` traits, profiles, its own security context) and
snake_case ``kubernetes_asyncio`` models in one ``V1Pod``. Every patch of ours goes through these
functions, so reading either form, replacing by name and merging happen one way, in one place. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def snake(camel: str) -> str:
    """``mountPath`` -> ``mount_path`` (the model attribute of a JSON key)."""
    return _CAMEL_BOUNDARY.sub("_", camel).lower()


def get_field(obj: Any, key: str) -> Any:
    """Read ``key`` (camelCase, as in the API's JSON) from a dict or the same field of a model."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, snake(key), None)


def name_of(obj: Any) -> Any:
    return get_field(obj, "name")


def notebook_container(pod: Any) -> Any:
    """The container KubeSpawner names ``notebook`` (where the user's server runs)."""
    return next(c for c in pod.spec.containers if c.name == "notebook")


def replace_by_name(existing: Iterable[Any] | None, new: Iterable[Any]) -> list[Any]:
    """``existing`` without the entries named like one of ``new``, then ``new`` (idempotent)."""
    new = list(new)
    names = {name_of(n) for n in new}
    return [e for e in (existing or []) if name_of(e) not in names] + new


def add_volumes(pod: Any, volumes: list[Any], mounts: list[Any]) -> Any:
    """Add pod volumes and notebook mounts, replacing same-named volumes and mounts at the same paths."""
    pod.spec.volumes = replace_by_name(pod.spec.volumes, volumes)
    notebook = notebook_container(pod)
    names = {name_of(v) for v in volumes} | {name_of(m) for m in mounts}
    paths = {get_field(m, "mountPath") for m in mounts}
    notebook.volume_mounts = [
        m for m in (notebook.volume_mounts or [])
        if name_of(m) not in names and get_field(m, "mountPath") not in paths
    ] + list(mounts)
    return pod


def set_env(pod: Any, env: Mapping[str, str]) -> Any:
    """Set variables on the notebook container, replacing same-named entries (``valueFrom`` ones too)."""
    notebook = notebook_container(pod)
    notebook.env = replace_by_name(notebook.env, [{"name": k, "value": v} for k, v in env.items()])
    return pod


def add_env_from(pod: Any, source: Mapping[str, Any]) -> Any:
    """Add an ``envFrom`` source to the notebook container, once."""
    notebook = notebook_container(pod)
    existing = list(notebook.env_from or [])
    if source not in existing:
        existing.append(dict(source))
    notebook.env_from = existing
    return pod


def merge_node_selector(pod: Any, selector: Mapping[str, str]) -> Any:
    """Add labels to the pod's node selector (ours win on a conflicting key)."""
    if selector:
        pod.spec.node_selector = {**(pod.spec.node_selector or {}), **selector}
    return pod


def add_toleration(pod: Any, toleration: Mapping[str, Any]) -> Any:
    """Add a toleration unless the same one is there (key, operator, value, effect, seconds; others are kept)."""
    def key(t: Any) -> tuple:
        return tuple(get_field(t, f) for f in ("key", "operator", "value", "effect", "tolerationSeconds"))

    existing = list(pod.spec.tolerations or [])
    if not any(key(t) == key(toleration) for t in existing):
        existing.append(dict(toleration))
    pod.spec.tolerations = existing
    return pod


def merge_security_context(container: Any, fields: Mapping[str, Any]) -> Any:
    """Set security context fields (camelCase) on a container, keeping the others, dict or model."""
    context = container.security_context
    if context is None or isinstance(context, Mapping):
        container.security_context = {**(context or {}), **fields}
    else:  # a V1SecurityContext (e.g. from extra_container_config)
        for k, v in fields.items():
            setattr(context, snake(k), v)
    return container


def add_supplemental_groups(pod: Any, gids: Iterable[int]) -> Any:
    """Add GIDs to the pod's ``securityContext.supplementalGroups`` (KubeSpawner's dict, or a model)."""
    gids = [int(g) for g in gids]
    if not gids:
        return pod
    context = pod.spec.security_context
    current = list(get_field(context, "supplementalGroups") or [])
    merged = current + [g for g in gids if g not in current]
    if context is None or isinstance(context, Mapping):
        pod.spec.security_context = {**(context or {}), "supplementalGroups": merged}
    else:  # a V1PodSecurityContext
        context.supplemental_groups = merged
    return pod


def set_resource_limit(container: Any, resource: str, quantity: str) -> Any:
    """Set a limit; an existing request for the same resource is made equal (extended resources need it)."""
    from kubernetes_asyncio.client import V1ResourceRequirements

    if container.resources is None:
        container.resources = V1ResourceRequirements()
    resources = container.resources
    if isinstance(resources, Mapping):
        container.resources = resources = V1ResourceRequirements(
            limits=resources.get("limits"), requests=resources.get("requests"))
    resources.limits = {**(resources.limits or {}), resource: quantity}
    if resource in (resources.requests or {}):
        resources.requests = {**resources.requests, resource: quantity}
    return container
