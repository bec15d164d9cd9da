"""A hub with 1,000 running servers on the local control plane, for the benchmarks (not a benchmark itself).

What is real: the control plane (kube-apiserver, scheduler, kwok nodes and pods, metrics-server), JupyterHub
with our extensions and configurable-http-proxy, KubeSpawner's spawn path (a pod per server, the hub polls
each server URL until it answers, a proxy route per server). What stands in: the single-user servers are
STUBS (``ci/dev/stub_servers.py``: one asyncio process answering on every pod IP, see its docstring), and
the pods' CPU/memory usage comes from kwok usage annotations (``kwok.x-k8s.io/usage-cpu``/``-memory``,
``ci/dev/cluster/kwok/usage-from-annotation.yaml``), varied per pod by a ``modify_pod_hook``.

Ten extra kwok nodes (``fleet-0`` .. ``fleet-9``, 110 pods each, pod CIDRs ``127.<net>.20x.0/24``) hold the
pods; requests are small (10m / 32Mi) so scheduling is never the limit. The hub runs a loop-lag probe
(:data:`PROBE`, a bench-only handler at ``/hub/api/bench/loop-lag``: the longest event-loop stall since the
last read, measured by a 10 ms ticker inside the hub process).

    python -m ci.bench._fleet up [--users 1000]   # leaves it running; prints the state file
    python -m ci.bench._fleet down

The benchmarks call :func:`fleet` (``with fleet(1000) as f: ...``), which reuses a fleet left up by
``_fleet.py up`` (state in the cache) or brings one up and down around the run. The cluster is
``$JHDS_CLUSTER`` (default ``bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("JHDS_CLUSTER", "bench")
# stub servers on kwok's nodes stand in for the fleet: the bench cluster has no real node (one per machine)
os.environ.setdefault("JHDS_NODE", "0")
REPO = Path(__file__).resolve().parents[2]

import aiohttp  # noqa: E402

from ci.dev import devenv  # noqa: E402  (after JHDS_CLUSTER is set)

NODES = 10
FLEET_LABEL = "jupyterhub-ds/bench"
USAGE_HOOK = '''
def _bench_usage(spawner, pod):
    """Vary the kwok usage annotations per user (deterministic): 5-500m CPU, 50-800Mi memory."""
    n = sum(map(ord, spawner.user.name))
    pod.metadata.annotations = {**(pod.metadata.annotations or {}),
                                "kwok.x-k8s.io/usage-cpu": f"{5 + n * 37 % 496}m",
                                "kwok.x-k8s.io/usage-memory": f"{50 + n * 53 % 751}Mi"}
    return pod

c.KubeSpawner.modify_pod_hook = _bench_usage
'''
PROBE = '''
import asyncio as _asyncio
import time as _time
from jupyterhub.apihandlers.base import APIHandler as _APIHandler

_lag = {"longest": 0.0}

async def _bench_ticker():
    last = _time.perf_counter()
    while True:
        await _asyncio.sleep(0.01)
        now = _time.perf_counter()
        _lag["longest"] = max(_lag["longest"], now - last - 0.01)
        last = now

class _LoopLag(_APIHandler):
    """GET: the longest event-loop stall (s) since the last GET, then reset. Bench harness only."""

    def get(self):
        if not self.current_user or "admin:users" not in self.parsed_scopes:
            raise __import__("tornado").web.HTTPError(403)
        self.finish({"longest": _lag["longest"]})
        _lag["longest"] = 0.0

class _CullerPass(_APIHandler):
    """POST ?runs=N: N passes of our culler (nothing due: a 1-day timeout) over the hub's real spawners; their
    wall times (s) and the running servers they looked at. Bench harness only."""

    async def post(self):
        if not self.current_user or "admin:users" not in self.parsed_scopes:
            raise __import__("tornado").web.HTTPError(403)
        from hub_extensions import culler as _culler
        from hub_extensions import runtime as _runtime
        from hub_extensions.settings import CullerSettings as _CullerSettings

        settings = _CullerSettings(enabled=True, timeout_seconds=86400, every_seconds=60, max_age_seconds=0)
        app = _runtime.of(self).hub()
        walls = []
        for _ in range(int(self.get_argument("runs", "20"))):
            t0 = _time.perf_counter()
            culled = await _culler.Culler(settings, lambda: app).run_pass(app)
            walls.append(_time.perf_counter() - t0)
            assert not culled
            await _asyncio.sleep(0.05)
        running = sum(1 for u in app.users.values() for s in u.spawners.values() if _culler.is_running(s))
        self.finish({"walls": walls, "running": running})

_asyncio.get_running_loop().create_task(_bench_ticker())
c.JupyterHub.extra_handlers.append((r"/api/bench/loop-lag", _LoopLag))
c.JupyterHub.extra_handlers.append((r"/api/bench/culler-pass", _CullerPass))
'''


def state_file() -> Path:
    return devenv.run_dir().parent / f"bench-fleet-{os.environ['JHDS_CLUSTER']}.json"


@dataclass
class Fleet:
    namespace: str
    url: str
    token: str  # the e2e service token: admin:users, admin:servers
    stats_port: int
    state: str
    admin_kubeconfig: str
    users: int
    pids: dict

    def api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 120) -> dict:
        req = urllib.request.Request(f"{self.url}/hub/api{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
        return json.loads(text) if text else {}

    def loop_lag(self) -> float:
        """The hub's longest event-loop stall since the previous call (seconds)."""
        return self.api("/bench/loop-lag")["longest"]

    def after_activity_update(self, limit: float = 90) -> float:
        """Wait until JupyterHub's own periodic last-activity update (every ``last_activity_interval``, 60 s
        here as in Z2JH) has just finished, and return the stall it caused (seconds; 0 if none was seen).

        At 1,000 servers that update (``JupyterHub.update_last_activity``: one ``User.find`` per proxy route,
        synchronous SQLAlchemy on the event loop) stalls the hub for seconds on this machine, whatever our
        code does. Measurements that start right after it see what they cause themselves; the update's own
        stall is reported next to them.
        """
        self.loop_lag()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(0.5)
            lag = self.loop_lag()
            if lag > 1.0:
                time.sleep(3)  # its check_routes and the commits after it
                self.loop_lag()
                return lag
        return 0.0

    def stub_stats(self, reset: bool = False) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.stats_port}/stats{'/reset' if reset else ''}",
                                     method="POST" if reset else "GET")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def db_count(self, table: str) -> int:
        with contextlib.closing(sqlite3.connect(Path(self.state) / "jupyterhub.sqlite", timeout=30)) as db:
            return db.execute(f"select count(*) from {table}").fetchone()[0]

    def db_path(self) -> Path:
        return Path(self.state) / "jupyterhub.sqlite"

    def metrics_server_metrics(self) -> str:
        """metrics-server's own ``/metrics`` (it is the API server of ``metrics.k8s.io``).

        kube-apiserver proxies ``metrics.k8s.io`` requests to it without counting them in its own
        ``apiserver_request_total`` (checked: no ``group="metrics.k8s.io"`` series there); metrics-server
        counts every request it serves with the same labels. Reached with kwokctl's admin client
        certificate at the port its APIService names (``run/<cluster>/kwok/clusters/<cluster>/kwok.yaml``).
        """
        import re
        import ssl

        cluster = os.environ["JHDS_CLUSTER"]
        home = devenv.get_helm.cache_root() / "run" / cluster / "kwok" / "clusters" / cluster
        text = (home / "kwok.yaml").read_text()
        block = text[text.index("name: v1beta1.metrics.k8s.io"):]
        port = int(re.search(r"service:\s*\n\s*name: metrics-server\s*\n\s*namespace: kube-system\s*\n\s*port: (\d+)",
                             block)[1])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # kwokctl's APIService says insecureSkipTLSVerify too
        ctx.load_cert_chain(home / "pki" / "admin.crt", home / "pki" / "admin.key")
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx, timeout=30) as r:
            return r.read().decode()

    def apiserver_metrics(self) -> str:
        """kube-apiserver's own /metrics, as the cluster admin."""
        return devenv.kubectl(Path(self.admin_kubeconfig), "get", "--raw", "/metrics")


def add_nodes(admin: Path) -> None:
    """fleet-0..9 copied from cpu-1 (kwok annotations, kubelet endpoint), each with its own pod CIDR."""
    base = json.loads(devenv.kubectl(admin, "get", "node", "cpu-1", "-o", "json"))
    net = base["spec"]["podCIDR"].split(".")[1]
    existing = devenv.kubectl(admin, "get", "nodes", "-o", "name")
    docs = []
    for i in range(NODES):
        name = f"fleet-{i}"
        if f"node/{name}" in existing:
            continue
        cidr = f"127.{net}.{200 + i}.0/24"
        meta = base["metadata"]
        res = {"cpu": "64", "memory": "256Gi", "pods": "110"}
        docs.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "annotations": {**{k: v for k, v in meta["annotations"].items() if k.startswith(
                             ("kwok.", "node.alpha"))},
                             "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource"},
                         "labels": {**meta["labels"], "kubernetes.io/hostname": name, FLEET_LABEL: "fleet"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {**{k: base["status"][k] for k in ("addresses", "daemonEndpoints")},
                       "capacity": res, "allocatable": res},
        })
    if docs:
        devenv.kubectl(admin, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                   "items": docs}))


async def _start_servers(f: Fleet, names: list[str], concurrency: int = 10) -> None:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"token {f.token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as s:
        async def one(name: str) -> None:
            async with gate:
                for _ in range(50):
                    async with s.post(f"{f.url}/hub/api/users/{name}/server") as r:
                        if r.status in (201, 202, 400):  # 400: already running
                            return
                        if r.status != 429:
                            raise RuntimeError(f"start {name}: {r.status} {await r.text()}")
                    await asyncio.sleep(1)

        await asyncio.gather(*(one(n) for n in names))


def inactive(f: Fleet) -> list[str]:
    """Users without an active (ready or pending) server."""
    names: list[str] = []
    while page := f.api(f"/users?state=inactive&limit=200&offset={len(names)}"):
        names += [u["name"] for u in page]
    return [n for n in names if n.startswith("u")]


def ready_count(f: Fleet) -> int:
    """Users whose default server is ready, through the hub's paginated users API."""
    count = offset = 0
    while True:
        page = f.api(f"/users?state=ready&limit=200&offset={offset}")
        if not page:
            return count
        count += sum(1 for u in page if ((u.get("servers") or {}).get("") or {}).get("ready"))
        offset += len(page)


HUB_SETTINGS = {"gpu": {"mode": 0}, "storage": {"enabled": False}, "accounts": {"forcePasswordChange": False}}
HUB_CONFIG = {
    # users come from the API with the e2e service token; NativeAuthenticator would bcrypt a generated
    # password for each (~0.8 s apiece here), which is not what is measured
    "JupyterHub": {"concurrent_spawn_limit": 0, "active_server_limit": 0, "authenticator_class": "dummy"},
    "KubeSpawner": {"cpu_guarantee": 0.01, "mem_guarantee": "32M", "node_selector": {FLEET_LABEL: "fleet"}},
}


# after configure(c): JupyterHub's own last-activity pass back in place of ours (the stock side of a comparison)
STOCK_LAST_ACTIVITY = '''
import types as _types
from jupyterhub.app import JupyterHub as _JupyterHub
_hub = _JupyterHub.instance()
_hub.update_last_activity = _types.MethodType(_JupyterHub.update_last_activity, _hub)
'''


def restart_hub(f: Fleet, last_activity_interval: int, stock_last_activity: bool = False) -> Fleet:
    """A new hub process on the same database and servers (JupyterHub finds them running), e.g. with
    ``last_activity_interval`` raised to take JupyterHub's own periodic update out of a measurement, or with
    JupyterHub's own last-activity pass instead of ours (``stock_last_activity``)."""
    devenv.stop_process(f.pids["hub"])
    config = json.loads(json.dumps(HUB_CONFIG))
    config["JupyterHub"]["last_activity_interval"] = last_activity_interval
    extra = USAGE_HOOK + PROBE + (STOCK_LAST_ACTIVITY if stock_last_activity else "")
    hub = devenv.Hub(f.namespace, Path(f.state).parent / "hub.kubeconfig", Path(f.state), settings=HUB_SETTINGS,
                     hub_config=config, extra_config=extra, service_token=f.token,
                     public_port=int(f.url.rsplit(":", 1)[1]))
    hub.start(timeout=600)
    f.pids["hub"] = hub.proc.pid
    t0 = time.monotonic()
    while (ready := ready_count(f)) < f.users and time.monotonic() - t0 < 600:
        time.sleep(5)
    which = "JupyterHub's" if stock_last_activity else "our"
    print(f"fleet: hub restarted (last_activity_interval={last_activity_interval}, {which} last-activity pass); "
          f"{ready} servers ready", file=sys.stderr)
    return f


def bring_up(users: int, last_activity_interval: int | None = None) -> Fleet:
    admin = devenv.cluster_up()
    add_nodes(admin)
    namespace = f"bench-fleet-{os.urandom(3).hex()}"
    state = devenv.run_dir().parent / namespace
    state.mkdir(parents=True, exist_ok=True)
    hub_kc = devenv.prepare_namespace(admin, namespace, state)
    stats_port = devenv.free_port()
    runner = devenv.start_stub_servers(admin, namespace, state / "stubs", stats_port)
    config = json.loads(json.dumps(HUB_CONFIG))
    if last_activity_interval is not None:
        config["JupyterHub"]["last_activity_interval"] = last_activity_interval
    hub = devenv.Hub(namespace, hub_kc, state / "hub", settings=HUB_SETTINGS, hub_config=config,
                     extra_config=USAGE_HOOK + PROBE)
    try:
        hub.start(timeout=120)
    except BaseException:
        devenv.stop_process(runner)
        raise
    f = Fleet(namespace, hub.url, hub.service_token, stats_port, str(hub.state), str(admin), users,
              {"hub": hub.proc.pid, "stub_servers": runner.pid})
    try:
        _populate(f, users)
    except BaseException:
        tear_down(f)
        raise
    return f


def _populate(f: Fleet, users: int) -> None:
    names = [f"u{i:04d}" for i in range(users)]
    for i in range(0, users, 200):
        f.api("/users", "POST", {"usernames": names[i:i + 200]})
    t0 = time.monotonic()
    asyncio.run(_start_servers(f, names))
    while (ready := ready_count(f)) < users:
        if time.monotonic() - t0 > 1800:
            raise TimeoutError(f"only {ready} of {users} servers ready after 30 min")
        time.sleep(10)
        # a start can fail under load (the proxy's API times out and JupyterHub stops that server): retry
        stopped = inactive(f)
        if stopped:
            print(f"fleet: {ready} ready; starting {len(stopped)} stopped servers again", file=sys.stderr)
            asyncio.run(_start_servers(f, stopped))
    print(f"fleet: {users} stub servers ready in {time.monotonic() - t0:.0f} s "
          f"(stubs: {f.stub_stats()['servers']})", file=sys.stderr)


def tear_down(f: Fleet) -> None:
    for pid in f.pids.values():
        devenv.stop_process(pid)
    devenv.kubectl(Path(f.admin_kubeconfig), "delete", "namespace", f.namespace, "--wait=false", check=False)
    devenv.kubectl(Path(f.admin_kubeconfig), "delete", "nodes", "-l", FLEET_LABEL, "--wait=false", check=False)


@contextlib.contextmanager
def fleet(users: int = 1000) -> Iterator[Fleet]:
    """A running fleet: the one ``_fleet.py up`` left (if it has at least ``users``), else a new one for the run."""
    if state_file().exists():
        f = Fleet(**json.loads(state_file().read_text()))
        if f.users >= users:
            yield f
            return
    f = bring_up(users)
    try:
        yield f
    finally:
        tear_down(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "restart-hub"])
    parser.add_argument("--last-activity-interval", type=int, default=None,
                        help="JupyterHub's last_activity_interval (default: the fleet's 60 s, as in Z2JH)")
    parser.add_argument("--users", type=int, default=1000)
    opts = parser.parse_args()
    if opts.command == "up":
        f = bring_up(opts.users, opts.last_activity_interval)
        state_file().write_text(json.dumps(asdict(f)))
        print(state_file())
    elif opts.command == "restart-hub":
        f = restart_hub(Fleet(**json.loads(state_file().read_text())), opts.last_activity_interval or 60)
        state_file().write_text(json.dumps(asdict(f)))
    elif state_file().exists():
        tear_down(Fleet(**json.loads(state_file().read_text())))
        state_file().unlink()


if __name__ == "__main__":
    main()
