"""The modules in this directory drive an INSTALLED chart of their own: each module installs the chart in a namespace
of its own (``release``, a ``release.Release``) with the settings and values it tests, and may ``helm upgrade`` it to
other values (``release.install`` again: the hub restarts, the hub database and every claim stay), restart or stop
its hub, read its log (``kubectl logs``) and its SQLite database (in the hub-db-dir claim).

A module here needs what the shared release of tests/e2e/chart/ cannot give it: settings that contradict that
release's, a hub restarted or its database replaced, a hub log of its own, or exact counts of users and servers.

The fixtures ``namespace`` and ``hub`` are overridden here, so the parent conftest's ``kube``, ``admin`` and
``service`` work unchanged against the module's release. ``hub`` is the release with the shipped values; modules
override it with their settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..release import Release


@pytest.fixture(scope="module")
def release(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    release = Release.new(admin_kubeconfig, "e2e", tmp_path_factory)
    yield release
    release.remove()


@pytest.fixture(scope="module")
def namespace(release: Release) -> str:
    return release.namespace


@pytest.fixture(scope="module")
def hub(release: Release) -> Release:
    return release.install()
