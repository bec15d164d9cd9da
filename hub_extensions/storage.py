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

The builders here are pure (no I/O); ``ensure_claims``/``reset_claims``/``release_claims``/``adopt_claims`` do the
API calls through :mod:`hub_extensions.k8s`.
"""

from __future__ import annotations

import logging
import re
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
ANNOTATION_ORPHANED_BY = "jupyterhub-ds/orphaned-by"
ANNOTATION_ADOPTED_BY = "jupyterhub-ds/adopted-by"
ANNOTATION_ADOPTED_AT = "jupyterhub-ds/adopted-at"
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

# per-claim outcomes of a reset, as reported in ``results``
RESET = "reset"
NOT_FOUND = "not found"
API_ERROR = "api error"          # the delete call failed: the claim is still there
UNCONFIRMED = "unconfirmed"      # the delete was accepted, but checking that it is gone failed
TERMINATING = "still terminating"  # deleted, but still held (pvc-protection) when the wait ended


@dataclass
class ResetResult:
    """What a reset did, claim by claim; ``status`` is the HTTP status that says so."""

    results: list[dict[str, str]] = field(default_factory=list)

    def add(self, volume: str, claim: str | None, result: str, reason: str = "") -> None:
        self.results.append({"volume": volume, "claim": claim or "", "result": result, "reason": reason or result})

    @property
    def reset(self) -> list[str]:
        return [r["volume"] for r in self.results if r["result"] == RESET]

    @property
    def failed(self) -> list[dict[str, str]]:
        return [{"volume": r["volume"], "reason": r["reason"]} for r in self.results if r["result"] != RESET]

    @property
    def status(self) -> int:
        """200 all reset; 207 some; else 404 none existed, 502 the API failed us, 504 deletion still running."""
        outcomes = {r["result"] for r in self.results}
        if outcomes <= {RESET}:
            return 200
        if RESET in outcomes:
            return 207
        if outcomes == {NOT_FOUND}:
            return 404
        if outcomes & {API_ERROR, UNCONFIRMED}:
            return 502
        return 504

    def as_json(self) -> dict[str, Any]:
        n = len(self.reset)
        message = f"Successfully reset {n} volume(s)"
        if self.failed:
            message += f"; {len(self.failed)} failed: " + ", ".join(
                f"{f['volume']} ({f['reason']})" for f in self.failed)
        return {"status": self.status, "message": message,
                "reset_volumes": self.reset, "failed_volumes": self.failed, "results": self.results}


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
        if labels.get(LABEL_USERNAME) != manifest["metadata"]["labels"][LABEL_USERNAME] or LABEL_ORPHANED in labels:
            # renamed, or mounted again after being orphaned: keep the admin-facing labels truthful
            await k8s.patch_claim_metadata(
                namespace, name,
                {LABEL_USERNAME: manifest["metadata"]["labels"][LABEL_USERNAME], LABEL_ORPHANED: None},
                {ANNOTATION_USERNAME: username})
    if created:
        log.info("Created claims for %s: %s", username, ", ".join(created))
    return created


async def reset_claims(namespace: str, settings: StorageSettings, owner: str, volumes: list[str],
                       within: float) -> ResetResult:
    """Delete the selected claims and wait (bounded) until they are gone; report each claim's outcome.

    The caller holds the user's lock and has checked that no server or pod uses them. Only the first
    list call may raise (nothing has happened yet); afterwards every failure is reported per claim.
    """
    result = ResetResult()
    selector = owner_selector(owner)
    existing = {c["metadata"]["labels"].get(LABEL_VOLUME): c["metadata"]["name"]
                for c in await k8s.list_claims(namespace, selector)}
    deleting: dict[str, str] = {}
    for volume in volumes:
        name = existing.get(volume)
        if name is None:
            result.add(volume, None, NOT_FOUND)
            continue
        try:
            if not await k8s.delete_claim(namespace, name):
                result.add(volume, name, NOT_FOUND)  # gone since the list
                continue
        except k8s.API_ERRORS as e:
            result.add(volume, name, API_ERROR, f"API error {k8s.describe(e)}")
            continue
        deleting[name] = volume
    try:
        stuck = await k8s.wait_claims_gone(namespace, selector, set(deleting), within) if deleting else set()
    except k8s.API_ERRORS as e:
        for name, volume in deleting.items():
            result.add(volume, name, UNCONFIRMED, f"deletion accepted, not confirmed: API error {k8s.describe(e)}")
        return result
    for name, volume in deleting.items():
        if name in stuck:
            result.add(volume, name, TERMINATING, f"still terminating after {within:g}s")
        else:
            result.add(volume, name, RESET)
    result.results.sort(key=lambda r: volumes.index(r["volume"]))
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


# ---------------------------------------------------------------- adoption (after a lost hub database)

OWNER_KEY_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a label value we could have written
ADOPT_CURRENT_CHOICES = ("orphan",)


def username_selector(username: str) -> str:
    """Our claims labelled with a user name (a slug: check the annotation for the exact name)."""
    return f"app.kubernetes.io/managed-by={MANAGED_BY},{LABEL_USERNAME}={safe_slug(username)}"


def _claim_summary(claim: dict) -> dict[str, Any]:
    meta = claim["metadata"]
    return {
        "volume": meta.get("labels", {}).get(LABEL_VOLUME),
        "claim": meta["name"],
        "status": "Terminating" if meta.get("deletionTimestamp") else claim.get("status", {}).get("phase", "Pending"),
        "size": claim.get("status", {}).get("capacity", {}).get("storage")
        or claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage"),
        "created": meta.get("creationTimestamp"),
        "orphaned": meta.get("labels", {}).get(LABEL_ORPHANED) == "true",
    }


def adoptable_groups(claims: list[dict], username: str, current_owner: str | None) -> list[dict[str, Any]]:
    """Claims recorded for ``username`` (exact annotation) under an owner key other than the current one,
    grouped by owner key, newest first. Pure: the caller lists the claims."""
    groups: dict[str, list[dict]] = {}
    for claim in claims:
        meta = claim["metadata"]
        owner = meta.get("labels", {}).get(LABEL_OWNER)
        if not owner or owner == current_owner or meta.get("annotations", {}).get(ANNOTATION_USERNAME) != username:
            continue
        groups.setdefault(owner, []).append(claim)
    result = []
    for owner, members in groups.items():
        volumes = sorted((_claim_summary(c) for c in members), key=lambda v: str(v["volume"]))
        annotations = [c["metadata"].get("annotations", {}) for c in members]
        result.append({
            "owner": owner,
            "orphaned": any(v["orphaned"] for v in volumes),
            "orphaned_at": next((a[ANNOTATION_ORPHANED_AT] for a in annotations if ANNOTATION_ORPHANED_AT in a), None),
            "created": min((v["created"] or "" for v in volumes), default=""),
            "volumes": volumes,
        })
    return sorted(result, key=lambda g: g["created"], reverse=True)


def check_adopt_request(body: Any) -> tuple[str, str | None]:
    """Validate ``{"owner": "<key>", "current": "orphan"?}``; returns (owner key, what to do with current claims)."""
    if not isinstance(body, dict) or not isinstance(body.get("owner"), str):
        raise StorageError(400, 'Expected a JSON object like {"owner": "u12-3fa9c2d1"}')
    owner = body["owner"]
    if not OWNER_KEY_PATTERN.match(owner):
        raise StorageError(400, f"Invalid owner key: {owner!r}")
    current = body.get("current")
    if current is not None and current not in ADOPT_CURRENT_CHOICES:
        raise StorageError(400, f"Invalid 'current': {current!r} (allowed: {', '.join(ADOPT_CURRENT_CHOICES)}; "
                                "nothing is ever deleted)")
    unknown = sorted(set(body) - {"owner", "current"})
    if unknown:
        raise StorageError(400, f"Unknown keys: {', '.join(unknown)}")
    return owner, current


async def list_adoptable(namespace: str, username: str, current_owner: str | None) -> list[dict[str, Any]]:
    return adoptable_groups(await k8s.list_claims(namespace, username_selector(username)), username, current_owner)


async def adopt_claims(namespace: str, username: str, owner: str, current_owner: str | None,
                       current: str | None, admin: str) -> dict[str, Any]:
    """Relabel the claims of ``owner`` for ``username`` (and, with ``current="orphan"``, label the user's
    current claims orphaned). Never deletes anything; the caller then makes ``owner`` the user's key.

    Refuses (404) a key with no claims, (409) claims recorded for another user or being deleted, and
    (409) a user who already has claims unless told what to do with them.
    """
    if owner == current_owner:
        raise StorageError(409, f"Owner key {owner} is already the current key of {username}")
    claims = [c for c in await k8s.list_claims(namespace, owner_selector(owner))
              if c["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == MANAGED_BY]
    if not claims:
        raise StorageError(404, f"No volumes with owner key {owner}")
    others = sorted({c["metadata"].get("annotations", {}).get(ANNOTATION_USERNAME, "?") for c in claims} - {username})
    if others:
        raise StorageError(409, f"The volumes of owner key {owner} are recorded for {', '.join(others)}, "
                                f"not {username}; relabel them with kubectl first if that is intended")
    if any(c["metadata"].get("deletionTimestamp") for c in claims):
        raise StorageError(409, f"Some volumes of owner key {owner} are being deleted")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    replaced: list[str] = []
    if current_owner:
        mine = [c["metadata"]["name"] for c in await k8s.list_claims(namespace, owner_selector(current_owner))]
        if mine and current != "orphan":
            raise StorageError(409, f"{username} already has volumes ({', '.join(sorted(mine))}); send "
                                    '"current": "orphan" to keep them as orphaned claims (nothing is deleted)')
    else:
        mine = []
    adopted: list[str] = []
    try:  # from here on, say what was done if the API fails midway
        for name in mine:
            await k8s.patch_claim_metadata(namespace, name, {LABEL_ORPHANED: "true"}, {
                ANNOTATION_ORPHANED_AT: now, ANNOTATION_ORPHANED_BY: f"adoption of {owner} by {admin}"})
            replaced.append(name)
        for claim in claims:
            name = claim["metadata"]["name"]
            await k8s.patch_claim_metadata(
                namespace, name, {LABEL_USERNAME: safe_slug(username), LABEL_ORPHANED: None},
                {ANNOTATION_USERNAME: username, ANNOTATION_ADOPTED_BY: admin, ANNOTATION_ADOPTED_AT: now,
                 ANNOTATION_ORPHANED_AT: None, ANNOTATION_ORPHANED_BY: None})
            adopted.append(name)
    except k8s.API_ERRORS as e:
        raise StorageError(502, f"Kubernetes API error {k8s.describe(e)} after relabelling "
                                f"{len(replaced) + len(adopted)} claim(s) (orphaned: {', '.join(replaced) or 'none'}; "
                                f"adopted: {', '.join(adopted) or 'none'}); the owner key of {username} was not "
                                "changed and nothing was deleted: retry") from e
    return {"owner": owner, "previous_owner": current_owner, "adopted_claims": sorted(adopted),
            "orphaned_claims": sorted(replaced), "adopted_at": now}
