"""Adversarial end-to-end tests: each test performs one attack a signed-up user (or a stranger, or a delegate with a
filtered grant) could run against an installed chart, with real single-user servers, and asserts it fails.

The modules here share one release (``adversary_hub``): the chart with the shipped values plus ``ADVERSARY_ROLES``
(grants filtered to one group, as a site delegates a course to a teaching assistant) and named servers. A module
that needs other settings makes a release of its own with the ``own_release`` fixture (``Release.new``).

The fixtures ``namespace`` and ``hub`` are overridden here, so the parent conftest's ``kube``, ``admin`` and
``service`` work unchanged against the shared release.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..release import Release

# the group a delegate manages, and the delegate: every grant a site may hand a teaching assistant, filtered to it
COURSE = "course-x"
DELEGATE = "dora"
ADVERSARY_ROLES = {
    "course-delegate": {
        "scopes": [f"{scope}!group={COURSE}" for scope in (
            "admin:users", "admin:servers", "custom:ds-notifications:send", "custom:ds-activity:admin",
            "custom:ds-volumes:reset")],
        "users": [DELEGATE],
    },
}


@pytest.fixture(scope="session")
def adversary_hub(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    release = Release.new(admin_kubeconfig, "e2e-adv", tmp_path_factory)
    try:
        yield release.install(hub_config={"JupyterHub": {"allow_named_servers": True}},
                              values={"hub": {"loadRoles": ADVERSARY_ROLES}})
    finally:
        release.remove()


@pytest.fixture(scope="module")
def own_release(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """A release of the module's own (not installed yet: ``own_release.install(settings, ...)``)."""
    release = Release.new(admin_kubeconfig, "e2e-adv-own", tmp_path_factory)
    yield release
    release.remove()


@pytest.fixture(scope="module")
def hub(adversary_hub: Release) -> Release:
    return adversary_hub


@pytest.fixture(scope="module")
def namespace(hub: Release) -> str:
    return hub.namespace
