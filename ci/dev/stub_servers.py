"""Stub single-user servers for benchmarks and scale tests: one process standing in for every server.

kwok marks pods Running and gives them loopback IPs (127.<net>.x.y) but runs nothing; the real node runs real
servers, but a real ``jupyterhub-singleuser`` takes ~100 MB, so 1,000 of them do not fit.
Instead, ONE asyncio process (:class:`StubServers`) watches a namespace's single-user pods and listens on every
Running pod's IP:port, answering what the hub and our features call under the pod's ``JUPYTERHUB_SERVICE_PREFIX``:
the prefix itself and anything below it (JupyterHub's start waits for an HTTP answer at the server URL; the
``X-JupyterHub-Version`` header is set so the hub's version check is quiet), ``{prefix}api`` (``{"version"}``),
``{prefix}api/status`` (``started``, ``last_activity``, ``connections``, ``kernels``), and ``POST {prefix}
jupyterlab-notifications-extension/ingest``, which records each delivery (server, Authorization header).
``GET /stats`` on ``127.0.0.1:--stats-port`` returns the counts (``servers``, ``deliveries``, ``distinct``,
``authorization``, ``requests``); ``POST /stats/reset`` clears them. What stubs do NOT do: run kernels, report
activity to the hub, check tokens. Benchmarks that use them say so next to every figure. Never run the node
agent on the same namespace.

    python -m ci.dev.stub_servers --namespace NS [--stats-port N] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

from aiohttp import web
from kubernetes_asyncio import client, config, watch

log = logging.getLogger("stub-servers")
SELECTOR = "component=singleuser-server"


JUPYTERHUB_VERSION = "5.5.0"  # what the stubs claim to run (requirements/hub-image.txt's pin)
INGEST = "jupyterlab-notifications-extension/ingest"


def _iso(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


class StubServers:
    """One aiohttp app, one listening socket per Running pod, answering as that pod's single-user server."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.sites: dict[str, tuple[str, web.TCPSite, str]] = {}  # pod name -> (uid, site, prefix)
        self.started: dict[str, float] = {}  # prefix -> start time
        self.deliveries: list[tuple[str, str]] = []  # (prefix, Authorization header)
        self.requests = 0

    async def setup(self) -> None:
        await self.runner.setup()

    def prefix_of(self, path: str) -> str | None:
        # prefixes look like /user/<name>/ or /user/<name>/<server>/: the longest match wins
        parts = path.split("/")
        for n in (4, 3):
            candidate = "/".join(parts[:n]) + "/"
            if candidate in self.started:
                return candidate
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        headers = {"X-JupyterHub-Version": JUPYTERHUB_VERSION}
        prefix = self.prefix_of(request.path)
        if prefix is None:
            return web.json_response({"message": f"no stub server at {request.path}"}, status=404, headers=headers)
        rest = request.path[len(prefix):]
        if rest == INGEST and request.method == "POST":
            await request.read()
            self.deliveries.append((prefix, request.headers.get("Authorization", "")))
            return web.json_response({"success": True}, headers=headers)
        if rest.rstrip("/") == "api":
            return web.json_response({"version": "2.14.2"}, headers=headers)
        if rest.rstrip("/") == "api/status":
            started = _iso(self.started[prefix])
            return web.json_response({"started": started, "last_activity": started, "connections": 0,
                                      "kernels": 0}, headers=headers)
        return web.Response(text="jupyterhub-ds stub single-user server\n", headers=headers)

    async def start(self, pod: dict) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        if name in self.sites and self.sites[name][0] == uid:
            return
        await self.stop(name)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        env = {e["name"]: str(e.get("value", "")) for e in container.get("env", []) if "valueFrom" not in e}
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        ip = pod["status"]["podIP"]
        port = next((p["containerPort"] for p in container.get("ports", [])), 8888)
        site = web.TCPSite(self.runner, ip, port, backlog=512, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            log.warning("stub %s: cannot listen on %s:%s: %s", name, ip, port, e)
            return
        self.sites[name] = (uid, site, prefix)
        self.started[prefix] = time.time()
        log.info("stub %s on http://%s:%s%s", name, ip, port, prefix)

    async def stop(self, name: str, uid: str | None = None) -> None:
        entry = self.sites.get(name)
        if entry is None or (uid is not None and entry[0] != uid):
            return
        del self.sites[name]
        self.started.pop(entry[2], None)
        await entry[1].stop()

    async def handle_event(self, event_type: str, pod: dict) -> None:
        if event_type == "DELETED" or not _running(pod):
            await self.stop(pod["metadata"]["name"], pod["metadata"].get("uid"))
        else:
            await self.start(pod)

    def stats(self) -> dict:
        return {"servers": len(self.sites), "deliveries": len(self.deliveries),
                "distinct": len({p for p, _ in self.deliveries}),
                "authorization": sorted({a for _, a in self.deliveries}), "requests": self.requests}

    async def serve_stats(self, port: int) -> None:
        async def stats(request: web.Request) -> web.Response:
            return web.json_response(self.stats())

        async def reset(request: web.Request) -> web.Response:
            self.deliveries.clear()
            self.requests = 0
            return web.json_response(self.stats())

        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/stats/reset", reset)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()


def _running(pod: dict) -> bool:
    return bool(pod.get("status", {}).get("phase") == "Running" and pod["status"].get("podIP")
                and not pod["metadata"].get("deletionTimestamp"))


async def run_stubs(api: client.CoreV1Api, namespace: str, stubs: StubServers) -> None:
    """List and watch the namespace's single-user pods and keep a stub on each Running one."""
    while True:
        pods = await api.list_namespaced_pod(namespace, label_selector=SELECTOR, _preload_content=False)
        raw = json.loads(await pods.read())
        live = set()
        for pod in raw["items"]:
            live.add(pod["metadata"]["name"])
            await stubs.handle_event("ADDED", pod)
        for gone in set(stubs.sites) - live:
            await stubs.stop(gone)
        w = watch.Watch()
        try:
            async for event in w.stream(api.list_namespaced_pod, namespace, label_selector=SELECTOR,
                                        resource_version=raw["metadata"]["resourceVersion"],
                                        timeout_seconds=300, _preload_content=False):
                await stubs.handle_event(event["type"], event["raw_object"])
        except client.ApiException as e:
            if e.status != 410:
                raise
        finally:
            w.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--stats-port", type=int, default=0, help="127.0.0.1 port of GET /stats")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stub-servers %(message)s", stream=sys.stderr)
    await config.load_kube_config(opts.kubeconfig)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    stubs = StubServers()
    await stubs.setup()
    if opts.stats_port:
        await stubs.serve_stats(opts.stats_port)
    async with client.ApiClient() as api_client:
        task = asyncio.create_task(run_stubs(client.CoreV1Api(api_client), opts.namespace, stubs))
        await asyncio.wait([task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        await stubs.runner.cleanup()
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()


if __name__ == "__main__":
    asyncio.run(main())
