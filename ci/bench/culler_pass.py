#!/usr/bin/env python3
"""Benchmark: one culler pass over 1,000 running servers, none of them due.

The servers are STAND-INS: real JupyterHub ORM rows (``orm.User``, ``orm.Spawner`` with a loaded
``orm.Server``, in an in-memory SQLite database, as the hub keeps them in memory with
``expire_on_commit=False``) wrapped in small in-process objects standing in for JupyterHub's ``User``
and KubeSpawner (``pending``, ``orm_spawner``, ``ds_extended_until``): no hub, no proxy, no pods.
A third of them carry an extension. The pass is ``hub_extensions.culler.Culler.run_pass``, as the hub runs it.

Prints the median and worst wall time of a pass and the longest stall of the event loop (a ticker
task every 5 ms measures it). Target (issue 12): a pass <= 200 ms, a stall <= 50 ms.

``--fleet`` measures the same inside a real hub instead: ``ci/bench/_fleet.py``'s JupyterHub with 1,000
servers it started (KubeSpawner, pods on kwok nodes, proxy routes; the single-user servers are STUBS,
``ci/dev/stub_servers.py``), the passes run by a bench-only handler of that hub over its own spawners, the stall
read from its loop-lag probe (which sees the hub's other stalls too). Exits 1 when a target is missed.

    python -m ci.bench.culler_pass [--servers 1000] [--runs 20] [--fleet]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jupyterhub import orm

from ci.bench._loopstall import LoopStall
from hub_extensions.culler import Culler
from hub_extensions.settings import CullerSettings

SETTINGS = CullerSettings(enabled=True, timeout_seconds=3600, every_seconds=60, max_age_seconds=7 * 86400)


class StandInSpawner:
    def __init__(self, orm_spawner: Any, extended_until: float | None):
        self.orm_spawner = orm_spawner
        self.ds_extended_until = extended_until
        self._spawn_pending = self._stop_pending = self._check_pending = False
        self._log_name = orm_spawner.user.name

    @property
    def pending(self) -> str | None:  # JupyterHub's Spawner.pending, verbatim logic
        if self._spawn_pending:
            return "spawn"
        if self._stop_pending:
            return "stop"
        return "check" if self._check_pending else None


class StandInUser:
    def __init__(self, orm_user: Any, spawner: StandInSpawner):
        self.id, self.name = orm_user.id, orm_user.name
        self.spawners = {"": spawner}


def build(n: int) -> Any:
    db = orm.new_session_factory("sqlite:///:memory:")()
    now = datetime.now(UTC).replace(tzinfo=None)
    users = {}
    for i in range(n):
        user = orm.User(name=f"user{i}")
        db.add(user)
        spawner = orm.Spawner(name="", user=user, server=orm.Server(),
                              started=now - timedelta(hours=2), last_activity=now - timedelta(minutes=i % 50))
        db.add(spawner)
    db.commit()
    for spawner in db.query(orm.Spawner):
        _ = spawner.server, spawner.user  # loaded, as in a running hub
        extended = time.time() + 7200 if spawner.user.id % 3 == 0 else None
        users[spawner.user.id] = StandInUser(spawner.user, StandInSpawner(spawner, extended))

    class App:
        pass

    app = App()
    app.users = users
    return app


def measure_fleet(servers: int, runs: int) -> bool:
    from ci.bench._fleet import fleet

    with fleet(servers) as f:
        f.loop_lag()  # reset the probe
        answer = f.api(f"/bench/culler-pass?runs={runs}", method="POST")
        stall = f.loop_lag()
    walls = answer["walls"]
    median, worst = statistics.median(walls) * 1000, max(walls) * 1000
    # with nothing due a pass never yields, so its wall time is the stall it causes; the probe sees every stall
    # of the hub in the window (KubeSpawner's reflector re-lists, JupyterHub's own timers), not only ours
    print(f"culler pass inside a real hub over {answer['running']} running servers (single-user servers are "
          f"STUBS), none due, {runs} runs: median {median:.1f} ms, worst {worst:.1f} ms (= its event-loop "
          f"stall: a pass with nothing due never yields); the hub's longest stall in the window, from any "
          f"cause: {stall * 1000:.1f} ms")
    return worst <= 50


async def measure(servers: int, runs: int) -> None:
    app = build(servers)
    culler = Culler(SETTINGS, lambda: app)
    walls = []
    async with LoopStall(0.005) as stall:
        for _ in range(runs):
            t0 = time.perf_counter()
            culled = await culler.run_pass(app)
            walls.append(time.perf_counter() - t0)
            assert culled == [], "nothing should be due"
            await asyncio.sleep(0.01)
    print(f"culler pass over {servers} running stand-in servers, none due, {runs} runs: "
          f"median {statistics.median(walls) * 1000:.1f} ms, worst {max(walls) * 1000:.1f} ms, "
          f"longest event-loop stall {stall.longest * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fleet", action="store_true", help="inside a real hub with stub servers (see above)")
    args = parser.parse_args()
    if args.fleet:
        sys.exit(0 if measure_fleet(args.servers, args.runs) else 1)
    asyncio.run(measure(args.servers, args.runs))


if __name__ == "__main__":
    main()
