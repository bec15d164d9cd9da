"""Group policies: what members of each JupyterHub group get in their pod (``custom.ds.groupPolicies``).

:func:`resolve` turns a user's groups into one :class:`Resolved` policy (pure, one rule per kind of value, written
in docs/admin/group-policies.md); :func:`apply` patches the pod KubeSpawner built with it (pure). Both run inside
``DsKubeSpawner.get_pod_manifest`` at every start, so a later ``extraConfig`` hook cannot drop them and Restart
Server (a stop and a start) applies a changed membership. No Kubernetes API call: GPUs are checked against the
node cache the GPU modes already keep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import k8s, labenv, objects
from .branding import LAB_ICON_ENV
from .gpu import GpuDecision
from .settings import GroupPolicy, PolicyDocker
from .settings_schema import VALUES_PATH, SettingsError

if TYPE_CHECKING:
    from .settings import GpuSettings, PolicyMount, Settings

log = logging.getLogger("JupyterHub.ds.group_policies")

SHARED_ACCESS = ("none", "ro", "rw")  # narrowest first: across groups the widest wins
DEFAULT_SHARED_ACCESS = "rw"  # what a server gets when no group of its user says (every server before policies)
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SHARED_POD_VOLUME = "ds-shared"  # storage.pod_volumes' name for the shared claim
# pod volume names of the policies' mounts; storage volumes are "ds-<name>" and their names may not start "policy-"
MOUNT_VOLUME_PREFIX = "ds-policy-mount-"
# what the platform sets (the lab contract, KubeSpawner, Jupyter Docker Stacks' start script): never a group's
RESERVED_ENV = frozenset({"NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "DOCKER_HOST", "GRANT_SUDO", "NB_UID",
                          "NB_GID", "NB_USER", "NB_GROUP", "NB_UMASK", "CHOWN_HOME", "CHOWN_HOME_OPTS",
                          "CHOWN_EXTRA", "CHOWN_EXTRA_OPTS", "MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT",
                          "CPU_GUARANTEE"})
RESERVED_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_", "JUPYTERLAB_", "MEM_", "CPU_", "NB_")


@dataclass(frozen=True)
class Resolved:
    """One user's policy: every value with the group it came from (``sources``: value key -> group)."""

    env: dict[str, str] = field(default_factory=dict)
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpus: int = 0
    gpu_product: str | None = None
    shared_volume: str | None = None  # None: no group says; the server gets DEFAULT_SHARED_ACCESS
    mounts: list[PolicyMount] = field(default_factory=list)
    sudo: bool = False
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    profiles: list[str] | None = None  # the profile slugs allowed; None: no group restricts them
    idle_timeout_seconds: int | None = None  # None: the culler's own setting
    max_extension_hours: int | None = None
    docker_socket: bool = False
    docker_privileged: bool = False
    sources: dict[str, str] = field(default_factory=dict)


def _largest(values: Iterable[tuple[str | None, str]]) -> tuple[str | None, str | None]:
    """The largest quantity and the group it came from (the first group on a tie: the higher priority)."""
    best: tuple[str | None, str | None] = (None, None)
    for value, group in values:
        if value is not None and (best[0] is None or k8s.quantity(value) > k8s.quantity(best[0])):
            best = (value, group)
    return best


def resolve(policies: Iterable[GroupPolicy], groups: Iterable[str]) -> Resolved:
    """The policy of a member of ``groups`` (pure).

    Policies apply in priority order, highest first (a tie: by group name). Grants combine as the widest: the
    largest CPU and memory, the most GPUs, the widest shared-volume access, Docker from any group, every mount,
    toleration, node selector key and allowed profile. Where one value must be chosen (an environment variable,
    sudo, a node selector key, the claim at a mount path, the GPU product, the culler's timeout and extension
    ceiling) the highest-priority group that sets it wins.
    """
    member_of = set(groups)
    ordered = sorted((p for p in policies if p.group in member_of), key=lambda p: (-p.priority, p.group))
    sources: dict[str, str] = {}
    env: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    for p in ordered:
        for name, value in p.env.items():
            if name not in env:
                env[name], sources[f"env.{name}"] = value, p.group
        for key, value in p.node_selector.items():
            if key not in node_selector:
                node_selector[key], sources[f"nodeSelector.{key}"] = value, p.group
    picked: dict[str, Any] = {}
    for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
        value, group = _largest((getattr(p.resources, key), p.group) for p in ordered)
        if value is not None:
            picked[key], sources[key] = value, group
    gpus, product = 0, None
    for p in ordered:
        if p.gpus.count > gpus:
            gpus, sources["gpus"] = p.gpus.count, p.group
        if p.gpus.count > 0 and product is None and p.gpus.product:
            product, sources["gpuProduct"] = p.gpus.product, p.group
    shared = None
    for p in ordered:
        if p.shared_volume is not None and (shared is None or
                                            SHARED_ACCESS.index(p.shared_volume) > SHARED_ACCESS.index(shared)):
            shared, sources["sharedVolume"] = p.shared_volume, p.group
    mounts: dict[str, PolicyMount] = {}
    for p in ordered:
        for m in p.mounts:
            path = m.mount_path.rstrip("/") or "/"
            if path not in mounts:
                mounts[path], sources[f"mount.{path}"] = m, p.group
    sudo = next(((p.sudo, p.group) for p in ordered if p.sudo is not None), (False, None))
    if sudo[1] is not None:
        sources["sudo"] = sudo[1]
    tolerations: list[dict[str, str]] = []
    for p in ordered:
        tolerations.extend(t for t in p.tolerations if t not in tolerations)
    for key, flag in (("docker_socket", "socket"), ("docker_privileged", "privileged")):
        granting = next((p.group for p in ordered if getattr(p.docker, flag)), None)
        if granting is not None:
            picked[key], sources[key] = True, granting
    for key in ("idle_timeout_seconds", "max_extension_hours"):
        chosen = next(((getattr(p.culling, key), p.group) for p in ordered if getattr(p.culling, key) is not None),
                      None)
        if chosen is not None:
            picked[key], sources[key] = chosen
    profiles: list[str] | None = None
    for p in ordered:
        if p.profiles is not None:
            profiles = [*(profiles or []), *(s for s in p.profiles if s not in (profiles or []))]
            sources["profiles"] = ", ".join(filter(None, [sources.get("profiles"), p.group]))
    return Resolved(env=env, gpus=gpus, gpu_product=product, shared_volume=shared, mounts=list(mounts.values()),
                    sudo=bool(sudo[0]), node_selector=node_selector, tolerations=tolerations, profiles=profiles,
                    sources=sources, **picked)


def seeded(settings: Settings) -> list[GroupPolicy]:
    """The policies with the built-in Docker groups' grants: ``groups.dockerSock.group`` grants the socket and
    ``groups.dockerPrivileged.group`` a privileged container, unless their policy says ``false`` (as every install
    before group policies behaved)."""
    policies = list(settings.group_policies)
    for name, flag in ((settings.groups.docker_sock.group, "socket"),
                       (settings.groups.docker_privileged.group, "privileged")):
        at = next((i for i, p in enumerate(policies) if p.group == name), None)
        if at is None:
            policies.append(GroupPolicy(group=name, docker=PolicyDocker(**{flag: True})))
        elif getattr(policies[at].docker, flag) is None:
            policies[at] = replace(policies[at], docker=replace(policies[at].docker, **{flag: True}))
    return policies


def for_user(settings: Settings, groups: Iterable[str], root_refused: bool = False, warn: bool = False) -> Resolved:
    """A user's resolved policy with the built-in groups' seeds; without Docker or sudo when ``root_refused``
    (groups from an identity provider that is not trusted with root: ``groups.allowManagedRoot``), logged when
    ``warn``."""
    resolved = resolve(seeded(settings), groups)
    if root_refused and (resolved.docker_socket or resolved.docker_privileged or resolved.sudo):
        if warn:
            granting = {resolved.sources.get(k) for k in ("docker_socket", "docker_privileged", "sudo")} - {None}
            log.warning("Ignoring the Docker and sudo grants of %s: groups come from the identity provider "
                        "(manage_groups) and custom.ds.groups.allowManagedRoot is false", ", ".join(sorted(granting)))
        resolved = replace(resolved, docker_socket=False, docker_privileged=False, sudo=False)
    return resolved


def allowed_profiles(profile_list: list[dict], resolved: Resolved) -> list[dict]:
    """The profiles (initialized: every one has a slug) a user may see and start, one of them the default (pure).

    Unrestricted without a group that names profiles; otherwise only the named ones, the first of them the default
    when the configured default is not among them."""
    if resolved.profiles is None:
        return profile_list
    allowed = [p for p in profile_list if p.get("slug") in resolved.profiles]
    if allowed and not any(p.get("default") for p in allowed):
        allowed[0] = {**allowed[0], "default": True}
    return allowed


def profile_refusal(profile_list: list[dict], resolved: Resolved, requested: Any) -> str | None:
    """Why a start with the ``requested`` profile (empty: the default, as KubeSpawner reads it) is refused, in
    words; None when allowed."""
    if resolved.profiles is None or not profile_list:
        return None
    allowed = allowed_profiles(profile_list, resolved)
    groups = resolved.sources.get("profiles", "")
    if not allowed:
        return (f"No server profile is available to you: the group policies of {groups} (custom.ds.groupPolicies) "
                "allow none of the configured profiles.")
    if requested and requested not in [p["slug"] for p in allowed]:
        return (f"The profile {requested!r} is not available to you: the group policies of {groups} "
                f"(custom.ds.groupPolicies) allow {', '.join(p['slug'] for p in allowed)}.")
    return None


def platform_env(settings: Settings) -> set[str]:
    """Every variable our spawner sets itself: the lab contract (with its icon URLs) and :data:`RESERVED_ENV`."""
    return {*labenv.lab_environment(settings.lab, GpuDecision(False, False)), *LAB_ICON_ENV.values(), *RESERVED_ENV}


def gpus_allowed(settings: GpuSettings, nodes_have_gpus: bool | None) -> bool:
    """Whether the GPU mode lets a policy's GPUs through: never with mode 0, in auto mode (2) only while the node
    cache knows GPU nodes. ``gpu.group`` does not limit a policy (the policy names its own group)."""
    return settings.mode != 0 and (settings.mode == 1 or bool(nodes_have_gpus))


def user_grants(settings: Settings, groups: Iterable[str], pod: Mapping[str, Any] | None,
                nodes_have_gpus: bool | None) -> list[dict[str, Any]]:
    """:func:`grants` for a user in ``groups``, as the dashboard and the effective-grants API answer it (Docker is
    on the dashboard's capabilities)."""
    return grants(resolve(settings.group_policies, groups), pod, settings.gpu.resource,
                  gpus_allowed(settings.gpu, nodes_have_gpus),
                  settings.storage.shared.mount_path if settings.storage.enabled and settings.storage.shared.enabled
                  else None)


def check(settings: Settings) -> None:
    """What the schema cannot say, checked at start: no policy sets a variable of the platform's and no request
    is above its limit. Raises :class:`SettingsError` naming the key."""
    platform = platform_env(settings)
    for i, p in enumerate(settings.group_policies):
        key = f"{VALUES_PATH}.groupPolicies[{i}]"
        for name in p.env:
            if name in platform or name.startswith(RESERVED_ENV_PREFIXES):
                prefixes = ", ".join(f"{prefix}*" for prefix in RESERVED_ENV_PREFIXES)
                raise SettingsError(f"{key}.env.{name}: expected a name the platform does not set itself "
                                    f"(reserved: {prefixes} and the lab's own variables)")
        r = p.resources
        for kind, request, limit in (("cpu", r.cpu_request, r.cpu_limit), ("memory", r.memory_request, r.memory_limit)):
            if request is not None and limit is not None and k8s.quantity(request) > k8s.quantity(limit):
                raise SettingsError(f"{key}.resources.{kind}Request: expected at most the limit {limit}, got {request}")


def _set_resources(container: Any, requests: Mapping[str, str], limits: Mapping[str, str]) -> None:
    """Set CPU/memory requests and limits on top of KubeSpawner's (the chart's ``singleuser`` values), keeping
    request <= limit as Kubernetes requires: a policy's limit caps the chart's request; otherwise the limit is
    raised to the request (the largest grant wins)."""
    from kubernetes_asyncio.client import V1ResourceRequirements

    current = container.resources
    if current is None or isinstance(current, Mapping):
        current = V1ResourceRequirements(limits=(current or {}).get("limits"), requests=(current or {}).get("requests"))
    new_requests = {**(current.requests or {}), **requests}
    new_limits = {**(current.limits or {}), **limits}
    for name, request in list(new_requests.items()):
        limit = new_limits.get(name)
        if name not in ("cpu", "memory") or limit is None or k8s.quantity(request) <= k8s.quantity(limit):
            continue
        if name in limits and name not in requests:
            new_requests[name] = limit
        else:
            new_limits[name] = request
    current.requests, current.limits = new_requests or None, new_limits or None
    container.resources = current


def _shared_access(pod: Any, access: str) -> None:
    """Make the shared volume read-only, or take it out of the pod."""
    notebook = objects.notebook_container(pod)
    if access == "none":
        pod.spec.volumes = [v for v in pod.spec.volumes or [] if objects.name_of(v) != SHARED_POD_VOLUME]
        notebook.volume_mounts = [m for m in notebook.volume_mounts or [] if objects.name_of(m) != SHARED_POD_VOLUME]
    elif access == "ro":
        for i, mount in enumerate(notebook.volume_mounts or []):
            if objects.name_of(mount) != SHARED_POD_VOLUME:
                continue
            if isinstance(mount, Mapping):
                notebook.volume_mounts[i] = {**mount, "readOnly": True}
            else:  # a V1VolumeMount
                mount.read_only = True


def apply(pod: Any, resolved: Resolved, gpu_granted: bool, privileged: bool) -> list[str]:
    """Patch the pod with a resolved policy (pure); returns what was granted, for the hub's log.

    ``gpu_granted``: the GPU modes allow the policy's GPUs (the caller adds them with the GPU settings).
    ``privileged``: the container is privileged (a Docker group), which Kubernetes refuses to combine with
    ``allowPrivilegeEscalation: false``.
    """
    notebook = objects.notebook_container(pod)
    granted: list[str] = []
    if resolved.env:
        objects.set_env(pod, resolved.env)  # before the lab contract's variables, which replace same names
        granted.append(f"{len(resolved.env)} environment variables")
    requests = {k: v for k, v in (("cpu", resolved.cpu_request), ("memory", resolved.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", resolved.cpu_limit), ("memory", resolved.memory_limit)) if v}
    if requests or limits:
        _set_resources(notebook, requests, limits)
        granted.append("resources " + ", ".join(f"{k} {v}" for k, v in {**requests, **limits}.items()))
    if resolved.shared_volume not in (None, DEFAULT_SHARED_ACCESS):
        _shared_access(pod, resolved.shared_volume)
        granted.append(f"shared volume {resolved.shared_volume}")
    if resolved.mounts:
        volumes = [{"name": f"{MOUNT_VOLUME_PREFIX}{i}", "persistentVolumeClaim": {"claimName": m.claim_name,
                                                                                   "readOnly": m.read_only}}
                   for i, m in enumerate(resolved.mounts)]
        mounts = [{"name": f"{MOUNT_VOLUME_PREFIX}{i}", "mountPath": m.mount_path, "readOnly": m.read_only}
                  for i, m in enumerate(resolved.mounts)]
        objects.add_volumes(pod, volumes, mounts)
        granted.append(f"{len(mounts)} mounts")
    if gpu_granted and resolved.gpu_product:
        objects.merge_node_selector(pod, {GPU_PRODUCT_LABEL: resolved.gpu_product})
    objects.merge_node_selector(pod, resolved.node_selector)
    for toleration in resolved.tolerations:
        objects.add_toleration(pod, toleration)
    if resolved.sudo:
        # Jupyter Docker Stacks' start script grants sudo when started as root, then runs the user's uid
        objects.set_env(pod, {"GRANT_SUDO": "yes"})
        objects.merge_security_context(notebook, {"runAsUser": 0, "runAsNonRoot": False,
                                                  "allowPrivilegeEscalation": True})
        granted.append("sudo")
    else:
        notebook.env = [e for e in notebook.env or [] if objects.name_of(e) != "GRANT_SUDO"]
        if not privileged and not escalation_required(notebook):
            objects.merge_security_context(notebook, {"allowPrivilegeEscalation": False})
    return granted


def escalation_required(container: Any) -> bool:
    """Whether Kubernetes refuses ``allowPrivilegeEscalation: false`` on this container: it is privileged or has
    ``CAP_SYS_ADMIN`` (the chart's ``singleuser.extraContainerConfig`` or KubeSpawner's traits may set either)."""
    context = container.security_context
    added = objects.get_field(objects.get_field(context, "capabilities"), "add") or []
    return bool(objects.get_field(context, "privileged")) or any(c in ("SYS_ADMIN", "CAP_SYS_ADMIN") for c in added)


# ---------------------------------------------------------------- effective grants (what the user is told)

def _container(pod: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    containers = ((pod or {}).get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == "notebook"), None)


def _same_quantity(a: Any, b: Any) -> bool:
    return a is not None and b is not None and k8s.quantity(a) == k8s.quantity(b)


def grants(resolved: Resolved, pod: Mapping[str, Any] | None, gpu_resource: str, gpus_allowed: bool,
           shared_path: str | None) -> list[dict[str, Any]]:
    """Each value the user's group policies give, with the group it came from and, for a running server (``pod``:
    API JSON), whether its pod has it (``in_pod``; None without a pod or for what a pod cannot show) (pure).
    ``shared_path``: where the shared volume is mounted (None: no shared volume on this hub)."""
    nb = _container(pod)
    env = {e.get("name"): e.get("value") for e in (nb or {}).get("env") or []}
    resources = (nb or {}).get("resources") or {}
    mounts = {(m.get("mountPath") or "").rstrip("/") or "/": bool(m.get("readOnly"))
              for m in (nb or {}).get("volumeMounts") or []}
    node_selector = ((pod or {}).get("spec") or {}).get("nodeSelector") or {}
    out: list[dict[str, Any]] = []

    def add(key: str, label: str, value: str, has: bool | None) -> None:
        out.append({"key": key, "label": label, "value": value, "from": resolved.sources.get(key),
                    "in_pod": None if nb is None else has})

    for name, value in resolved.env.items():
        add(f"env.{name}", f"Variable {name}", value, env.get(name) == value)
    for key, label, kind, resource in (("cpu_request", "CPU request", "requests", "cpu"),
                                       ("cpu_limit", "CPU limit", "limits", "cpu"),
                                       ("memory_request", "Memory request", "requests", "memory"),
                                       ("memory_limit", "Memory limit", "limits", "memory")):
        value = getattr(resolved, key)
        if value is not None:
            add(key, label, value, _same_quantity((resources.get(kind) or {}).get(resource), value))
    if resolved.gpus and gpus_allowed:
        add("gpus", "GPUs", str(resolved.gpus),
            _same_quantity((resources.get("limits") or {}).get(gpu_resource), resolved.gpus))
    if resolved.shared_volume is not None and shared_path is not None:
        words = {"none": "none", "ro": "read-only", "rw": "read-write"}
        shared = mounts.get(shared_path.rstrip("/") or "/")  # None: not mounted
        add("sharedVolume", "Shared volume", words[resolved.shared_volume],
            shared is None if resolved.shared_volume == "none" else shared == (resolved.shared_volume == "ro"))
    for m in resolved.mounts:
        path = m.mount_path.rstrip("/") or "/"
        access = "read-only" if m.read_only else "read-write"
        add(f"mount.{path}", f"Mount {m.mount_path}", f"{m.claim_name} ({access})",
            path in mounts and mounts[path] == m.read_only)
    if "sudo" in resolved.sources:
        add("sudo", "Sudo", "yes" if resolved.sudo else "no", (env.get("GRANT_SUDO") == "yes") == resolved.sudo)
    for key, value in resolved.node_selector.items():
        add(f"nodeSelector.{key}", f"Node label {key}", value, node_selector.get(key) == value)
    if resolved.profiles is not None:
        add("profiles", "Profiles", ", ".join(resolved.profiles) or "none", None)
    return out
