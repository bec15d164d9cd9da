#!/usr/bin/env python3
"""Play the kubelet (and kube-proxy) for the kwok nodes of the local control plane. Test and dev harness only.

kwok schedules pods, gives them loopback IPs (127.<net>.x.y) and marks them Running, but runs nothing. This
agent runs every container of every pod bound to a node, as host processes, from the pod spec alone:

- the image is mapped to a local environment by ci/dev/node-agent/images.yaml (hub image -> .venv, proxy ->
  node_modules/.bin, single-user -> .venv-singleuser); an unmapped image leaves the container Waiting with reason
  ``ImageNotMapped``;
- command/args/env as a kubelet builds them: ``valueFrom`` secret/configMap/field/resource refs, ``envFrom``, the
  Service variables (``<SVC>_SERVICE_HOST``/``_PORT``...; ``KUBERNETES_SERVICE_HOST/PORT`` = the API server) and
  ``$(VAR)`` expansion. Pods share the host's network namespace here, so the wildcard address ``0.0.0.0`` in env
  values and arguments becomes the pod IP (a pod's own network namespace would make it mean that);
- volumes (configMap, secret, downwardAPI, projected ServiceAccount token + ca.crt + namespace, emptyDir,
  persistentVolumeClaim = the bound PV's hostPath directory, hostPath) are mounted at their mountPaths (with
  subPath and readOnly) in a private mount namespace per container, together with a per-pod /etc/hosts that
  resolves Service names. Missing parents (/usr/local/etc/jupyterhub, /srv/jupyterhub) are made on a tmpfs laid
  over the nearest existing directory inside that namespace (its entries bind-mounted back), so the host's
  /usr, /etc and /srv are never written;
- readiness/liveness probes (httpGet, tcpSocket) are run and reflected in the pod's status (Ready,
  ContainersReady, containerStatuses); kwok only sets the status of Pending pods, so the agent's patches stay;
- containers restart per restartPolicy with restartCount and back-off; their output goes to CRI-format log
  files served by kwok through a ``Logs`` object (``kubectl logs``); a ``PortForward`` object per pod makes
  ``kubectl port-forward`` reach the pod IP;
- Services: each gets a loopback address derived from its ClusterIP (127.<200+net>.c.d for ClusterIP a.b.c.d);
  the agent listens there on every Service port and forwards to a ready backing pod (Endpoints with loopback
  addresses are refused by the API server, so the agent selects pods itself). Names ``<svc>``,
  ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and ``<svc>.<ns>.svc.cluster.local`` resolve to it inside pods;
- a deleted pod's processes get SIGTERM, then SIGKILL after its grace period; on exit the agent stops them all.

    python -m ci.dev.node_agent [--namespace NS ...] [--kubeconfig PATH] [--workdir DIR] [--pod-net N]
                            [--leave KEY=VALUE ...]

Without --namespace it runs the pods of all namespaces (``make up``); the e2e tests run one per namespace.
``--leave`` leaves the pods with those labels to something else (ci/dev/stub_servers.py serves single-user pods for
the capacity tests and benchmarks while the agent runs the chart's hub and proxy).
"""

# A dev harness, not the hub: small local file writes (volumes, logs, hosts files) happen on the event loop.
# ruff: noqa: ASYNC230, ASYNC240
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import fnmatch
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent  # ci/dev
REPO = HERE.parents[1]
IMAGES_FILE = HERE / "node-agent" / "images.yaml"
log = logging.getLogger("node-agent")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- pure helpers (pod spec -> process)

@dataclass
class ImageEnv:
    """A local environment standing in for an image (one entry of ci/dev/node-agent/images.yaml)."""

    path: list[str]
    entrypoint: list[str]
    cmd: list[str]
    working_dir: str
    env: dict[str, str]
    dirs: list[str]


def load_images(path: Path = IMAGES_FILE) -> list[tuple[list[str], ImageEnv]]:
    entries = []
    for e in yaml.safe_load(path.read_text())["images"]:
        env = {k: str(v).replace("{repo}", str(REPO)) for k, v in (e.get("env") or {}).items()}
        entries.append((e["match"], ImageEnv(path=[str(REPO / p) for p in e.get("path", [])],
                                             entrypoint=e.get("entrypoint", []), cmd=e.get("cmd", []),
                                             working_dir=e.get("workingDir", "/"), env=env,
                                             dirs=e.get("dirs", []))))
    return entries


def map_image(image: str, images: list[tuple[list[str], ImageEnv]]) -> ImageEnv | None:
    return next((env for patterns, env in images if any(fnmatch.fnmatch(image, p) for p in patterns)), None)


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are replaced, ``$$`` is a literal ``$``."""
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def service_address(cluster_ip: str, pod_net: int) -> str | None:
    """The loopback address standing in for a ClusterIP: 127.<200+net>.c.d (None for headless Services)."""
    try:
        ip = ipaddress.IPv4Address(cluster_ip)
    except ValueError:
        return None
    c, d = ip.packed[2], ip.packed[3]
    return f"127.{200 + pod_net}.{c}.{d}"


def service_env(services: list[dict], pod_net: int) -> dict[str, str]:
    """The variables a kubelet injects for the Services of the pod's namespace (docker-links style too)."""
    env: dict[str, str] = {}
    for svc in services:
        host = service_address(svc["spec"].get("clusterIP", ""), pod_net)
        ports = svc["spec"].get("ports") or []
        if not host or not ports:
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = host
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            proto = p.get("protocol", "TCP")
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
            prefix = f"{name}_PORT_{p['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{host}:{p['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p["port"])
            env[f"{prefix}_ADDR"] = host
        env[f"{name}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{host}:{ports[0]['port']}"
    return env


def field_ref(pod: dict, path: str) -> str:
    """The value of a downward-API fieldRef (metadata.name, metadata.labels['x'], status.podIP, ...)."""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str(pod["metadata"].get(m.group(1), {}).get(m.group(2), ""))
    if path == "status.podIPs":
        return ",".join(p["ip"] for p in pod["status"].get("podIPs", []))
    obj: Any = pod
    for part in path.split("."):
        obj = obj.get(part, "") if isinstance(obj, dict) else ""
    if path == "spec.serviceAccountName" and not obj:
        return "default"
    return str(obj)


def hosts_file(pod: dict, services: list[dict], pod_net: int, own_namespace: str) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    ip = pod["status"].get("podIP")
    if ip:
        lines.append(f"{ip}\t{pod['spec'].get('hostname') or pod['metadata']['name']}")
    for svc in services:
        addr = service_address(svc["spec"].get("clusterIP", ""), pod_net)
        if not addr:
            continue
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
        if ns == own_namespace:
            names.insert(0, name)
        lines.append(f"{addr}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def pod_key(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_port(port: int | str, pod: dict) -> int | None:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
    return None


# ---------------------------------------------------------------- inside the mount namespace

_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 1, 32, 4096, 8192, 16384, 1 << 18
CLONE_NEWNS = 0x00020000


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} -> {target}: {os.strerror(err)}")


class MountNamespace:
    """Builds a container's file system view by bind mounts in a private mount namespace (called after unshare)."""

    def __init__(self) -> None:
        self.mounted: list[str] = []  # targets that are ours to write below

    def writable_below(self, path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.mounted)

    def shadow(self, directory: str) -> None:
        """Lay a tmpfs over ``directory`` carrying its entries (bind-mounted back), so new entries can be made."""
        stage = tempfile.mkdtemp(prefix="node-agent-shadow-")
        _mount("tmpfs", stage, "tmpfs", 0, "mode=755")
        for entry in os.scandir(directory):
            src, dst = entry.path, os.path.join(stage, entry.name)
            if entry.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            if entry.is_dir():
                os.mkdir(dst)
            else:
                open(dst, "w").close()
            _mount(src, dst, None, MS_BIND | MS_REC)
        _mount(stage, directory, None, MS_MOVE)
        self.mounted.append(directory)

    def ensure(self, path: str, is_dir: bool) -> None:
        if os.path.lexists(path):
            return
        parent = os.path.dirname(path.rstrip("/")) or "/"
        self.ensure(parent, True)
        if not self.writable_below(parent):
            self.shadow(parent)
        if is_dir:
            os.mkdir(path)
        else:
            open(path, "w").close()

    def bind(self, source: str, target: str, read_only: bool) -> None:
        self.ensure(target, os.path.isdir(source))
        _mount(source, target, None, MS_BIND | MS_REC)
        if read_only:
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        self.mounted.append(target)


def exec_container(spec_file: str) -> None:
    """``node_agent.py _exec SPEC``: set up the mount namespace from SPEC (JSON), then exec the container."""
    spec = json.loads(Path(spec_file).read_text())
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    ns = MountNamespace()
    for m in sorted(spec["mounts"], key=lambda m: m["target"].rstrip("/").count("/")):
        ns.bind(m["source"], m["target"].rstrip("/") or "/", m["readOnly"])
    for d in spec["dirs"]:
        ns.ensure(d, True)
    ns.ensure(spec["cwd"], True)
    os.chdir(spec["cwd"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


# ---------------------------------------------------------------- the agent

class ContainerError(Exception):
    """A container cannot be created; ``reason`` is the Waiting reason shown in its status."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Container:
    spec: dict
    restart_count: int = 0
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    ready: bool = False
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.spec["name"]


class PodWorker:
    """Runs one pod (by uid): volumes, containers, probes, status."""

    def __init__(self, agent: Agent, pod: dict):
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.dir = agent.workdir / "pods" / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.containers = [Container(c) for c in pod["spec"]["containers"]]
        self.init_containers = [Container(c) for c in pod["spec"].get("initContainers") or []]
        self.initialized = not self.init_containers
        self.mounts_cache: dict[str, str] | None = None
        self.task: asyncio.Task | None = None
        self.stopping = False
        self.status_dirty = asyncio.Event()
        self.posted: set[tuple[str, str]] = set()

    # ---- API helpers
    async def get(self, path: str) -> dict:
        return await self.agent.get(path)

    async def secret_data(self, name: str, optional: bool = False) -> dict[str, bytes]:
        try:
            s = await self.get(f"/api/v1/namespaces/{self.ns}/secrets/{name}")
        except LookupError:
            if optional:
                return {}
            raise ContainerError("CreateContainerConfigError", f'secret "{name}" not found') from None
        return {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}

    async def configmap_data(self, name: str, optional: bool = False) -> dict[str, bytes]:
        try:
            cm = await self.get(f"/api/v1/namespaces/{self.ns}/configmaps/{name}")
        except LookupError:
            if optional:
                return {}
            raise ContainerError("CreateContainerConfigError", f'configmap "{name}" not found') from None
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    async def event(self, reason: str, message: str) -> None:
        """A Warning Event on the pod, as a kubelet posts (once per distinct message)."""
        if (reason, message) in self.posted:
            return
        self.posted.add((reason, message))
        body = {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
                "metadata": {"generateName": f"{self.name}.", "namespace": self.ns},
                "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "namespace": self.ns,
                                   "uid": self.uid},
                "source": {"component": "kubelet", "host": self.pod["spec"].get("nodeName", "")},
                "firstTimestamp": now(), "lastTimestamp": now(), "count": 1}
        with contextlib.suppress(Exception):
            await self.agent.request("POST", f"/api/v1/namespaces/{self.ns}/events", body)

    # ---- volumes
    def write_files(self, target: Path, data: dict[str, bytes], items: list[dict] | None, mode: int) -> None:
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, rel, m in chosen:
            if key not in data:
                raise ContainerError("CreateContainerConfigError", f"key {key} not found")
            f = target / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data[key])
            f.chmod(m)

    async def volume_sources(self) -> dict[str, str]:
        """Materialize the pod's volumes; returns volume name -> host directory (or file)."""
        if self.mounts_cache is not None:
            return self.mounts_cache
        out: dict[str, str] = {}
        vdir = self.dir / "volumes"
        for v in self.pod["spec"].get("volumes") or []:
            name, target = v["name"], vdir / v["name"]
            if "configMap" in v:
                src = v["configMap"]
                data = await self.configmap_data(src["name"], src.get("optional", False))
                self.write_files(target, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "secret" in v:
                src = v["secret"]
                data = await self.secret_data(src["secretName"], src.get("optional", False))
                self.write_files(target, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
            elif "downwardAPI" in v:
                data = {i["path"]: field_ref(self.pod, i["fieldRef"]["fieldPath"]).encode()
                        for i in v["downwardAPI"].get("items", []) if "fieldRef" in i}
                self.write_files(target, data, None, v["downwardAPI"].get("defaultMode", 0o644))
            elif "projected" in v:
                data: dict[str, bytes] = {}
                for s in v["projected"].get("sources", []):
                    if "serviceAccountToken" in s:
                        data[s["serviceAccountToken"]["path"]] = (await self.token(s["serviceAccountToken"])).encode()
                    elif "configMap" in s:
                        cm = await self.configmap_data(s["configMap"]["name"], s["configMap"].get("optional", False))
                        for i in s["configMap"].get("items") or [{"key": k, "path": k} for k in cm]:
                            data[i["path"]] = cm[i["key"]]
                    elif "secret" in s:
                        sec = await self.secret_data(s["secret"]["name"], s["secret"].get("optional", False))
                        for i in s["secret"].get("items") or [{"key": k, "path": k} for k in sec]:
                            data[i["path"]] = sec[i["key"]]
                    elif "downwardAPI" in s:
                        for i in s["downwardAPI"].get("items", []):
                            if "fieldRef" in i:
                                data[i["path"]] = field_ref(self.pod, i["fieldRef"]["fieldPath"]).encode()
                self.write_files(target, data, None, v["projected"].get("defaultMode", 0o644))
            elif "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                try:
                    pvc = await self.get(f"/api/v1/namespaces/{self.ns}/persistentvolumeclaims/{claim}")
                except LookupError:
                    raise ContainerError("ContainerCreating", f'persistentvolumeclaim "{claim}" not found') from None
                pv_name = pvc["spec"].get("volumeName")
                if pvc.get("status", {}).get("phase") != "Bound" or not pv_name:
                    raise ContainerError("ContainerCreating", f'persistentvolumeclaim "{claim}" is not bound')
                pv = await self.get(f"/api/v1/persistentvolumes/{pv_name}")
                path = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path")
                if not path:
                    raise ContainerError("ContainerCreating", f"PV {pv_name} has no hostPath/local path")
                Path(path).mkdir(parents=True, exist_ok=True)  # the provisioner's own directory
                out[name] = path
                continue
            elif "hostPath" in v:
                path, kind = v["hostPath"]["path"], v["hostPath"].get("type", "")
                if os.path.exists(path):
                    out[name] = path
                    continue
                if kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and \
                        not self.agent.standin_host_paths:
                    what = {"Socket": "a socket file", "File": "a file", "Directory": "a directory"}.get(kind, kind)
                    raise ContainerError("FailedMount", f'MountVolume.SetUp failed for volume "{name}" : '
                                                        f"hostPath type check failed: {path} is not {what}")
                # "", DirectoryOrCreate, FileOrCreate: a kubelet would create it on the node; this agent never
                # writes outside its work directory, so the pod gets an empty private stand-in
                log.warning("%s/%s: hostPath %s does not exist: an empty stand-in is mounted", self.ns, self.name, path)
                if kind in ("FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
                else:
                    target.mkdir(parents=True, exist_ok=True)
            else:
                raise ContainerError("CreateContainerConfigError", f"volume {name}: unsupported volume type")
            out[name] = str(target)
        self.mounts_cache = out
        return out

    async def token(self, source: dict) -> str:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": source.get("expirationSeconds", 3607),
                         "audiences": [source["audience"]] if source.get("audience") else None,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}}
        res = await self.agent.request("POST", f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token", body)
        return res["status"]["token"]

    # ---- env and argv
    async def environment(self, c: dict, image: ImageEnv) -> dict[str, str]:
        env: dict[str, str] = {"PATH": ":".join([*image.path, os.environ.get("PATH", "/usr/bin:/bin")]),
                               "HOME": "/root", "HOSTNAME": self.pod["spec"].get("hostname") or self.name}
        env.update(image.env)
        env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = self.agent.apiserver
        env["KUBERNETES_SERVICE_PORT_HTTPS"] = env["KUBERNETES_SERVICE_PORT"]
        if self.pod["spec"].get("enableServiceLinks", True):
            env.update(service_env(self.agent.namespace_services(self.ns), self.agent.pod_net))
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref = src["configMapRef"]
                data = await self.configmap_data(ref["name"], ref.get("optional", False))
            else:
                data = await self.secret_data(src["secretRef"]["name"], src["secretRef"].get("optional", False))
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for e in c.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = expand(str(e.get("value", "")), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = field_ref(self.pod, vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                ref = vf.get("secretKeyRef") or vf["configMapKeyRef"]
                getter = self.secret_data if "secretKeyRef" in vf else self.configmap_data
                data = await getter(ref["name"], ref.get("optional", False))
                if ref["key"] in data:
                    env[e["name"]] = data[ref["key"]].decode()
                elif not ref.get("optional"):
                    raise ContainerError("CreateContainerConfigError",
                                         f"couldn't find key {ref['key']} in {ref['name']}")
            elif "resourceFieldRef" in vf:
                res, section = vf["resourceFieldRef"]["resource"], "limits"
                if "." in res:
                    section, res = res.split(".", 1)
                env[e["name"]] = str((c.get("resources") or {}).get(section, {}).get(res, "0"))
        ip = self.pod["status"]["podIP"]
        return {k: v.replace("0.0.0.0", ip) for k, v in env.items()}

    def argv(self, c: dict, image: ImageEnv, env: dict[str, str]) -> list[str]:
        command = c.get("command") or image.entrypoint
        args = c.get("args") if c.get("args") is not None or c.get("command") else image.cmd
        argv = [expand(a, env).replace("0.0.0.0", self.pod["status"]["podIP"]) for a in [*command, *(args or [])]]
        if not argv:
            raise ContainerError("CreateContainerConfigError", "no command (neither in the pod nor the image map)")
        if "/" not in argv[0] or not os.path.exists(argv[0]):
            exe = shutil.which(os.path.basename(argv[0]), path=env["PATH"])
            if not exe:
                raise ContainerError("CreateContainerError", f"{argv[0]}: not found in {image.path}")
            argv[0] = exe
        return argv

    async def exec_spec(self, c: dict) -> tuple[dict, ImageEnv]:
        image = map_image(c.get("image", ""), self.agent.images)
        if image is None:
            raise ContainerError("ImageNotMapped", f"no local environment for image {c.get('image')!r} "
                                                   f"(add it to ci/dev/node-agent/images.yaml)")
        sources = await self.volume_sources()
        env = await self.environment(c, image)
        mounts = []
        for m in c.get("volumeMounts") or []:
            if m["name"] not in sources:
                raise ContainerError("CreateContainerConfigError", f"volume {m['name']} not found")
            src = sources[m["name"]]
            if m.get("subPath"):
                src = os.path.join(src, expand(m["subPath"], env))
                if not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
            mounts.append({"source": src, "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
        hosts = self.dir / "hosts"
        if not any(m["target"] == "/etc/hosts" for m in mounts):
            hosts.write_text(hosts_file(self.pod, self.agent.visible_services(self.ns), self.agent.pod_net, self.ns))
            mounts.append({"source": str(hosts), "target": "/etc/hosts", "readOnly": True})
        spec = {"mounts": mounts, "dirs": image.dirs, "cwd": c.get("workingDir") or image.working_dir,
                "argv": self.argv(c, image, env), "env": env}
        return spec, image

    # ---- running
    async def start_process(self, c: Container) -> asyncio.subprocess.Process:
        spec, _ = await self.exec_spec(c.spec)
        spec_file = self.dir / f"{c.name}.json"
        spec_file.write_text(json.dumps(spec))
        spec_file.chmod(0o600)
        log.info("%s/%s: starting %s: %s", self.ns, self.name, c.name, " ".join(spec["argv"]))
        return await asyncio.create_subprocess_exec(
            sys.executable, __file__, "_exec", str(spec_file), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)

    def log_file(self, c: Container) -> Path:
        return self.dir / "logs" / f"{c.name}.log"

    async def pump(self, stream: asyncio.StreamReader, name: str, out: Any) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            tag = "F" if line.endswith(b"\n") else "P"
            out.write(f"{ts} {name} {tag} ".encode() + line.rstrip(b"\n") + b"\n")
            out.flush()

    async def run_once(self, c: Container) -> int:
        """Start the container, wait for it to exit; returns the exit code (raises ContainerError)."""
        c.proc = await self.start_process(c)
        c.state = {"running": {"startedAt": now()}}
        c.ready = not c.spec.get("readinessProbe")
        self.status_dirty.set()
        logf = self.log_file(c)
        logf.parent.mkdir(parents=True, exist_ok=True)
        if logf.exists() and logf.stat().st_size:
            os.replace(logf, logf.with_suffix(".previous.log"))
        probes = [asyncio.create_task(self.probe_loop(c, kind)) for kind in ("readinessProbe", "livenessProbe")
                  if c.spec.get(kind)]
        with open(logf, "ab") as out:
            assert c.proc.stdout and c.proc.stderr
            await asyncio.gather(self.pump(c.proc.stdout, "stdout", out), self.pump(c.proc.stderr, "stderr", out))
            code = await c.proc.wait()
        for p in probes:
            p.cancel()
        c.ready = False
        c.last_state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                       "startedAt": c.state.get("running", {}).get("startedAt", now()),
                                       "finishedAt": now()}}
        c.state = dict(c.last_state)
        self.status_dirty.set()
        log.info("%s/%s: %s exited with %s", self.ns, self.name, c.name, code)
        return code

    async def supervise(self, c: Container, init: bool = False) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        backoff = 1.0
        while not self.stopping:
            try:
                code = await self.run_once(c)
            except ContainerError as e:
                c.state = {"waiting": {"reason": "ContainerCreating" if e.reason == "FailedMount" else e.reason,
                                       "message": str(e)}}
                c.ready = False
                self.status_dirty.set()
                log.warning("%s/%s: %s: %s: %s", self.ns, self.name, c.name, e.reason, e)
                await self.event(e.reason, str(e))
                self.mounts_cache = None  # volumes may appear (claims bound, secrets created)
                await asyncio.sleep(backoff if e.reason != "ImageNotMapped" else 30)
                backoff = min(backoff * 2, 20)
                continue
            if self.stopping:
                return
            if init and code == 0:
                return
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                if not init:
                    return
            c.restart_count += 1
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off {backoff:.0f}s restarting failed container"}}
            self.status_dirty.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 20)

    async def probe_once(self, probe: dict) -> bool:
        ip = self.pod["status"]["podIP"]
        timeout = probe.get("timeoutSeconds", 1)
        try:
            if "httpGet" in probe:
                g = probe["httpGet"]
                port = resolve_port(g["port"], self.pod)
                reader, writer = await asyncio.wait_for(asyncio.open_connection(g.get("host") or ip, port), timeout)
                try:
                    writer.write(f"GET {g.get('path', '/')} HTTP/1.0\r\nHost: {ip}:{port}\r\n"
                                 f"User-Agent: kube-probe/1.34\r\n\r\n".encode())
                    await writer.drain()
                    status = await asyncio.wait_for(reader.readline(), timeout)
                finally:
                    writer.close()
                parts = status.split()
                return len(parts) > 1 and 200 <= int(parts[1]) < 400
            if "tcpSocket" in probe:
                port = resolve_port(probe["tcpSocket"]["port"], self.pod)
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
                writer.close()
                return True
        except (TimeoutError, OSError, ValueError):
            return False
        return True  # exec/grpc probes are not run: counted as passing

    async def probe_loop(self, c: Container, kind: str) -> None:
        probe = c.spec[kind]
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        fails = succ = 0
        while True:
            ok = await self.probe_once(probe)
            fails, succ = (0, succ + 1) if ok else (fails + 1, 0)
            if kind == "readinessProbe":
                ready = (c.ready or succ >= probe.get("successThreshold", 1)) \
                    and fails < probe.get("failureThreshold", 3)
                if ready != c.ready:
                    c.ready = ready
                    self.status_dirty.set()
            elif fails >= probe.get("failureThreshold", 3) and c.proc and c.proc.returncode is None:
                log.warning("%s/%s: %s failed its liveness probe: restarting", self.ns, self.name, c.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGTERM)
                return
            await asyncio.sleep(probe.get("periodSeconds", 10) if (c.ready or kind != "readinessProbe")
                                else min(1, probe.get("periodSeconds", 10)))

    async def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        status_task = asyncio.create_task(self.status_loop())
        try:
            await self.publish_debug_objects()
            for c in self.init_containers:
                await self.supervise(c, init=True)
            self.initialized = True
            self.status_dirty.set()
            for c in self.containers:
                c.task = asyncio.create_task(self.supervise(c))
            await asyncio.gather(*(c.task for c in self.containers if c.task))
            self.status_dirty.set()
            await asyncio.sleep(3600 * 24 * 365)
        finally:
            status_task.cancel()

    # ---- status
    def container_status(self, c: Container) -> dict:
        st = {"name": c.name, "image": c.spec.get("image", ""), "imageID": "", "ready": c.ready,
              "restartCount": c.restart_count, "started": "running" in c.state, "state": c.state,
              "containerID": f"node-agent://{c.proc.pid}" if c.proc else None}
        if c.last_state:
            st["lastState"] = c.last_state
        return st

    def status_patch(self) -> dict:
        t = now()
        all_ready = self.initialized and all(c.ready for c in self.containers)

        def cond(kind: str, ok: bool) -> dict:
            return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": t}

        conditions = [cond("Initialized", self.initialized), cond("ContainersReady", all_ready),
                      cond("Ready", all_ready)]
        status: dict[str, Any] = {"conditions": conditions,
                                  "containerStatuses": [self.container_status(c) for c in self.containers]}
        if self.init_containers:
            status["initContainerStatuses"] = [self.container_status(c) for c in self.init_containers]
        codes = [c.state.get("terminated", {}).get("exitCode") for c in self.containers]
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy != "Always" and all(code is not None for code in codes) and self.containers:
            status["phase"] = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        return {"status": status}

    async def status_loop(self) -> None:
        last = None
        while True:
            await self.status_dirty.wait()
            self.status_dirty.clear()
            patch = self.status_patch()
            # only transitions matter: keep lastTransitionTime stable across equal patches
            key = json.dumps([[c["type"], c["status"]] for c in patch["status"]["conditions"]]) + json.dumps(
                [[s["ready"], s["restartCount"], s["state"].get("waiting", {}).get("reason"), list(s["state"])]
                 for s in patch["status"]["containerStatuses"]])
            if key != last:
                try:
                    await self.agent.request(
                        "PATCH", f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status", patch,
                        content_type="application/strategic-merge-patch+json")
                    last = key
                except LookupError:
                    return
                except Exception as e:
                    log.warning("%s/%s: status patch failed: %s", self.ns, self.name, e)
                    await asyncio.sleep(1)
                    self.status_dirty.set()
            await asyncio.sleep(0.2)

    async def publish_debug_objects(self) -> None:
        """kwok's Logs and PortForward objects for this pod (owned by it, so they go with it)."""
        owner = [{"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}]
        meta = {"name": self.name, "namespace": self.ns, "ownerReferences": owner}
        logs = [{"containers": [c.name], "logsFile": str(self.log_file(c)),
                 "previousLogsFile": str(self.log_file(c).with_suffix(".previous.log")), "follow": True}
                for c in [*self.init_containers, *self.containers]]
        ports = sorted({int(p["containerPort"]) for c in self.pod["spec"]["containers"] for p in c.get("ports") or []})
        forwards = [{"ports": [p], "target": {"port": p, "address": self.pod["status"]["podIP"]}} for p in ports]
        for kind, plural, spec in (("Logs", "logs", {"logs": logs}), ("PortForward", "portforwards",
                                                                         {"forwards": forwards})):
            body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}
            try:
                await self.agent.request("POST", f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{self.ns}/{plural}", body)
            except Exception as e:
                if "AlreadyExists" not in str(e):
                    log.warning("%s/%s: could not create %s: %s", self.ns, self.name, kind, e)

    async def stop(self, grace: float) -> None:
        """SIGTERM every container's process group, SIGKILL what is left after ``grace`` seconds."""
        self.stopping = True
        procs = [c.proc for c in [*self.init_containers, *self.containers] if c.proc and c.proc.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                pass
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


class ServiceForwarder:
    """kube-proxy's part for one Service: listen on its loopback address, forward to a ready backing pod."""

    def __init__(self, agent: Agent, svc: dict, address: str):
        self.agent, self.svc, self.address = agent, svc, address
        self.servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        for p in self.svc["spec"].get("ports") or []:
            if p.get("protocol", "TCP") != "TCP":
                continue
            try:
                server = await asyncio.start_server(
                    lambda r, w, p=p: self.handle(r, w, p), self.address, p["port"])
                self.servers.append(server)
            except OSError as e:
                log.warning("service %s/%s: cannot listen on %s:%s: %s", self.svc["metadata"]["namespace"],
                            self.svc["metadata"]["name"], self.address, p["port"], e)

    def backend(self, port: dict) -> tuple[str, int] | None:
        ns = self.svc["metadata"]["namespace"]
        selector = self.svc["spec"].get("selector") or {}
        for pod in self.agent.ready_pods(ns):
            if selects(selector, pod["metadata"].get("labels") or {}):
                target = resolve_port(port.get("targetPort", port["port"]), pod)
                if target:
                    return pod["status"]["podIP"], target
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: dict) -> None:
        target = self.backend(port)
        if target is None:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def stop(self) -> None:
        for s in self.servers:
            s.close()
        self.servers = []


class Agent:
    def __init__(self, namespaces: list[str], workdir: Path, pod_net: int, kubeconfig: str | None,
                 standin_host_paths: bool = False, leave: dict[str, str] | None = None):
        self.namespaces = namespaces
        self.standin_host_paths = standin_host_paths
        self.leave = leave or {}
        self.workdir = workdir
        self.pod_net = pod_net
        self.kubeconfig = kubeconfig
        self.images = load_images()
        self.pods: dict[str, dict] = {}  # uid -> latest pod object
        self.workers: dict[str, PodWorker] = {}  # uid -> worker
        self.services: dict[str, dict] = {}  # ns/name -> service
        self.forwarders: dict[str, ServiceForwarder] = {}
        self.apiserver = ("127.0.0.1", "443")
        self.api: Any = None
        self.stopping: set[asyncio.Task] = set()

    # ---- raw API access (the agent is the node: it uses the admin kubeconfig, like a kubelet's node identity)
    async def request(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> dict:
        headers = {"Content-Type": content_type or "application/json", "Accept": "application/json"}
        resp = await self.api.call_api(path, method, header_params=headers, body=body,
                                       auth_settings=["BearerToken"], _preload_content=False, _request_timeout=30)
        text = await resp.read()
        if resp.status == 404:
            raise LookupError(path)
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {text[:500]!r}")
        return json.loads(text)

    async def get(self, path: str) -> dict:
        return await self.request("GET", path)

    def namespace_services(self, ns: str) -> list[dict]:
        return [s for k, s in sorted(self.services.items()) if s["metadata"]["namespace"] == ns]

    def visible_services(self, ns: str) -> list[dict]:
        return [s for _, s in sorted(self.services.items())]

    def ready_pods(self, ns: str) -> list[dict]:
        out = []
        for uid, w in self.workers.items():
            pod = self.pods.get(uid)
            if pod and pod["metadata"]["namespace"] == ns and all(c.ready for c in w.containers) \
                    and not pod["metadata"].get("deletionTimestamp"):
                out.append(pod)
        return out

    # ---- pods
    def runnable(self, pod: dict) -> bool:
        st = pod.get("status") or {}
        return bool(pod["spec"].get("nodeName") and st.get("podIP") and st.get("phase") == "Running"
                    and not pod["metadata"].get("deletionTimestamp")
                    and not selects(self.leave, pod["metadata"].get("labels") or {}))

    async def on_pod(self, kind: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.pods.pop(uid, None)
            worker = self.workers.pop(uid, None)
            if worker:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                if pod["metadata"].get("deletionGracePeriodSeconds") is not None:
                    grace = pod["metadata"]["deletionGracePeriodSeconds"]
                log.info("%s: deleted: stopping (grace %ss)", pod_key(pod), grace)
                task = asyncio.create_task(worker.stop(min(float(grace), 30.0)))
                self.stopping.add(task)
                task.add_done_callback(self.stopping.discard)
            return
        self.pods[uid] = pod
        if uid not in self.workers and self.runnable(pod):
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.task = asyncio.create_task(worker.run())
        elif uid in self.workers:
            self.workers[uid].pod = pod

    async def on_service(self, kind: str, svc: dict) -> None:
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        old = self.forwarders.pop(key, None)
        if old:
            await old.stop()
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = svc
            addr = service_address(svc["spec"].get("clusterIP", ""), self.pod_net)
            if addr and svc["spec"].get("selector"):
                fwd = ServiceForwarder(self, svc, addr)
                await fwd.start()
                self.forwarders[key] = fwd
        for w in self.workers.values():  # names of new Services resolve in running pods too
            hosts = w.dir / "hosts"
            if hosts.exists() and w.pod["status"].get("podIP"):
                with open(hosts, "r+") as f:  # in place: the file is bind-mounted by inode
                    f.truncate(0)
                    f.write(hosts_file(w.pod, self.visible_services(w.ns), self.pod_net, w.ns))

    async def watch(self, plural: str, handler: Any) -> None:
        """List + watch ``plural`` (pods/services) in our namespaces, forever, calling handler(type, obj)."""
        paths = [f"/api/v1/namespaces/{ns}/{plural}" for ns in self.namespaces] or [f"/api/v1/{plural}"]

        async def one(path: str) -> None:
            while True:
                try:
                    listing = await self.get(path)
                    for obj in listing["items"]:
                        await handler("ADDED", obj)
                    rv = listing["metadata"]["resourceVersion"]
                    seen = {o["metadata"]["uid"] for o in listing["items"]}
                    if plural == "pods":
                        for uid in [u for u, p in self.pods.items() if path.endswith("/pods") and u not in seen
                                    and (not self.namespaces or p["metadata"]["namespace"] in self.namespaces)]:
                            await handler("DELETED", self.pods[uid])
                    resp = await self.api.call_api(
                        path, "GET", query_params=[("watch", "true"), ("resourceVersion", rv),
                                                   ("allowWatchBookmarks", "true"), ("timeoutSeconds", "300")],
                        header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                        _preload_content=False, _request_timeout=330)
                    if resp.status != 200:
                        raise RuntimeError(f"watch answered {resp.status}: {(await resp.read())[:300]!r}")
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            await handler(event["type"], event["object"])
                        elif event["type"] == "ERROR":
                            break
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("watch %s: %s; relisting", path, e)
                    await asyncio.sleep(1)

        await asyncio.gather(*(one(p) for p in paths))

    async def run(self) -> None:
        from kubernetes_asyncio import client, config
        await config.load_kube_config(self.kubeconfig)
        async with client.ApiClient() as api:
            self.api = api
            host = api.configuration.host.split("://", 1)[1].rstrip("/")
            self.apiserver = tuple(host.rsplit(":", 1)) if ":" in host else (host, "443")
            try:
                await asyncio.gather(self.watch("services", self.on_service), self.watch("pods", self.on_pod))
            finally:
                await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.stop(5) for w in self.workers.values()), return_exceptions=True)
        self.workers.clear()
        for f in self.forwarders.values():
            await f.stop()


def private_workdir(workdir: Path) -> None:
    """Secrets and ServiceAccount tokens are written below the work directory: nobody but its owner may read
    them (``umask 077`` for everything the agent writes, the directory itself ``0700``)."""
    os.umask(0o077)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", action="append", default=[], help="only these namespaces (repeatable)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--workdir", type=Path, default=Path.cwd() / "node-agent")
    parser.add_argument("--pod-net", type=int, default=int(os.environ.get("JHDS_POD_NET", "1")),
                        help="the cluster's JHDS_POD_NET (Service addresses are 127.<200+net>.x.y)")
    parser.add_argument("--standin-host-paths", action="store_true",
                        help="mount an empty stand-in for a missing typed hostPath (e.g. the Docker socket on a "
                             "machine without Docker) instead of failing the pod as a kubelet does")
    parser.add_argument("--leave", action="append", default=[], metavar="KEY=VALUE",
                        help="run no pod with these labels (another process serves them)")
    opts = parser.parse_args(argv)
    private_workdir(opts.workdir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node-agent %(message)s", stream=sys.stderr)
    leave = dict(label.split("=", 1) for label in opts.leave)
    agent = Agent(opts.namespace, opts.workdir.resolve(), opts.pod_net, opts.kubeconfig, opts.standin_host_paths,
                  leave)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    task = asyncio.create_task(agent.run())
    await asyncio.wait([task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await agent.shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_exec":
        exec_container(sys.argv[2])
    else:
        asyncio.run(main())
