"""KubeSpawner with our settings attached, spawn failures explained, and the storage policy applied
when a user is deleted.

A subclass is needed only where KubeSpawner offers no hook: ``delete_forever`` (JupyterHub calls it on
each spawner of a deleted user), and ``start``/``progress`` (to put the API server's and scheduler's
words in front of the user, :mod:`hub_extensions.spawn_feedback`). Everything else is in hooks.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Instance, default

from . import locks, storage
from .settings import Settings
from .spawn_feedback import SpawnFeedbackMixin


class DsKubeSpawner(SpawnFeedbackMixin, KubeSpawner):
    ds_settings = Instance(Settings, help="jupyterhub-ds settings (set by hub_extensions.configure).",
                           config=True)

    @default("ds_settings")
    def _default_ds_settings(self) -> Settings:
        return Settings()

    @property
    def ds_owner(self) -> str:
        """Identity key of the user's claims (see :func:`hub_extensions.storage.owner_key`)."""
        return storage.owner_key(self.user.id, self.user.created)

    async def delete_forever(self) -> None:
        await super().delete_forever()
        if self.name or not self.ds_settings.storage.enabled:
            return  # per-user claims belong to the user, not to a named server
        await storage.release_claims(self.namespace, self.ds_settings.storage, self.ds_owner, self.user.name)
        locks.forget(self.user.id)
