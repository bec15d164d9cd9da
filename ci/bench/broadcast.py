#!/usr/bin/env python3
"""Benchmark: one notification broadcast to 1,000 running servers, through the hub's own delivery code.

The servers are STUBS: one aiohttp app in a child process on 127.0.0.1 answers every user's
``/user/<name>/jupyterlab-notifications-extension/ingest`` after ``--latency`` ms (a lab's ingest is a
list append; the latency stands for the network), and records each delivery and its Authorization
header. The hub side is :mod:`hub_extensions.notifications` (``select_targets`` over in-memory users
shaped like JupyterHub's, then ``deliver``: 20 at a time, 5 s timeouts), with a ticker every 10 ms
measuring the longest event-loop stall. Not a whole hub: the API handler around it adds one JSON parse.

Target (issue 13): ≤ 5 s, 1,000 deliveries recorded, no stall over 100 ms, one token (no new tokens).
Exits 1 when a target is missed.

    python ci/bench/broadcast.py [--servers 1000] [--latency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _loopstall import LoopStall  # ci/bench/_loopstall.py, beside this script

from hub_extensions import notifications


def serve(port_queue: multiprocessing.Queue, stats_queue: multiprocessing.Queue, latency: float) -> None:
    seen: list[str] = []
    auth: set[str] = set()

    async def ingest(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(latency)
        seen.append(request.match_info["user"])
        auth.add(request.headers.get("Authorization", ""))
        return web.json_response({"success": True})

    async def stats(request: web.Request) -> web.Response:
        stats_queue.put((len(seen), len(set(seen)), sorted(auth)))
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/user/{user}/jupyterlab-notifications-extension/ingest", ingest)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def run(servers: int, port: int) -> tuple[float, float, dict]:
    host = f"http://127.0.0.1:{port}"
    users = [SimpleNamespace(name=f"u{i:04d}", groups=[], spawners={"": SimpleNamespace(
        ready=True, server=SimpleNamespace(host=host, base_url=f"/user/u{i:04d}/"))}) for i in range(servers)]
    async with LoopStall(0.01) as stall:
        start = time.perf_counter()
        broadcast = notifications.check_broadcast({"message": "Maintenance at 18:00", "variant": "warning"})
        targets = notifications.select_targets(users, broadcast)
        result = await notifications.deliver(targets, broadcast, "bench-token")
        wall = time.perf_counter() - start
    return wall, stall.longest, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=20, help="stub answer delay, ms")
    opts = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()
    stats: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=serve, args=(ports, stats, opts.latency / 1000), daemon=True)
    child.start()
    try:
        port = ports.get(timeout=30)
        wall, stall, result = asyncio.run(run(opts.servers, port))
        import urllib.request
        urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10).read()
        recorded, distinct, auth = stats.get(timeout=10)
    finally:
        child.terminate()
    print(f"broadcast to {opts.servers} stub servers ({opts.latency:g} ms each), concurrency "
          f"{notifications.CONCURRENCY}: {wall:.2f} s wall, longest event-loop stall {stall * 1000:.0f} ms")
    print(f"  answer: total {result['total']}, successful {result['successful']}, failed {result['failed']}")
    print(f"  stubs recorded {recorded} deliveries to {distinct} servers; Authorization headers seen: {len(auth)}")
    ok = (wall <= 5 and recorded == distinct == opts.servers == result["successful"] and stall <= 0.1
          and auth == ["token bench-token"])
    print("  targets (≤ 5 s, all delivered, stall ≤ 100 ms, one token):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
