#!/usr/bin/env python3
"""The local stack without Docker: the control plane with kwok's simulated nodes and a real node, and either the
installed chart (on the real node) or a hub on the host.

``make up``/``make down``:

    python -m ci.dev.devenv up      # cluster + real node (ci/dev/node.sh) + `helm upgrade --install` of chart/ with
                                    # values.example.yaml, ci/dev/local-values.yaml and ci/dev/node-values.yaml;
                                    # prints the URL and login
    python -m ci.dev.devenv down    # helm uninstall, stops what `up` started (by recorded pid; the namespace
                                    # and the cluster only if `up` created them)
    python -m ci.dev.devenv status

The end-to-end fixtures (tests/e2e/) use the same pieces: ``install_chart`` with ci/dev/node-values.yaml for every
installed release. ``Hub`` (a hub process on the host, configured by
ci/dev/hub/jupyterhub_config.py) serves the benchmarks (ci/bench/, one hub process whose event loop they measure)
and tests/e2e/test_hub_failures.py. That host hub talks to the API server with a TokenRequest token of the
ServiceAccount ``hub``, bound to Z2JH 4.4.0's hub Role plus the RBAC rendered from our chart
(``prepare_namespace``); never with the admin kubeconfig.
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

from ci import chart
from ci.dev import get_helm

HERE = Path(__file__).resolve().parent  # ci/dev: the cluster and node scripts and their data files
REPO = HERE.parents[1]

DEV_NAMESPACE = "jupyterhub-ds"


def run_dir() -> Path:
    cluster = os.environ.get("JHDS_CLUSTER", "")
    path = get_helm.cache_root() / "run" / (f"devenv-{cluster}" if cluster else "devenv")
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
    proc = subprocess.run([str(HERE / "cluster.sh"), "up"], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"ci/dev/cluster.sh up failed with exit code {proc.returncode}")
    last = proc.stdout.strip().splitlines()[-1]
    if not last.startswith("KUBECONFIG="):
        raise RuntimeError(f"ci/dev/cluster.sh up did not print KUBECONFIG=...: {last!r}")
    return Path(last.split("=", 1)[1])


def cluster_running() -> bool:
    return subprocess.run([str(HERE / "cluster.sh"), "status"], capture_output=True).returncode == 0


def cluster_stop() -> None:
    """Stop the cluster's processes, keeping its state (``ci/dev/cluster.sh stop``)."""
    subprocess.run([str(HERE / "cluster.sh"), "stop"], stdout=subprocess.DEVNULL, check=False)


def chart_objects(namespace: str) -> list[dict]:
    """What our chart renders for ``values.example.yaml`` in ``namespace`` (RBAC, shared claim, ...), no Secret.

    Only our own objects: this host-run hub does not use Z2JH's Deployment or Secret; the hub Role of Z2JH
    is applied from ci/dev/rbac/z2jh-hub.yaml instead.
    """
    docs = chart.render_documents([REPO / "values.example.yaml"], namespace=namespace)
    # the first admin's Secret is left out: rendered offline it holds a fresh random password on every
    # render, while the local hub gets its password from the state directory (Hub.first_admin_password)
    return [r.doc for r in docs if chart.is_ours(r) and r.doc.get("kind") != "Secret"]


def prepare_namespace(admin: Path, namespace: str, state: Path) -> Path:
    """Namespace, ServiceAccount ``hub`` with Z2JH's Role, our chart's objects; returns the hub kubeconfig."""
    if kubectl(admin, "get", "namespace", namespace, check=False).strip() == "":
        kubectl(admin, "create", "namespace", namespace)
    kubectl(admin, "-n", namespace, "apply", "-f", str(HERE / "rbac" / "z2jh-hub.yaml"))
    kubectl(admin, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump_all(chart_objects(namespace)))
    return service_account_kubeconfig(admin, namespace, state / "hub.kubeconfig")


def service_account_kubeconfig(admin: Path, namespace: str, path: Path, account: str = "hub") -> Path:
    """A kubeconfig at ``path`` with a TokenRequest token of the ServiceAccount (what its pod gets)."""
    token = kubectl(admin, "-n", namespace, "create", "token", account, "--duration=24h").strip()
    admin_cfg = json.loads(kubectl(admin, "config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin_cfg["clusters"][0]["cluster"]
    hub_cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": f"system:serviceaccount:{namespace}:{account}", "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "local", "namespace": namespace,
                                                   "user": f"system:serviceaccount:{namespace}:{account}"}}],
        "current-context": account,
    }
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


def start_stub_servers(admin: Path, namespace: str, state: Path, stats_port: int) -> subprocess.Popen:
    """ci/dev/stub_servers.py for a benchmark's namespace: one process answering for every single-user pod, with its
    delivery counts on ``http://127.0.0.1:<stats_port>/stats``."""
    state.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(HERE / "stub_servers.py"), "--namespace", namespace,
            "--kubeconfig", str(admin), "--stats-port", str(stats_port)]
    return _spawn(argv, state / "stub-servers.log")


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
        self.proc = _spawn([str(jupyterhub), "-f", str(HERE / "hub" / "jupyterhub_config.py")],
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


RELEASE = "jupyterhub"
LOCAL_VALUES = HERE / "local-values.yaml"
NODE_VALUES = HERE / "node-values.yaml"  # the chart's pods on the real node of ci/dev/node.sh
FIRST_ADMIN_SECRET = "jupyterhub-ds-first-admin"
# the ports of the real node's IP that its pods may reach on this machine (ci/dev/node.sh's HOST_SERVICE_PORTS)
HOST_SERVICE_PORTS = range(15432, 15440)


def container_cgroup(container_id: str, controller: str = "memory") -> Path:
    """A container's cgroup on the real node (cgroup v1, the kubelet's cgroupfs driver without QoS levels:
    containerd puts each container at ``k8s.io/<id>``), from its status' ``containerd://<id>``."""
    return Path("/sys/fs/cgroup") / controller / "k8s.io" / container_id.split("//", 1)[1]


def node_ip(admin: Path) -> str:
    """The real node's IP: its pods reach this machine there (the bridge's gateway)."""
    return kubectl(admin, "get", "node", "node-1", "-o",
                   "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}").strip()


def free_host_service_port(address: str) -> int:
    """A free port of ``HOST_SERVICE_PORTS`` on ``address``."""
    for port in HOST_SERVICE_PORTS:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every port of {HOST_SERVICE_PORTS} is taken on {address}")


def helm(admin: Path, *args: str, timeout: float = 600) -> str:
    """helm (ci.chart's binary, with its HOME kept out of the user's) against the local cluster."""
    home = get_helm.cache_root() / "helm-home"
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(chart.helm_path()), "--kubeconfig", str(admin), *args], capture_output=True,
                          text=True, env=chart._helm_env(home), timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def install_chart(admin: Path, namespace: str, values: list[Path] | None = None, set_values: tuple[str, ...] = (),
                  create_namespace: bool = True, release: str = RELEASE) -> None:
    """``helm upgrade --install`` of chart/ (real Z2JH dependency, ci.chart's prepare_chart) with
    values.example.yaml, ci/dev/local-values.yaml and ``values``, as the README installs it."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="jhds-install-") as tmp:
        chart_dir = chart.prepare_chart(tmp)
        args = ["upgrade", "--install", release, str(chart_dir), "--namespace", namespace,
                "-f", str(REPO / "values.example.yaml"), "-f", str(LOCAL_VALUES)]
        for v in values or []:
            args += ["-f", str(v)]
        for s in set_values:
            args += ["--set", s]
        if create_namespace:
            args.append("--create-namespace")
        helm(admin, *args, "--timeout", "5m")


def cluster_ip_url(admin: Path, namespace: str, name: str) -> str:
    """``http://<ClusterIP>:<first port>`` of a Service: kube-proxy on the real node (ci/dev/node.sh) routes this
    machine's connections to a ClusterIP."""
    svc = json.loads(kubectl(admin, "-n", namespace, "get", "service", name, "-o", "json"))
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def claim_dir(admin: Path, namespace: str, claim: str) -> Path:
    """The directory on this machine behind a bound claim: a hostPath volume of the simulated nodes' provisioner
    (ci/dev/cluster/storageclass.yaml) or a local volume of the real node's (ci/dev/node/storage.yaml.in)."""
    volume = kubectl(admin, "-n", namespace, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}").strip()
    spec = json.loads(kubectl(admin, "get", "pv", volume, "-o", "json"))["spec"]
    return Path((spec.get("hostPath") or spec.get("local"))["path"])


def wait_http(url: str, timeout: float, what: str, log_hint: str = "") -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reachable at {url} after {timeout:.0f}s ({last}). {log_hint}")


def wait_installed(admin: Path, namespace: str, timeout: float = 300) -> str:
    """Wait until the hub answers through the proxy and the hub and proxy pods are Ready; returns the URL
    (proxy-public's ClusterIP, which kube-proxy routes from this machine)."""
    url = cluster_ip_url(admin, namespace, "proxy-public")
    wait_http(f"{url}/hub/api/", timeout, "the hub (through proxy-public)",
              f"See: kubectl -n {namespace} get pods; kubectl -n {namespace} logs deploy/hub")
    for component in ("hub", "proxy"):
        kubectl(admin, "-n", namespace, "wait", "--for=condition=Ready", "pod", "-l", f"component={component}",
                "--timeout=120s")
    return url


def remove_test_install(admin: Path, namespace: str) -> None:
    """Undo an end-to-end test's install: the release, then its namespace (claims and all)."""
    try:
        helm(admin, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")
    except RuntimeError:
        pass
    kubectl(admin, "delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False)


def first_admin_password(admin: Path, namespace: str) -> str:
    import base64
    data = kubectl(admin, "-n", namespace, "get", "secret", FIRST_ADMIN_SECRET, "-o", "jsonpath={.data.password}")
    return base64.b64decode(data).decode()


def up(namespace: str, state: Path) -> None:
    """Start the control plane with its real node, install the chart with helm onto that node; records what it
    started for ``down`` (whether it started the cluster, whether it created the namespace)."""
    t0 = time.monotonic()
    state.mkdir(parents=True, exist_ok=True)
    if _pidfile(state).exists():
        raise SystemExit(f"already up (see {_pidfile(state)}): run `make down` first")
    cluster_was_running = cluster_running()
    admin = cluster_up()
    had_namespace = kubectl(admin, "get", "namespace", namespace, "--ignore-not-found").strip() != ""
    record = {"pids": {}, "started_cluster": not cluster_was_running,
              "namespace": namespace, "created_namespace": not had_namespace, "admin_kubeconfig": str(admin)}
    _pidfile(state).write_text(json.dumps(record))
    try:
        install_chart(admin, namespace, values=[NODE_VALUES])
        url = wait_installed(admin, namespace)
        password = first_admin_password(admin, namespace)
    except BaseException:
        print(f"make up failed: {f'KUBECONFIG={admin}'} kubectl -n {namespace} get pods,events; node logs in "
              f"{run_dir() / 'node'}. `make down` cleans up.", file=sys.stderr)
        raise
    values = yaml.safe_load((REPO / "values.example.yaml").read_text())
    first_admin = values["jupyterhub"]["custom"]["ds"].get("accounts", {}).get("firstAdmin", "admin")
    kc = f"KUBECONFIG={admin}"
    print(f"""
jupyterhub-ds is up in {time.monotonic() - t0:.0f}s: the chart installed with helm (release {RELEASE}, namespace
{namespace}) on the local control plane; its pods run on the real node (kubelet, containerd) from the images built
from images/*/Dockerfile.

  URL:          {url}/hub/        (proxy-public's ClusterIP, through kube-proxy; or:
                {kc} kubectl -n {namespace} port-forward svc/proxy-public 8080:80
                and open http://127.0.0.1:8080/hub/)
  First login:  user "{first_admin}", password: {password}
                (from the Secret {FIRST_ADMIN_SECRET}, as docs/admin/accounts.md says: {kc} kubectl
                 -n {namespace} get secret {FIRST_ADMIN_SECRET} -o jsonpath='{{.data.password}}' | base64 -d)
                Others sign up at {url}/hub/signup; authorize them at {url}/hub/authorize.
  Cluster:      {kc} kubectl -n {namespace} get pods,pvc
  Logs:         {kc} kubectl -n {namespace} logs deploy/hub
  Stop:         make down
""")


def down(state: Path) -> None:
    """Uninstall the release, stop what ``up`` recorded (by pid), the namespace and the cluster if ``up``
    created them."""
    record = json.loads(_pidfile(state).read_text()) if _pidfile(state).exists() else {}
    admin = Path(record["admin_kubeconfig"]) if record.get("admin_kubeconfig") else None
    namespace = record.get("namespace")
    if admin and namespace and cluster_running():
        try:
            helm(admin, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "2m")
        except RuntimeError as e:
            print(f"helm uninstall: {e}", file=sys.stderr)
        if record.get("created_namespace"):
            kubectl(admin, "delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False)
        else:  # user servers are KubeSpawner's pods, not helm's
            kubectl(admin, "-n", namespace, "delete", "pods", "-l", "component=singleuser-server",
                    "--wait=true", "--timeout=60s", check=False)
    for name, pid in record.get("pids", {}).items():
        print(f"stopping {name} (pid {pid})", file=sys.stderr)
        stop_process(pid, grace=40)
    _pidfile(state).unlink(missing_ok=True)
    if record.get("started_cluster"):
        subprocess.run([str(HERE / "cluster.sh"), "down"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--namespace", default=DEV_NAMESPACE)
    parser.add_argument("--state-dir", type=Path, default=None, help="hub database, logs, pids (default: cache)")
    opts = parser.parse_args()
    state = opts.state_dir or run_dir()
    if opts.command == "up":
        up(opts.namespace, state)
    elif opts.command == "down":
        down(state)
    else:
        print(_pidfile(state).read_text() if _pidfile(state).exists() else "not running")


if __name__ == "__main__":
    main()
