"""The spawn-time hooks: what runs before KubeSpawner starts, and the pod patches it applies.

``pre_spawn`` does the side effects (claims exist, under the user's lock so a reset cannot race
it). ``modify_pod`` applies the pure pod patches after profile overrides, so a profile cannot undo
them.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from . import locks, storage


async def pre_spawn(spawner: Any) -> None:
    settings = spawner.ds_settings
    if settings.storage.enabled:
        async with locks.user_lock(spawner.user.id):
            try:
                await storage.ensure_claims(spawner.namespace, settings.storage, spawner.ds_owner,
                                            spawner.user.name, spawner.common_labels)
            except storage.StorageError as e:
                raise web.HTTPError(e.status, e.message) from e


def modify_pod(spawner: Any, pod: Any) -> Any:
    settings = spawner.ds_settings
    if settings.storage.enabled:
        volumes, mounts = storage.pod_volumes(settings.storage, spawner.ds_owner)
        storage.add_to_pod(pod, volumes, mounts)
    return pod
