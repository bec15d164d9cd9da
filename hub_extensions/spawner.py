"""KubeSpawner with our settings attached, spawn failures explained, and the storage policy applied
when a user is deleted.

A subclass is needed only where KubeSpawner offers no hook: the spawner state (which keeps the owner key
of the user's claims), ``delete_forever`` (JupyterHub calls it on each spawner of a deleted user), and
``start``/``progress`` (to put the API server's and scheduler's words in front of the user,
:mod:`hub_extensions.spawn_feedback`). Everything else is in hooks.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Instance, default

from . import branding, locks, storage
from .branding import Branding
from .settings import Settings
from .spawn_feedback import SpawnFeedbackMixin


class DsKubeSpawner(SpawnFeedbackMixin, KubeSpawner):
    ds_settings = Instance(Settings, help="jupyterhub-ds settings (set by hub_extensions.configure).",
                           config=True)

    ds_branding = Instance(Branding, help="Branding resolved once at start (set by hub_extensions.configure).",
                           config=True)

    @default("ds_settings")
    def _default_ds_settings(self) -> Settings:
        return Settings()

    @default("ds_branding")
    def _default_ds_branding(self) -> Branding:
        return Branding(self.ds_settings.branding, branding.assets(self.ds_settings.branding))

    _ds_owner: str | None = None

    @property
    def ds_owner(self) -> str:
        """Owner key of the user's claims, generated once and kept in the default server's state.

        Named servers share the user's claims, so they ask the default server's spawner.
        """
        if self.name:
            return self.user.spawners[""].ds_owner
        if self._ds_owner is None:
            self._ds_owner = storage.new_owner_key(self.user.id)
            if self.orm_spawner is not None:  # persist now: claims may exist before a first successful start
                self.orm_spawner.state = self.get_state()
                self.db.commit()
        return self._ds_owner

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._ds_owner = state.get("ds_owner", self._ds_owner)

    def get_state(self) -> dict:
        state = super().get_state()
        if self._ds_owner:
            state["ds_owner"] = self._ds_owner
        return state

    def clear_state(self) -> None:
        """Stopping clears the server's state, but the claims' owner key outlives every server."""
        owner = self._ds_owner
        super().clear_state()
        self._ds_owner = owner

    async def delete_forever(self) -> None:
        await super().delete_forever()
        if self.name or not self.ds_settings.storage.enabled or self._ds_owner is None:
            return  # per-user claims belong to the user, not to a named server; no key, no claims
        async with locks.user_lock(self.user.id):
            await storage.release_claims(self.namespace, self.ds_settings.storage, self._ds_owner, self.user.name)
        locks.forget(self.user.id)
