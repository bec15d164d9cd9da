"""``/hub/ds-static/<name>``: our UI files (``static/``: scripts and styles of our pages), and their content hashes.

The pages link them as ``ds-static/<name>?v=<hash>`` (:func:`asset_versions`, a template variable set by
``configure``), so a changed file gets a new URL while an unchanged one stays cached.
"""

from __future__ import annotations

import hashlib
import os

from tornado import web

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def handlers() -> list[tuple[str, type, dict]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/ds-static/(.*)", web.StaticFileHandler, {"path": STATIC_DIR})]


def asset_versions() -> dict[str, str]:
    """A content hash of each UI file, for ``ds-static/<name>?v=<hash>``; read once, at start.

    Tornado's StaticFileHandler lets browsers cache any ``?v=`` URL for ten years; with the file's own
    hash a changed file gets a new URL, and an unchanged one stays cached across releases.
    """
    versions = {}
    for name in sorted(os.listdir(STATIC_DIR)):
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            versions[name] = hashlib.sha256(f.read()).hexdigest()[:16]
    return versions
