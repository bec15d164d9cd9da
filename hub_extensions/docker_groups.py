"""Docker in users' pods: the socket and privileged patches, and the built-in groups ``docker-sock`` and
``docker-privileged`` (whose grants are seeded group policies: :func:`hub_extensions.group_policies.seeded`).

Membership is read when a server starts and applied to the pod KubeSpawner builds
(``DsKubeSpawner.get_pod_manifest``, after profile overrides, so a profile cannot undo it). The
patches are pure functions on a fresh ``V1Pod``: KubeSpawner builds the manifest from its traits on
every start and we never touch the traits, so a member removed from a group gets a clean pod on the
next start even though the spawner object lives as long as the hub.

Both groups are root on the node: the Docker socket lets a user start any container with any host
mount, and a privileged container can load kernel modules and reach every device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import objects
from .settings import DockerSockSettings, GroupsSettings

# the module's name before it was docker_groups: the log lines stay as they were. A child of the hub's own logger
log = logging.getLogger("JupyterHub.ds.docker_groups")

DOCKER_SOCK_MOUNT = "/var/run/docker.sock"
DOCKER_SOCK_VOLUME = "ds-docker-sock"


# ---------------------------------------------------------------- pure helpers

def builtin_groups(settings: GroupsSettings) -> list[str]:
    """Names of the built-in groups, in a stable order."""
    return list(dict.fromkeys([settings.docker_sock.group, settings.docker_privileged.group]))


def root_groups_honoured(settings: GroupsSettings, managed: bool) -> bool:
    """Whether membership of the two built-in groups may give root on a node.

    With ``Authenticator.manage_groups`` an identity provider sets every membership, so whoever controls a
    group of that name there (often any project owner) would hand out root; only ``allow_managed_root`` says
    the site trusts its provider with that.
    """
    return not managed or settings.allow_managed_root


def group_names(user: Any) -> set[str]:
    """The user's group names now (ORM groups, read at spawn time rather than remembered)."""
    return {g.name for g in getattr(user, "groups", None) or []}


def root_refused(user: Any, settings: GroupsSettings) -> bool:
    """Whether this user's groups may not give root on a node (Docker): they come from an identity provider the
    site does not trust with root."""
    managed = bool(getattr(getattr(user, "authenticator", None), "manage_groups", False))
    return not root_groups_honoured(settings, managed)


# ---------------------------------------------------------------- the patches

def add_docker_sock(pod: Any, settings: DockerSockSettings) -> Any:
    """Mount the node's Docker socket (hostPath, type Socket) at /var/run/docker.sock, usable by its group.

    The socket is ``root:docker 0660`` on the node and the notebook runs as an ordinary user, so the
    pod gets the socket's GID (``gid``) as a supplemental group.
    """
    volume = {"name": DOCKER_SOCK_VOLUME, "hostPath": {"path": settings.host_path, "type": "Socket"}}
    mount = {"name": DOCKER_SOCK_VOLUME, "mountPath": DOCKER_SOCK_MOUNT}
    objects.add_volumes(pod, [volume], [mount])
    objects.add_supplemental_groups(pod, [] if settings.gid is None else [settings.gid])
    return objects.merge_node_selector(pod, settings.node_selector)


def add_privileged(pod: Any) -> Any:
    """Run the notebook container privileged, with privilege escalation allowed."""
    objects.merge_security_context(objects.notebook_container(pod),
                                   {"privileged": True, "allowPrivilegeEscalation": True})
    return pod


def apply_docker(pod: Any, settings: GroupsSettings, socket: bool, privileged: bool) -> list[str]:
    """Apply the Docker grants a user's group policies resolved to; returns what was applied."""
    applied = []
    if socket:
        add_docker_sock(pod, settings.docker_sock)
        applied.append("the Docker socket")
    if privileged:
        add_privileged(pod)
        applied.append("a privileged container")
    return applied


# ---------------------------------------------------------------- the groups themselves

def load_groups(c: Any, names: Iterable[str]) -> None:
    """Create the groups at hub start (``load_groups`` without ``users`` keeps their membership).

    Skipped when the authenticator manages groups: JupyterHub refuses ``load_groups`` then, and
    :func:`ensure_groups` still creates them before each spawn.
    """
    if any(isinstance(section, Mapping) and section.get("manage_groups") for section in c.values()):
        return
    configured = c.JupyterHub.get("load_groups") or {}
    if hasattr(configured, "get_value"):  # a LazyConfigValue, from c.JupyterHub.load_groups.update(...)
        configured = configured.get_value({})
    configured = dict(configured)
    for name in names:
        configured.setdefault(name, {})
    c.JupyterHub.load_groups = configured


def ensure_groups(db: Any, names: Iterable[str]) -> list[str]:
    """Re-create built-in groups someone deleted (one indexed query each); returns those created."""
    from jupyterhub import orm

    created = [name for name in names if orm.Group.find(db, name) is None]
    for name in created:
        log.warning("Built-in group %r was missing: re-creating it (empty)", name)
        db.add(orm.Group(name=name))
    if created:
        db.commit()
    return created
