"""Per-user PersistentVolumeClaims: naming, manifests, pod wiring, ensure, reset and deletion policy.

Claims are named by the user's *account*, not the username: an owner key ``u<id>-<8 random hex>``
generated once and kept in the default server's spawner state (:class:`~hub_extensions.spawner.DsKubeSpawner`).
So a rename keeps the data reachable, and a new account that reuses a deleted user's name (or, on
SQLite, even their id) never mounts the old claims. Nothing derived from timestamps: databases round
them differently. Labels and annotations carry the username for admins
(``kubectl get pvc -l hub.jupyter.org/username=alice``).

KubeSpawner's own claim handling (``storage_pvc_ensure``, 7.1's remembered ``_pvc_exists``) is never
used alongside ours (``configure`` refuses it), so a reset cannot leave a start waiting on a claim
KubeSpawner believes exists.

The builders here are pure (no I/O); ``ensure_claims``/``reset_claims``/``release_claims`` do the
API calls through :mod:`hub_extensions.k8s`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubespawner.slugs import safe_slug

from . import k8s
from .settings import SHARED_CLAIM_NAME, StorageSettings, VolumeSettings

log = logging.getLogger("JupyterHub.ds.storage")  # a child of the hub app logger

MANAGED_BY = "jupyterhub-ds"
LABEL_OWNER = "jupyterhub-ds/owner"
LABEL_VOLUME = "jupyterhub-ds/volume"
LABEL_ORPHANED = "jupyterhub-ds/orphaned"
LABEL_USERNAME = "hub.jupyter.org/username"
ANNOTATION_USERNAME = "hub.jupyter.org/username"
ANNOTATION_ORPHANED_AT = "jupyterhub-ds/orphaned-at"
SHARED_VOLUME_NAME = "shared"


class StorageError(Exception):
    """A storage operation was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- pure builders

def new_owner_key(user_id: int) -> str:
    """A fresh owner key for an account; the caller persists it (spawner state)."""
    return f"u{user_id}-{secrets.token_hex(4)}"


def claim_name(owner: str, volume: str) -> str:
    """``claim-u12-3fa9c2d1-home``: DNS-1123, unique per account and volume."""
    return f"claim-{owner}-{volume}"


def owner_selector(owner: str) -> str:
    return f"{LABEL_OWNER}={owner}"


def claim_manifest(volume: VolumeSettings, owner: str, username: str,
                   extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The PVC for one of a user's volumes."""
    labels = {
        **(extra_labels or {}),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": "user-storage",
        LABEL_OWNER: owner,
        LABEL_VOLUME: volume.name,
        LABEL_USERNAME: safe_slug(username),
    }
    spec: dict[str, Any] = {
        "accessModes": list(volume.access_modes),
        "resources": {"requests": {"storage": volume.size}},
    }
    if volume.storage_class is not None:
        spec["storageClassName"] = volume.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(owner, volume.name),
            "labels": labels,
            "annotations": {ANNOTATION_USERNAME: username},
        },
        "spec": spec,
    }


def shared_claim(settings: StorageSettings) -> str:
    return settings.shared.existing_claim or SHARED_CLAIM_NAME


def pod_volumes(settings: StorageSettings, owner: str) -> tuple[list[dict], list[dict]]:
    """Pod ``volumes`` and notebook ``volumeMounts`` for the user's claims and the shared claim."""
    volumes, mounts = [], []
    for v in settings.volumes:
        pod_volume = f"ds-{v.name}"
        volumes.append({"name": pod_volume, "persistentVolumeClaim": {"claimName": claim_name(owner, v.name)}})
        mounts.append({"name": pod_volume, "mountPath": v.mount_path})
    if settings.shared.enabled:
        volumes.append({"name": f"ds-{SHARED_VOLUME_NAME}",
                        "persistentVolumeClaim": {"claimName": shared_claim(settings)}})
        mounts.append({"name": f"ds-{SHARED_VOLUME_NAME}", "mountPath": settings.shared.mount_path})
    return volumes, mounts


def volume_report(settings: StorageSettings, claims: list[dict]) -> list[dict]:
    """What Manage Volumes shows: every configured volume, whether its claim exists, size and phase."""
    by_volume = {c["metadata"]["labels"].get(LABEL_VOLUME): c for c in claims}
    report = []
    for v in settings.volumes:
        claim = by_volume.get(v.name)
        status = "Missing"
        size = v.size
        if claim:
            status = "Terminating" if claim["metadata"].get("deletionTimestamp") else \
                claim.get("status", {}).get("phase", "Pending")
            size = claim.get("status", {}).get("capacity", {}).get("storage") or \
                claim["spec"]["resources"]["requests"]["storage"]
        report.append({
            "volume": v.name,
            "claim": claim["metadata"]["name"] if claim else None,
            "mount_path": v.mount_path,
            "description": v.description,
            "size": size,
            "status": status,
            "exists": claim is not None,
            "resettable": v.resettable,
        })
    return report


def check_reset_request(settings: StorageSettings, body: Any) -> list[str]:
    """Validate a ``{"volumes": [...]}`` body; returns the suffixes or raises a 400."""
    if not isinstance(body, dict) or "volumes" not in body:
        raise StorageError(400, 'Expected a JSON object like {"volumes": ["home"]}')
    requested = body["volumes"]
    if not isinstance(requested, list) or not requested or not all(isinstance(v, str) for v in requested):
        raise StorageError(400, "No volumes specified: 'volumes' must be a non-empty list of names")
    resettable = {v.name for v in settings.volumes if v.resettable}
    invalid = sorted(set(requested) - resettable)
    if invalid:
        raise StorageError(400, f"Invalid volume types: {', '.join(invalid)} "
                                f"(resettable: {', '.join(sorted(resettable)) or 'none'})")
    return list(dict.fromkeys(requested))


# ---------------------------------------------------------------- operations

@dataclass
class ResetResult:
    reset: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def status(self) -> int:
        if not self.failed:
            return 200
        if self.reset:
            return 207
        if all(f["reason"] == "not found" for f in self.failed):
            return 404
        return 500

    def as_json(self) -> dict[str, Any]:
        n = len(self.reset)
        message = f"Successfully reset {n} volume(s)"
        if self.failed:
            message += f"; {len(self.failed)} failed: " + ", ".join(
                f"{f['volume']} ({f['reason']})" for f in self.failed)
        return {"status": self.status, "message": message,
                "reset_volumes": self.reset, "failed_volumes": self.failed}


async def ensure_claims(namespace: str, settings: StorageSettings, owner: str, username: str,
                        extra_labels: dict[str, str] | None = None) -> list[str]:
    """Create the user's missing claims: one list call plus one create per missing claim.

    Returns the names created. A claim still Terminating (deleted out of band) is refused with a
    clear error rather than mounted.
    """
    existing = {c["metadata"]["name"]: c for c in await k8s.list_claims(namespace, owner_selector(owner))}
    created = []
    for volume in settings.volumes:
        manifest = claim_manifest(volume, owner, username, extra_labels)
        name = manifest["metadata"]["name"]
        claim = existing.get(name)
        if claim is None:
            if await k8s.create_claim(namespace, manifest):
                created.append(name)
                continue
            claim = await k8s.read_claim(namespace, name)  # appeared since the list: maybe terminating
            if claim is None:
                raise StorageError(409, f"Volume {volume.name} changed while your server was starting; try again")
        if claim["metadata"].get("deletionTimestamp"):
            raise StorageError(409, f"Volume {volume.name} is still being deleted; try again shortly")
        labels = claim["metadata"].get("labels", {})
        if labels.get(LABEL_USERNAME) != manifest["metadata"]["labels"][LABEL_USERNAME]:
            # the user was renamed: keep the admin-facing labels truthful
            await k8s.patch_claim_metadata(
                namespace, name, {LABEL_USERNAME: manifest["metadata"]["labels"][LABEL_USERNAME]},
                {ANNOTATION_USERNAME: username})
    if created:
        log.info("Created claims for %s: %s", username, ", ".join(created))
    return created


async def reset_claims(namespace: str, settings: StorageSettings, owner: str, volumes: list[str],
                       within: float) -> ResetResult:
    """Delete the selected claims and wait (bounded) until they are gone.

    The caller holds the user's lock and has checked that no server or pod uses them.
    """
    result = ResetResult()
    selector = owner_selector(owner)
    existing = {c["metadata"]["labels"].get(LABEL_VOLUME): c["metadata"]["name"]
                for c in await k8s.list_claims(namespace, selector)}
    deleting: dict[str, str] = {}
    for volume in volumes:
        name = existing.get(volume)
        if name is None:
            result.failed.append({"volume": volume, "reason": "not found"})
            continue
        try:
            await k8s.delete_claim(namespace, name)
        except k8s.API_ERRORS as e:
            result.failed.append({"volume": volume, "reason": f"API error {k8s.describe(e)}"})
            continue
        deleting[name] = volume
    stuck = await k8s.wait_claims_gone(namespace, selector, set(deleting), within)
    for name, volume in deleting.items():
        if name in stuck:
            result.failed.append({"volume": volume, "reason": f"still terminating after {within:g}s"})
        else:
            result.reset.append(volume)
    return result


async def release_claims(namespace: str, settings: StorageSettings, owner: str, username: str) -> None:
    """Apply ``onUserDelete`` to a deleted user's claims: delete them, or label them orphaned.

    Each claim is handled on its own (one failing does not leave the others untouched); JupyterHub
    swallows errors from ``delete_forever``, so failures are logged as errors here.
    """
    claims = await k8s.list_claims(namespace, owner_selector(owner))
    done, failed = 0, []
    for claim in claims:
        name = claim["metadata"]["name"]
        try:
            if settings.on_user_delete == "delete":
                await k8s.delete_claim(namespace, name)
            else:
                await k8s.patch_claim_metadata(
                    namespace, name, {LABEL_ORPHANED: "true"},
                    {ANNOTATION_ORPHANED_AT: datetime.now(UTC).isoformat(timespec="seconds")})
            done += 1
        except k8s.API_ERRORS as e:
            if getattr(e, "status", None) == 404:  # already gone (e.g. reset at the same moment)
                continue
            failed.append(f"{name} ({k8s.describe(e)})")
    log.info("User %s deleted: %s %d claim(s)", username,
             "deleted" if settings.on_user_delete == "delete" else "retained (orphaned)", done)
    if failed:
        log.error("User %s deleted, but onUserDelete=%s failed for: %s", username, settings.on_user_delete,
                  ", ".join(failed))
