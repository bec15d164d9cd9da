#!/usr/bin/env python3
"""The local stack without Docker: kwok control plane, hub ServiceAccount access, pod runner, hub.

Used by ``make up``/``make down`` and by the end-to-end test fixtures (tests/e2e/conftest.py):

    python ci/devenv.py up      # cluster + namespace + RBAC + pod runner + hub; prints URL and first login
    python ci/devenv.py down    # stops what `up` started (by recorded pid; the cluster only if `up` created it)
    python ci/devenv.py status

The hub talks to the API server with a TokenRequest token of the ServiceAccount ``hub``, bound to
Z2JH 4.4.0's hub Role plus the RBAC rendered from our chart; never with the admin kubeconfig.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ci"))

import get_helm  # noqa: E402

import chart  # noqa: E402  (ci/chart.py)

DEV_NAMESPACE = "jupyterhub-ds"


def run_dir() -> Path:
    path = get_helm.cache_root() / "run" / "devenv"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_bin() -> str:
    return str(get_helm.ensure_helm() / "kubectl")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([kubectl_bin(), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def cluster_up() -> Path:
    """Start (or reuse) the kwok cluster; returns the admin kubeconfig."""
    proc = subprocess.run([str(REPO / "ci" / "cluster.sh"), "up"], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"ci/cluster.sh up failed with exit code {proc.returncode}")
    last = proc.stdout.strip().splitlines()[-1]
    if not last.startswith("KUBECONFIG="):
        raise RuntimeError(f"ci/cluster.sh up did not print KUBECONFIG=...: {last!r}")
    return Path(last.split("=", 1)[1])


def cluster_running() -> bool:
    return subprocess.run([str(REPO / "ci" / "cluster.sh"), "status"], capture_output=True).returncode == 0


def cluster_stop() -> None:
    """Stop the cluster's processes, keeping its state (``ci/cluster.sh stop``)."""
    subprocess.run([str(REPO / "ci" / "cluster.sh"), "stop"], stdout=subprocess.DEVNULL, check=False)


def chart_objects(namespace: str) -> list[dict]:
    """What our chart renders for ``values.example.yaml`` in ``namespace`` (RBAC, shared claim, ...), no Secret.

    Only our own objects: this host-run hub does not use Z2JH's Deployment or Secret; the hub Role of Z2JH
    is applied from ci/rbac/z2jh-hub.yaml instead.
    """
    docs = chart.render_documents([REPO / "values.example.yaml"], namespace=namespace)
    # the first admin's Secret is left out: rendered offline it holds a fresh random password on every
    # render, while the local hub gets its password from the state directory (Hub.first_admin_password)
    return [r.doc for r in docs if chart.is_ours(r) and r.doc.get("kind") != "Secret"]


def prepare_namespace(admin: Path, namespace: str, state: Path) -> Path:
    """Namespace, ServiceAccount ``hub`` with Z2JH's Role, our chart's objects; returns the hub kubeconfig."""
    if kubectl(admin, "get", "namespace", namespace, check=False).strip() == "":
        kubectl(admin, "create", "namespace", namespace)
    kubectl(admin, "-n", namespace, "apply", "-f", str(REPO / "ci" / "rbac" / "z2jh-hub.yaml"))
    kubectl(admin, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump_all(chart_objects(namespace)))
    token = kubectl(admin, "-n", namespace, "create", "token", "hub", "--duration=24h").strip()
    admin_cfg = json.loads(kubectl(admin, "config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin_cfg["clusters"][0]["cluster"]
    hub_cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": f"system:serviceaccount:{namespace}:hub", "user": {"token": token}}],
        "contexts": [{"name": "hub", "context": {"cluster": "local", "user": f"system:serviceaccount:{namespace}:hub",
                                                "namespace": namespace}}],
        "current-context": "hub",
    }
    path = state / "hub.kubeconfig"
    path.write_text(yaml.safe_dump(hub_cfg))
    path.chmod(0o600)
    return path


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
           ) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


def stop_process(proc: subprocess.Popen | int, grace: float = 10) -> None:
    pid = proc if isinstance(proc, int) else proc.pid
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if isinstance(proc, subprocess.Popen):
                if proc.poll() is not None:
                    return
            else:
                os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_pod_runner(admin: Path, namespace: str, state: Path) -> subprocess.Popen:
    return _spawn([sys.executable, str(REPO / "ci" / "pod_runner.py"), "--namespace", namespace,
                   "--singleuser-bin", str(REPO / ".venv-singleuser" / "bin"), "--kubeconfig", str(admin),
                   "--workdir", str(state / "pods")], state / "pod-runner.log")


@dataclass
class Hub:
    """A JupyterHub process on the host with our extensions, against the local control plane."""

    namespace: str
    kubeconfig: Path
    state: Path
    settings: dict = field(default_factory=dict)
    extra_config: str = ""  # a config snippet run after configure(c), like a later hub.extraConfig entry
    hub_config: dict = field(default_factory=dict)  # extra hub.config sections, e.g. {"NativeAuthenticator": {...}}
    # the first admin's password, passed like the chart passes its Secret: when not given, the one in the
    # state directory (kept across restarts, as the chart keeps its Secret with `lookup`) or a new random one
    first_admin_password: str | None = None
    public_port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    service_token: str = field(default_factory=lambda: os.urandom(16).hex())
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def log(self) -> Path:
        return self.state / "hub.log"

    @property
    def first_admin_password_file(self) -> Path:
        return self.state / "first-admin-password"

    def start(self, timeout: float = 60) -> Hub:
        self.state.mkdir(parents=True, exist_ok=True)
        settings_file = self.state / "settings.json"
        settings_file.write_text(json.dumps(self.settings))
        secret = self.first_admin_password_file
        if self.first_admin_password is None:
            self.first_admin_password = (secret.read_text() if secret.exists()
                                         else secrets.token_urlsafe(18))
        secret.touch(mode=0o600)
        secret.write_text(self.first_admin_password)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "JHDS_NAMESPACE": self.namespace,
            "JHDS_PUBLIC_PORT": str(self.public_port),
            "JHDS_HUB_PORT": str(self.hub_port),
            "JHDS_PROXY_API_PORT": str(self.proxy_api_port),
            "JHDS_SETTINGS": str(settings_file),
            "JHDS_CHP": str(REPO / "node_modules" / ".bin" / "configurable-http-proxy"),
            "JHDS_STATE_DIR": str(self.state),
            "JHDS_SERVICE_TOKEN": self.service_token,
            "JHDS_HUB_CONFIG": json.dumps(self.hub_config),
            "JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD": self.first_admin_password,
        }
        if self.extra_config:
            extra = self.state / "extra_config.py"
            extra.write_text(self.extra_config)
            env["JHDS_EXTRA_CONFIG"] = str(extra)
        jupyterhub = Path(sys.executable).parent / "jupyterhub"
        self.proc = _spawn([str(jupyterhub), "-f", str(REPO / "ci" / "hub" / "jupyterhub_config.py")],
                           self.log, env=env, cwd=self.state)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}; log:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"hub not ready after {timeout}s; log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
            self.proc = None


# ---------------------------------------------------------------- make up / make down

def _pidfile(state: Path) -> Path:
    return state / "pids.json"


def up(port: int, namespace: str, state: Path) -> None:
    """Start the stack; records what it started (pids, and whether it started the cluster) for ``down``."""
    state.mkdir(parents=True, exist_ok=True)
    if _pidfile(state).exists():
        raise SystemExit(f"already up (see {_pidfile(state)}): run `make down` first")
    cluster_was_running = cluster_running()
    admin = cluster_up()
    runner = None
    try:
        hub_kc = prepare_namespace(admin, namespace, state)
        runner = start_pod_runner(admin, namespace, state)
        values = yaml.safe_load((REPO / "values.example.yaml").read_text())
        settings = values["jupyterhub"]["custom"].get("ds", {})
        hub = Hub(namespace, hub_kc, state / "hub", settings=settings, public_port=port).start()
    except BaseException:  # leave nothing behind that `down` would not know about
        if runner:
            stop_process(runner)
        if not cluster_was_running:
            cluster_stop()
        raise
    first_admin = settings.get("accounts", {}).get("firstAdmin", "admin")
    _pidfile(state).write_text(json.dumps({"pids": {"pod_runner": runner.pid, "hub": hub.proc.pid},
                                           "started_cluster": not cluster_was_running}))
    print(f"""
jupyterhub-ds is up (local control plane, hub on the host).

  URL:          {hub.url}/hub/
  First login:  user "{first_admin}", password: {hub.first_admin_password}
                (also in {hub.first_admin_password_file}; on Kubernetes the chart keeps it in the Secret
                jupyterhub-ds-first-admin). Add users on {hub.url}/hub/admin; sign-ups are authorized at
                {hub.url}/hub/authorize.
  Cluster:      KUBECONFIG={admin} kubectl -n {namespace} get pods,pvc
  Logs:         {state}/hub/hub.log, {state}/pod-runner.log
  Stop:         make down
""")


def down(state: Path) -> None:
    """Stop the processes ``up`` started (by recorded pid), and the cluster if ``up`` created it."""
    record = json.loads(_pidfile(state).read_text()) if _pidfile(state).exists() else {}
    for name, pid in record.get("pids", {}).items():
        print(f"stopping {name} (pid {pid})", file=sys.stderr)
        stop_process(pid)
    _pidfile(state).unlink(missing_ok=True)
    if record.get("started_cluster"):
        subprocess.run([str(REPO / "ci" / "cluster.sh"), "down"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("JHDS_PORT", "8000")))
    parser.add_argument("--namespace", default=DEV_NAMESPACE)
    parser.add_argument("--state-dir", type=Path, default=None, help="hub database, logs, pids (default: cache)")
    opts = parser.parse_args()
    state = opts.state_dir or run_dir()
    if opts.command == "up":
        up(opts.port, opts.namespace, state)
    elif opts.command == "down":
        down(state)
    else:
        print(_pidfile(state).read_text() if _pidfile(state).exists() else "not running")


if __name__ == "__main__":
    main()
