"""Play the kubelet for single-user pods on the local (kwok) control plane.

kwok marks pods Running and gives them loopback IPs (127.<net>.x.y) but runs nothing. This runner
watches singleuser pods; when one is Running it starts a real ``jupyterhub-singleuser`` (from the
singleuser venv, with ``jupyterlab-notifications-extension``) on the pod's IP and port with the
pod's environment, and stops it when the pod goes away. The server's output is also written in the CRI
log format, and a kwok ``Logs`` object points the API server's ``pods/log`` of the pod's notebook container
at it, so ``kubectl logs`` (and the hub's dashboard) read the real server's log. Test and dev harness only.

    python ci/pod_runner.py --namespace NS --singleuser-bin DIR [--kubeconfig PATH] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from kubernetes_asyncio import client, config, watch

log = logging.getLogger("pod-runner")
SELECTOR = "component=singleuser-server"


def pump(src, raw_path: Path, cri_path: Path) -> None:
    """Copy a server's output to its plain log and, as the kubelet writes it (CRI format), to the container log."""
    with open(raw_path, "ab") as raw, open(cri_path, "ab") as cri:
        for line in iter(src.readline, b""):
            raw.write(line)
            raw.flush()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z").encode()
            cri.write(stamp + b" stdout F " + line.rstrip(b"\n") + b"\n")
            cri.flush()


class Runner:
    def __init__(self, namespace: str, singleuser_bin: Path, workdir: Path):
        self.custom: client.CustomObjectsApi | None = None  # for kwok's Logs objects
        self.tasks: set[asyncio.Future] = set()
        self.namespace = namespace
        self.singleuser_bin = singleuser_bin
        self.workdir = workdir
        self.procs: dict[str, tuple[str, subprocess.Popen]] = {}  # pod name -> (uid, process)

    def command(self, pod: dict) -> tuple[list[str], dict[str, str], Path]:
        """The pod's notebook command and env, pointed at the pod IP and the singleuser venv."""
        spec = pod["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "notebook")
        env = {e["name"]: str(e.get("value", "")) for e in container.get("env", []) if "valueFrom" not in e}
        ip = pod["status"]["podIP"]
        port = next((p["containerPort"] for p in container.get("ports", [])), 8888)
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        env["JUPYTERHUB_SERVICE_URL"] = f"http://{ip}:{port}{prefix}"
        home = self.workdir / pod["metadata"]["name"]
        home.mkdir(parents=True, exist_ok=True)
        env.update({
            "HOME": str(home),
            "PATH": f"{self.singleuser_bin}:{os.environ.get('PATH', '')}",
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".runtime"),
        })
        args = container.get("args") or []
        cmd = container.get("command") or []
        argv = [*cmd, *args] or ["jupyterhub-singleuser"]
        exe = self.singleuser_bin / Path(argv[0]).name
        # the harness runs as root where the real pod runs as uid 1000
        return [str(exe), *argv[1:], f"--ServerApp.root_dir={home}", "--allow-root"], env, home

    def start(self, pod: dict) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        if name in self.procs and self.procs[name][0] == uid and self.procs[name][1].poll() is None:
            return
        self.stop(name)
        argv, env, home = self.command(pod)
        log.info("starting %s on %s: %s", name, env["JUPYTERHUB_SERVICE_URL"], " ".join(argv))
        proc = subprocess.Popen(argv, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = (uid, proc)
        threading.Thread(target=pump, args=(proc.stdout, home / "server.log", home / "container.log"),
                         daemon=True).start()
        if self.custom is not None:
            task = asyncio.ensure_future(self.publish_logs(name, home / "container.log"))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def publish_logs(self, pod: str, path: Path) -> None:
        """Point kwok's ``pods/log`` of the notebook container at the server's CRI-format log."""
        body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs", "metadata": {"name": pod},
                "spec": {"logs": [{"containers": ["notebook"], "logsFile": str(path), "follow": False}]}}
        try:
            try:
                await self.custom.create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", self.namespace,
                                                                  "logs", body)
            except client.ApiException as e:
                if e.status != 409:
                    raise
                current = await self.custom.get_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1",
                                                                         self.namespace, "logs", pod)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.custom.replace_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", self.namespace,
                                                                   "logs", pod, body)
        except Exception as e:  # logs are a convenience: never stop the runner for them
            log.warning("could not publish the log of %s: %s", pod, e)

    def stop(self, name: str, uid: str | None = None) -> None:
        """Stop the pod's server; with ``uid``, only if it belongs to that pod (not a newer one of the same name)."""
        entry = self.procs.get(name)
        if entry is None or (uid is not None and entry[0] != uid):
            return
        del self.procs[name]
        proc = entry[1]
        if proc.poll() is None:
            log.info("stopping %s", name)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def handle(self, event_type: str, pod: dict) -> None:
        name = pod["metadata"]["name"]
        running = (pod.get("status", {}).get("phase") == "Running" and pod["status"].get("podIP")
                   and not pod["metadata"].get("deletionTimestamp"))
        if event_type == "DELETED" or not running:
            # a late event of a pod that a quick stop-then-start replaced must not stop the new server
            self.stop(name, pod["metadata"].get("uid"))
        else:
            self.start(pod)

    async def run(self, api: client.CoreV1Api) -> None:
        while True:
            pods = await api.list_namespaced_pod(self.namespace, label_selector=SELECTOR)
            raw = api.api_client.sanitize_for_serialization(pods)
            live = set()
            for pod in raw["items"]:
                live.add(pod["metadata"]["name"])
                self.handle("ADDED", pod)
            for gone in set(self.procs) - live:
                self.stop(gone)
            w = watch.Watch()
            try:
                async for event in w.stream(api.list_namespaced_pod, self.namespace, label_selector=SELECTOR,
                                            resource_version=raw["metadata"]["resourceVersion"],
                                            timeout_seconds=300, _preload_content=False):
                    obj = event["raw_object"]
                    self.handle(event["type"], obj)
            except client.ApiException as e:
                if e.status != 410:  # resource version too old: relist
                    raise
            finally:
                w.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--singleuser-bin", required=True, type=Path)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--workdir", type=Path, default=Path.cwd() / "pods")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pod-runner %(message)s", stream=sys.stderr)
    await config.load_kube_config(opts.kubeconfig)
    runner = Runner(opts.namespace, opts.singleuser_bin.resolve(), opts.workdir.resolve())
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with client.ApiClient() as api_client:
        runner.custom = client.CustomObjectsApi(api_client)
        task = asyncio.create_task(runner.run(client.CoreV1Api(api_client)))
        await asyncio.wait([task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        for name in list(runner.procs):
            runner.stop(name)
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()


if __name__ == "__main__":
    asyncio.run(main())
