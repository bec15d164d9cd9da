"""The spawn-time hooks: what runs before KubeSpawner starts, and the pod patches it applies.

``pre_spawn`` does the side effects (claims exist, under the user's lock so a reset cannot race
it; deleted built-in groups are back; the GPU node cache has an answer). ``modify_pod`` applies the
pure pod patches after profile overrides, so a profile cannot undo them: storage, group membership
(read now, so a removed member gets a clean pod), GPUs, and the lab environment contract.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from . import branding, gpu, k8s, labenv, locks, pod_policy, storage


async def pre_spawn(spawner: Any) -> None:
    settings = spawner.ds_settings
    pod_policy.ensure_groups(spawner.user.db, pod_policy.builtin_groups(settings.groups))
    if settings.gpu.mode == 2:
        await gpu.node_cache(settings.gpu).warm()  # waits only before the first node list
    if settings.storage.enabled:
        async with locks.user_lock(spawner.user.id):
            try:
                await storage.ensure_claims(spawner.namespace, settings.storage, spawner.ds_owner,
                                            spawner.user.name, spawner.common_labels)
            except storage.StorageError as e:
                raise web.HTTPError(e.status, e.message) from e
            except k8s.API_ERRORS as e:
                raise web.HTTPError(503, f"Could not prepare your volumes: {k8s.describe(e)}") from e


def modify_pod(spawner: Any, pod: Any) -> Any:
    settings = spawner.ds_settings
    if settings.storage.enabled:
        volumes, mounts = storage.pod_volumes(settings.storage, spawner.ds_owner)
        storage.add_to_pod(pod, volumes, mounts)
    groups = pod_policy.group_names(spawner.user)
    applied = pod_policy.apply_groups(pod, settings.groups, groups)
    answer = gpu.node_cache(settings.gpu).answer() if settings.gpu.mode == 2 else None
    decision = gpu.decide(settings.gpu, groups, answer)
    if decision.gpu:
        gpu.add_gpus(pod, settings.gpu)
    if applied or decision.gpu:
        spawner.log.info("jupyterhub-ds: server of %s gets %s", spawner.user.name, ", ".join(
            [*applied, *([f"{settings.gpu.count} {settings.gpu.resource}"] if decision.gpu else [])]))
    icons = spawner.ds_branding.lab_icon_env(branding.hub_prefix(settings.hub_url, spawner.hub))
    labenv.set_env(pod, labenv.lab_environment(settings.lab, decision, icons))
    return pod
