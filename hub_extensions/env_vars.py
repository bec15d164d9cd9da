"""Per-user environment variables: what a user sets for their own servers (API keys, a proxy, a default
dataset), kept in a Secret of their own and injected by reference.

Shapes and rules follow upstream's v4 (``GET/PUT /hub/api/users/<name>/env-vars``): names
``^[A-Za-z_][A-Za-z0-9_]*$``, blank names dropped, at most :data:`MAX_VARIABLES` variables and
:data:`MAX_BYTES` bytes, ``null`` values stored as ``""``, descriptions stored and never injected, the
platform's own names refused. Unlike upstream, values never reach the hub database or the pod spec in clear:

- they live in the Secret ``jupyterhub-ds-env-<owner key>`` (labelled with the owner key, like the user's claims,
  so a rename keeps it and adoption rules apply), one key per variable;
- the pod gets ``envFrom: [{secretRef: {name, optional: true}}]``, and Kubernetes fills the values in. Variables
  in ``env`` win over ``envFrom`` ones, which gives upstream's precedence for free: the user's value < a group
  policy's ``env`` < the values the platform sets (which a user may not name anyway).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import k8s
from .storage import LABEL_OWNER, MANAGED_BY

MAX_VARIABLES = 100
MAX_BYTES = 16384  # names, values and descriptions, UTF-8
MAX_DESCRIPTION = 1024
MAX_ROWS = 1000  # rows a body may carry, blank ones included: refused before any per-row work
MAX_BODY = 65536  # bytes of a PUT body (the handler answers 413 above it, before parsing)
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,252}$")
# what upstream reserves besides the platform's own variables (the spawner's, group_policies.platform_env)
RESERVED_NAMES = frozenset({
    "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "DOCKER_HOST", "GRANT_SUDO", "NB_UID", "NB_GID", "NB_USER",
    "NB_GROUP", "NB_UMASK", "CHOWN_HOME", "CHOWN_HOME_OPTS", "CHOWN_EXTRA", "CHOWN_EXTRA_OPTS",
})
RESERVED_PREFIXES = ("JUPYTERHUB_", "JPY_", "MEM_", "CPU_")
SECRET_PREFIX = "jupyterhub-ds-env-"
DESCRIPTIONS_ANNOTATION = "jupyterhub-ds/env-descriptions"


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    description: str = ""

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "description": self.description}


class EnvVarsError(Exception):
    """A refused set: ``code`` as upstream's (``reserved_env_var_names``, ...), the names at fault."""

    def __init__(self, code: str, message: str, rejected: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.rejected = rejected or []


def reserved(name: str, platform: set[str] | frozenset[str]) -> bool:
    return name in platform or name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def validate(body: Any, platform: set[str] | frozenset[str]) -> list[EnvVar]:
    """The variables of a ``PUT`` body ``{"env_vars": [{name, value, description}, ...]}``, or
    :class:`EnvVarsError`. ``platform``: the names the spawner sets itself. Linear in the body's size."""
    items = body.get("env_vars") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise EnvVarsError("invalid_env_vars", 'expected {"env_vars": [{"name": ..., "value": ...}, ...]}')
    if len(items) > MAX_ROWS:
        raise EnvVarsError("too_many", f"at most {MAX_VARIABLES} variables")
    out: list[EnvVar] = []
    for item in items:
        name, value, description = item.get("name"), item.get("value"), item.get("description")
        if name is None or (isinstance(name, str) and not name.strip()):
            continue  # blank rows of the editor
        if not isinstance(name, str) or not isinstance(value, str | None) or not isinstance(description, str | None):
            raise EnvVarsError("invalid_env_vars", "name, value and description must be strings",
                               [name] if isinstance(name, str) else [])
        out.append(EnvVar(name.strip(), value or "", description or ""))
    if len(out) > MAX_VARIABLES:
        raise EnvVarsError("too_many", f"at most {MAX_VARIABLES} variables")
    bad = [v.name for v in out if not NAME_PATTERN.match(v.name)]
    if bad:
        raise EnvVarsError("invalid_env_var_names", "names must match ^[A-Za-z_][A-Za-z0-9_]*$ (at most 253 "
                           "characters)", bad)
    taken = [v.name for v in out if reserved(v.name, platform)]
    if taken:
        raise EnvVarsError("reserved_env_var_names", "these names are set by the platform: "
                           + ", ".join(taken), taken)
    duplicates = sorted(n for n, count in Counter(v.name for v in out).items() if count > 1)
    if duplicates:
        raise EnvVarsError("duplicate_env_var_names", "each name may appear once", duplicates)
    long = [v.name for v in out if len(v.description) > MAX_DESCRIPTION]
    if long:
        raise EnvVarsError("too_large", f"a description may take at most {MAX_DESCRIPTION} characters", long)
    try:
        size = sum(len(v.name.encode()) + len(v.value.encode()) + len(v.description.encode()) for v in out)
    except UnicodeEncodeError as e:  # a lone surrogate from JSON's \ud800
        raise EnvVarsError("invalid_env_vars", "values must be valid Unicode text") from e
    if size > MAX_BYTES:
        raise EnvVarsError("too_large", f"names, values and descriptions may take at most {MAX_BYTES} bytes")
    return out


def secret_name(owner: str) -> str:
    return f"{SECRET_PREFIX}{owner}"


def secret_manifest(owner: str, variables: list[EnvVar]) -> dict[str, Any]:
    """The user's Secret: one key per variable, the descriptions (and the order) in an annotation."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": secret_name(owner),
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": "user-env",
                       LABEL_OWNER: owner},
            "annotations": {DESCRIPTIONS_ANNOTATION: json.dumps([[v.name, v.description] for v in variables])},
        },
        "data": {v.name: base64.b64encode(v.value.encode()).decode() for v in variables},
    }


def from_secret(secret: dict[str, Any] | None) -> list[EnvVar]:
    """The stored variables, in the order they were set (none for a missing Secret)."""
    if not secret:
        return []
    data = secret.get("data") or {}
    try:
        order = json.loads((secret.get("metadata", {}).get("annotations") or {}).get(DESCRIPTIONS_ANNOTATION, "[]"))
    except ValueError:
        order = []
    described = {name: description for name, description in order if name in data}
    names = [n for n in described] + sorted(n for n in data if n not in described)
    return [EnvVar(n, base64.b64decode(data[n]).decode(errors="replace"), described.get(n, "")) for n in names]


async def follow_owner_key(namespace: str, previous: str | None, owner: str) -> bool:
    """After an adoption made ``owner`` the user's key: their current variables (under ``previous``) move with them,
    replacing what an earlier account of theirs left under ``owner``; without current ones, those earlier ones are
    theirs again. Nothing is left under the old key. True when variables moved."""
    secret = await k8s.read_secret(namespace, secret_name(previous)) if previous else None
    if secret is None or previous is None:
        return False
    await k8s.put_secret(namespace, secret_manifest(owner, from_secret(secret)))
    await k8s.delete_secret(namespace, secret_name(previous))
    return True


def pod_env_from(owner: str) -> dict[str, Any]:
    """The ``envFrom`` entry of the notebook container: optional, so a user who set nothing starts as before."""
    return {"secretRef": {"name": secret_name(owner), "optional": True}}


def answer(variables: list[EnvVar], platform: set[str] | frozenset[str], enabled: bool,
           editable: bool) -> dict[str, Any]:
    """``GET``'s body, upstream's shape; the values are withheld when the caller may not edit them."""
    return {
        "env_vars": [v.as_json() for v in variables] if editable else [],
        "reserved_names": sorted(set(platform) | RESERVED_NAMES),
        "reserved_prefixes": list(RESERVED_PREFIXES),
        "system_env_enabled": enabled,
        "editable": editable,
    }
