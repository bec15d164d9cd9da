"""A test install of the chart: one helm release in a namespace of its own, its pods on the real node (ci/dev/node.sh:
kubelet, containerd, the images built from images/*/Dockerfile), its hub configured by Z2JH's jupyterhub_config.py and
our hub.extraConfig, as a site installs it. The tests reach proxy-public at its ClusterIP through kube-proxy.

``install`` again is ``helm upgrade`` with the new values in place of the old (values.example.yaml,
ci/dev/local-values.yaml and ci/dev/node-values.yaml stay underneath): the hub restarts when its configuration
changed (Z2JH's checksum annotation), its database and every claim stay. Everything a test adds goes through the
chart's values: ``custom.ds`` settings, ``hub.config`` sections, a later ``hub.extraConfig`` snippet, other values
(``hub.db``, ``hub.allowNamedServers``, ``custom.brandingFiles``); plus a hub service ``e2e`` with a token the tests
choose, and the first admin's password pre-created in the chart's Secret (the chart keeps an existing one, helm
adopts it), so that ``hubclient.admin_client`` logs in.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ci.dev import devenv

from .hubclient import PASSWORD

# what the tests' e2e service may do (the host hubs' e2e service has the same scopes: ci/dev/hub/jupyterhub_config.py)
E2E_SCOPES = ["admin:users", "admin:servers", "admin:groups", "list:users", "read:hub"]
# custom.ds settings under every test's own: here every client reaches the hub from one address (kube-proxy
# masquerades this machine's connections to proxy-public's ClusterIP), so the sign-up and login rate limits per
# address would refuse a module's users after the fifth sign-up or the thirtieth login in a minute (the chart's
# shared release logs in more than that); test_signup_flood sets the shipped sign-up limit back on a release of its
# own
E2E_BASE_SETTINGS = {"accounts": {"signupsPerMinute": 10000, "loginsPerMinute": 10000}}
# the name of a test's later snippet among hub.extraConfig's keys: Z2JH runs them in key order, ours
# (`jupyterhub-ds`) before it
LATER_SNIPPET_KEY = "zzz-e2e-later"


def merged(base: dict, extra: dict) -> dict:
    """``extra`` over ``base``, maps merged key by key as helm merges values files."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def first_admin_secret(namespace: str, password: str) -> dict:
    """The chart's first-admin Secret with a chosen password, carrying the labels and annotations with which
    helm adopts an existing object into the release."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": devenv.FIRST_ADMIN_SECRET, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": devenv.RELEASE,
                                     "meta.helm.sh/release-namespace": namespace}},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


@dataclass
class Release:
    """The installed counterpart of ``devenv.Hub``: ``url``, ``service_token`` and ``hub_config`` as there;
    ``log_text()`` reads the hub's log, ``stop``/``start`` act on the hub Deployment, ``db_file`` is the hub's
    SQLite database in its claim (Z2JH's default ``hub.db.type: sqlite-pvc``)."""

    admin: Path
    namespace: str
    state: Path
    service_token: str = field(default_factory=lambda: os.urandom(16).hex())
    url: str = ""
    installed_values: dict | None = None  # the overlay of the last install that succeeded
    prepared: bool = False  # the namespace and the first admin's Secret exist

    @classmethod
    def new(cls, admin: Path, prefix: str, state_dirs: pytest.TempPathFactory) -> Release:
        """A release to install in a new namespace ``<prefix>-<random>``, its state in a new temporary directory."""
        namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
        return cls(admin, namespace, state_dirs.mktemp(namespace))

    def kubectl(self, *args: str, check: bool = True) -> str:
        return devenv.kubectl(self.admin, "-n", self.namespace, *args, check=check)

    def install(self, settings: dict | None = None, hub_config: dict | None = None, extra_config: str = "",
                values: dict | None = None, wait: bool = True) -> Release:
        """``helm upgrade --install`` with these ``custom.ds`` settings, ``hub.config`` sections, later snippet and
        other ``jupyterhub`` values; waits for the (new) hub to answer through the proxy unless ``wait`` is false.
        Nothing happens when the values are those of the last install (a test asking for what is installed)."""
        if not self.prepared:
            self._prepare()
        hub: dict = {
            "services": {"e2e": {"apiToken": self.service_token}},
            "loadRoles": {"e2e": {"description": "the end-to-end tests' admin-side calls", "services": ["e2e"],
                                  "scopes": E2E_SCOPES}},
            "config": hub_config or {},
        }
        if extra_config:
            hub["extraConfig"] = {LATER_SNIPPET_KEY: extra_config}
        overlay = merged({"hub": hub, "custom": {"ds": merged(E2E_BASE_SETTINGS, settings or {})}}, values or {})
        if overlay == self.installed_values:
            return self
        self.installed_values = None  # unknown until this install succeeds
        self.values_file.write_text(yaml.safe_dump({"jupyterhub": overlay}))
        self.reinstall(wait)
        if wait:
            self.installed_values = overlay
        return self

    @property
    def values_file(self) -> Path:
        return self.state / "e2e-values.yaml"

    def reinstall(self, wait: bool = True) -> Release:
        """``helm upgrade`` with the values of the last install (helm renders what is missing again)."""
        devenv.install_chart(self.admin, self.namespace, values=[devenv.NODE_VALUES, self.values_file],
                             create_namespace=False)
        if wait:
            self.wait_hub()
        return self

    def _prepare(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        devenv.kubectl(self.admin, "create", "namespace", self.namespace)
        devenv.kubectl(self.admin, "-n", self.namespace, "apply", "-f", "-",
                       stdin=yaml.safe_dump(first_admin_secret(self.namespace, PASSWORD)))
        self.prepared = True

    def wait_hub(self, timeout: float = 180) -> None:
        """Until the hub Deployment's newest pod is Ready and the hub answers through proxy-public."""
        self.kubectl("rollout", "status", "deployment/hub", f"--timeout={int(timeout)}s")
        self.url = devenv.wait_installed(self.admin, self.namespace, timeout)

    def log_text(self) -> str:
        """The hub container's log since its pod started (``kubectl logs deploy/hub``)."""
        return self.kubectl("logs", "deployment/hub", "--tail=-1")

    def stop(self) -> None:
        """The hub Deployment scaled to 0 and its pod gone (user servers keep running: cleanup_servers is off)."""
        self.kubectl("scale", "deployment/hub", "--replicas=0")
        self.kubectl("wait", "--for=delete", "pod", "-l", "component=hub", "--timeout=90s")

    def start(self) -> Release:
        self.kubectl("scale", "deployment/hub", "--replicas=1")
        self.wait_hub()
        return self

    @property
    def hub_config(self) -> dict:
        """The ``hub.config`` sections of the last install."""
        return (self.installed_values or {}).get("hub", {}).get("config", {})

    @property
    def db_file(self) -> Path:
        """jupyterhub.sqlite in the hub-db-dir claim's directory on this machine."""
        return devenv.claim_dir(self.admin, self.namespace, "hub-db-dir") / "jupyterhub.sqlite"

    def wait_log(self, text: str, timeout: float = 60) -> str:
        """The hub log once it contains ``text``. A log not there yet (a new pod's container not started, as a
        kubelet answers too) is read again until the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                log = self.log_text()
            except RuntimeError as e:
                log = str(e)
            if text in log:
                return log
            assert time.monotonic() < deadline, f"{text!r} not in the hub log after {timeout}s:\n{log[-3000:]}"
            time.sleep(0.5)

    def remove(self) -> None:
        """Uninstall in the background (the release, then the namespace with its claims) while the next module sets
        up; ``wait_removed`` waits for every removal."""
        if self.prepared:
            removal = threading.Thread(target=devenv.remove_test_install, args=(self.admin, self.namespace),
                                       name=f"remove {self.namespace}")
            removal.start()
            _removals.append(removal)
            self.prepared = False


_removals: list[threading.Thread] = []


def wait_removed() -> None:
    """Until every ``Release.remove`` has finished (before the cluster stops)."""
    while _removals:
        _removals.pop().join()
