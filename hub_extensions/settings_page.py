"""The settings page ``/hub/settings`` (admins): every ``custom.ds`` setting, its default, what it replaces.

Everything shown comes from the one settings structure (:mod:`hub_extensions.settings`): the value the hub
runs with, the default, the description and the upstream environment variable the setting replaces
(field metadata). Nothing is read from the process environment (upstream printed its raw environment, a
secret leak waiting to happen). Secret-like values are masked: keys named like a secret, and credentials
inside URLs (``user:password@``, ``?token=``, signed-URL signatures).

The row builder and the masking are pure functions; the handler (:mod:`hub_extensions.settings_page_api`) only
renders them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .settings_schema import camel, to_values

MASK = "********"
# the last word of a key that names a secret (``apiToken``, ``clientSecret``, ``accessKey``); ``passwordWords``
# (how many words a generated password has) is not one
_SECRET_WORDS = {"password", "passwd", "secret", "token", "key", "credential", "credentials", "passphrase",
                 "apikey", "cookie"}
# query parameters that carry credentials (OAuth tokens, S3/GCS/Azure signed URLs)
_SECRET_PARAMS = re.compile(r"(token|secret|passw|signature|sig$|^sig|credential|key|auth|code$)", re.IGNORECASE)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"']+", re.IGNORECASE)


def _words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z][a-z0-9]*", name.replace("_", " "))]


def secret_key(key: str) -> bool:
    """Whether a setting's name says its value is a secret (judged on its last word)."""
    words = _words(key.rsplit(".", 1)[-1])
    return bool(words) and words[-1] in _SECRET_WORDS


def mask_url(url: str) -> str:
    """A URL with its password and credential-like query values replaced by the mask."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_value(value: Any) -> Any:
    """A settings value (JSON-like) with credentials inside URLs masked, at any depth."""
    if isinstance(value, str):
        return _URL.sub(lambda m: mask_url(m.group(0)), value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: MASK if secret_key(k) and v not in ("", None) else mask_value(v) for k, v in value.items()}
    return value


def show(value: Any, secret: bool) -> str:
    """The text shown for a value: JSON (strings unquoted), masked when secret."""
    if secret:
        return "" if value in ("", None) else MASK
    value = mask_value(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass(frozen=True)
class SettingRow:
    key: str  # as Helm users write it under custom.ds, e.g. "culler.timeoutSeconds"
    section: str  # the top-level key, e.g. "culler"
    value: str
    default: str
    description: str
    upstream: str | None  # the upstream environment variable this setting replaces
    changed: bool  # the value differs from the default
    masked: bool  # the whole value is hidden (a secret-like key)


def rows(settings: Any, defaults: Any = None, prefix: str = "") -> list[SettingRow]:
    """One row per leaf setting of a settings dataclass (nested dataclasses are walked, lists are leaves)."""
    cls = type(settings)
    defaults = defaults if defaults is not None else cls()
    hints = typing.get_type_hints(cls)
    out: list[SettingRow] = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{camel(f.name)}"
        value, default = getattr(settings, f.name), getattr(defaults, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(rows(value, default, f"{key}."))
            continue
        secret = bool(f.metadata.get("secret")) or secret_key(key)
        plain, plain_default = to_values(value), to_values(default)
        out.append(SettingRow(
            key=key, section=key.split(".", 1)[0], value=show(plain, secret), default=show(plain_default, secret),
            description=f.metadata.get("doc", ""), upstream=f.metadata.get("upstream"),
            changed=plain != plain_default, masked=secret and plain not in ("", None)))
    return out


def sections(all_rows: list[SettingRow]) -> list[tuple[str, list[SettingRow]]]:
    """Rows grouped by top-level key, in the settings structure's order."""
    grouped: dict[str, list[SettingRow]] = {}
    for row in all_rows:
        grouped.setdefault(row.section, []).append(row)
    return list(grouped.items())


def versions(chart_version: str | None) -> dict[str, str]:
    """The versions an admin needs when reporting a problem (no environment is read)."""
    import jupyterhub
    import kubespawner

    from . import __version__

    return {"jupyterhub-ds": __version__, "JupyterHub": jupyterhub.__version__,
            "KubeSpawner": kubespawner.__version__,
            "Zero to JupyterHub chart": chart_version or "not deployed by the Helm chart"}
