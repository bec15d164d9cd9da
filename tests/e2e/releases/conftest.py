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

import os
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..release import Release

DOCKER_GID = 4242  # the group of ``docker_socket`` on the node, given to the members' pods as a supplemental group


@pytest.fixture(scope="module")
def docker_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A unix socket on the node (this machine), root:DOCKER_GID 0660 as dockerd's, answering every connection with
    a line: the hostPath a module gives the docker-socket group (``groups.dockerSock.hostPath``)."""

    class Hello(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"hello from the node\n")

    path = tmp_path_factory.mktemp("node-sock") / "docker.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), Hello)
    os.chown(path, 0, DOCKER_GID)
    os.chmod(path, 0o660)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


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
