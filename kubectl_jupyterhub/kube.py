"""The Kubernetes side: the release's hub (Z2JH's labels), its Secret, and a port-forward to the hub pod.

Everything goes through ``kubectl`` (on PATH, since the user runs ``kubectl jupyterhub``) with the same
``--kubeconfig``/``--context``/``--namespace`` the user gave, so every kubeconfig feature (exec plugins,
OIDC, proxies) works as it does for kubectl itself. The hub API is reached by ``kubectl port-forward`` to the
hub pod through the API server: the API server's service proxy strips the ``Authorization`` header, and
Z2JH's hub NetworkPolicy blocks other paths.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

#: Z2JH 4.4.0's hub Deployment labels (templates/hub/deployment.yaml, ``jupyterhub.labels``)
HUB_SELECTOR = "component=hub,app=jupyterhub"
SERVICE = "kubectl-jupyterhub"
#: the key Z2JH writes a ``hub.services.<name>`` token under in the hub Secret (templates/hub/secret.yaml)
TOKEN_KEY = f"hub.services.{SERVICE}.apiToken"
SINGLEUSER_SELECTOR = "component=singleuser-server"
USERNAME_ANNOTATION = "hub.jupyter.org/username"
PORT_FORWARD_TIMEOUT = 30.0


class KubeError(Exception):
    """A kubectl call failed; the message is one line for stderr."""


@dataclass
class Kubectl:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    binary: str = field(default_factory=lambda: os.environ.get("KUBECTL", "kubectl"))

    def base(self, namespaced: bool = True) -> list[str]:
        exe = shutil.which(self.binary)
        if exe is None:
            raise KubeError(f"{self.binary} not found on PATH (kubectl jupyterhub runs kubectl)")
        args = [exe]
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.context:
            args += ["--context", self.context]
        if namespaced:
            args += ["--namespace", self.ns]
        return args

    @property
    def ns(self) -> str:
        """The namespace: ``-n``, else the current context's, else ``default`` (kubectl's rule)."""
        if self.namespace is None:
            out = self.run("config", "view", "--minify", "-o", "jsonpath={..namespace}", namespaced=False)
            self.namespace = out.strip() or "default"
        return self.namespace

    def run(self, *args: str, namespaced: bool = True, timeout: float = 60) -> str:
        try:
            proc = subprocess.run([*self.base(namespaced), *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise KubeError(f"kubectl {args[0]} timed out after {timeout:.0f}s") from None
        if proc.returncode:
            lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
            raise KubeError(lines[-1] if lines else f"kubectl {args[0]} exited {proc.returncode}")
        return proc.stdout

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run("get", *args, "-o", "json"))


@dataclass
class Release:
    """One jupyterhub-ds release: its hub Deployment, a running hub pod, and what the hub Secret says."""

    namespace: str
    name: str
    deployment: dict[str, Any]
    pod: str
    port: int
    secret: str
    token: str
    base_url: str
    values: dict[str, Any]


def find_release(kube: Kubectl) -> Release:
    """The release in the namespace, found by Z2JH's hub Deployment labels; KubeError with a clear reason."""
    ns = kube.ns
    deployments = kube.get("deployments", "-l", HUB_SELECTOR)["items"]
    if not deployments:
        raise KubeError(f"no jupyterhub-ds release in namespace {ns} (no Deployment with labels {HUB_SELECTOR}; "
                        "use -n/--namespace)")
    if len(deployments) > 1:
        names = ", ".join(d["metadata"]["name"] for d in deployments)
        raise KubeError(f"several hub Deployments in namespace {ns} ({names}): one release per namespace")
    deploy = deployments[0]
    labels = deploy["metadata"].get("labels", {})
    release = labels.get("release") or labels.get("app.kubernetes.io/instance") or deploy["metadata"]["name"]
    pod_spec = deploy["spec"]["template"]["spec"]
    secret = next((v["secret"]["secretName"] for v in pod_spec.get("volumes", [])
                   if v.get("name") == "secret" and "secret" in v), "hub")
    port = 8081
    for c in pod_spec.get("containers", []):
        for p in c.get("ports", []):
            if p.get("name") == "http":
                port = int(p["containerPort"])
    selector = ",".join(f"{k}={v}" for k, v in deploy["spec"]["selector"].get("matchLabels", {}).items())
    pods = kube.get("pods", "-l", selector or HUB_SELECTOR)["items"]
    running = [p for p in pods if p.get("status", {}).get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    if not running:
        raise KubeError(f"the hub of release {release} in namespace {ns} has no running pod "
                        f"(kubectl -n {ns} get pods -l {selector or HUB_SELECTOR})")
    data = kube.get("secret", secret).get("data") or {}
    if TOKEN_KEY not in data:
        raise KubeError(f"no jupyterhub-ds release in namespace {ns}: the hub Secret {secret} has no {TOKEN_KEY} "
                        "(the chart's hub.services.kubectl-jupyterhub); upgrade the release to a chart that has it")
    values = parse_values(base64.b64decode(data["values.yaml"]).decode()) if "values.yaml" in data else {}
    base_url = ((values.get("hub") or {}).get("baseUrl") or "/").rstrip("/") + "/"
    return Release(namespace=ns, name=release, deployment=deploy, pod=running[0]["metadata"]["name"], port=port,
                   secret=secret, token=base64.b64decode(data[TOKEN_KEY]).decode().strip(), base_url=base_url,
                   values=values)


def parse_values(text: str) -> dict[str, Any]:
    """Z2JH's values (the hub Secret's ``values.yaml``); without PyYAML only ``hub.baseUrl`` is read."""
    try:
        import yaml
    except ImportError:
        m = re.search(r"^hub:\n(?:[ ]+.*\n|\n)*?[ ]{2}baseUrl: ['\"]?([^'\"\n]+)", text, re.MULTILINE)
        return {"hub": {"baseUrl": m.group(1).strip()}} if m else {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return values if isinstance(values, dict) else {}


def chart_version(kube: Kubectl, release: str) -> str | None:
    """The chart version of the release's latest Helm revision (Helm's release Secret), or None."""
    try:
        items = kube.get("secrets", "-l", f"owner=helm,name={release}")["items"]
    except KubeError:
        return None
    if not items:
        return None
    latest = max(items, key=lambda s: int(s["metadata"].get("labels", {}).get("version", "0")))
    try:
        raw = base64.b64decode(base64.b64decode(latest["data"]["release"]))
        doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        meta = doc["chart"]["metadata"]
        return f"{meta['name']}-{meta['version']}"
    except (KeyError, ValueError, OSError):
        return None


class PortForward:
    """``kubectl port-forward pod/<hub> :<port>``; ``local_port`` is the port kubectl chose."""

    def __init__(self, kube: Kubectl, pod: str, port: int):
        self.kube, self.pod, self.port = kube, pod, port
        self.proc: subprocess.Popen[str] | None = None
        self.local_port = 0

    def __enter__(self) -> PortForward:
        args = [*self.kube.base(), "port-forward", f"pod/{self.pod}", f":{self.port}", "--address", "127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=_pump, args=(name, stream, lines), daemon=True).start()
        errors: list[str] = []
        closed = 0
        while True:
            try:
                name, line = lines.get(timeout=PORT_FORWARD_TIMEOUT)
            except queue.Empty:
                self.__exit__()
                raise KubeError(f"kubectl port-forward to pod/{self.pod} did not start within "
                                f"{PORT_FORWARD_TIMEOUT:.0f}s") from None
            if line is None:
                closed += 1
                if closed == 2:
                    break
                continue
            m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if m:
                self.local_port = int(m.group(1))
                return self
            if name == "err" and line.strip():
                errors.append(line.strip())
        self.__exit__()
        raise KubeError(f"kubectl port-forward to pod/{self.pod} failed: {errors[-1] if errors else 'no output'}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _pump(name: str, stream: Any, out: queue.Queue) -> None:
    for line in stream:
        out.put((name, line))
    out.put((name, None))


def user_pods(kube: Kubectl, username: str) -> list[dict[str, Any]]:
    """The user's server pods (KubeSpawner's annotation carries the exact name; the label only a slug)."""
    pods = kube.get("pods", "-l", SINGLEUSER_SELECTOR)["items"]
    return [p for p in pods if (p["metadata"].get("annotations") or {}).get(USERNAME_ANNOTATION) == username]
