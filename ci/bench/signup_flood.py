#!/usr/bin/env python3
"""Benchmark: a sign-up flood against the open ``/hub/signup`` while a logged-in user browses (issue 20, item 2).

Two real JupyterHub processes on this machine, one after the other, each with configurable-http-proxy in front
(``node_modules/.bin``), a SQLite database of its own and a loop-lag probe (``_fleet.PROBE``: the longest
event-loop stall, measured by a 10 ms ticker inside the hub): first with our authenticator
(``hub_extensions.accounts.configure`` with the shipped ``custom.ds.accounts`` defaults), then with stock
NativeAuthenticator 1.3.0. No Kubernetes: nobody spawns.

Against each, for ``--seconds`` (20): ``--rate`` (50) sign-up attempts a second, each from a loopback address of
its own (127.77.x.y; the proxy puts it in X-Forwarded-For, so the per-address limit lets every one through: the
worst case for us), at most ``--in-flight`` (300) unanswered at once (others are counted as not sent); a
logged-in user (the first admin) loading ``/hub/home`` and ``/hub/api/user`` every 0.5 s; ``/hub/health`` polled
every 20 ms (a request that times out counts as its timeout). Printed: ``/hub/health`` p50/p99/max, the user's
page p50/max, the longest event-loop stall, the sign-up answers, the rows in ``users_info``, and the ratios
stock/ours. Targets for ours: ``/hub/health`` p99 <= 100 ms and the longest stall <= 100 ms; exits 1 if missed.

    python -m ci.bench.signup_flood [--rate 50] [--seconds 20] [--addresses 0]

``--addresses N`` sends from N addresses in turn instead (1: one flooder, whom the rate limit answers 429).

The flooder fetches one XSRF token (``GET /hub/signup`` from 127.0.0.1) and sends ``X-Real-Ip: 127.0.0.1`` with
every attempt: JupyterHub ties an anonymous token to ``request.remote_ip``, which Tornado takes from that header.
Our limits never read it (``hub_extensions.client_address``), so this saves the flooder a page load per attempt
without giving it anything against us.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ci.bench._fleet import PROBE, REPO

CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
JUPYTERHUB = Path(sys.executable).parent / "jupyterhub"
ADMIN, ADMIN_PASSWORD = "admin", "bench-admin-password-1"
SIGNUP_PASSWORD = "flood-password-long-1"
TIMEOUT = 10.0  # per health/browse request; a sign-up gets 30 s
# cookies of 127.0.0.1: aiohttp keeps none for an IP address unless told to

CONFIG = '''
import os
c = get_config()  # noqa: F821
env = os.environ
state = env["BENCH_STATE"]
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env["BENCH_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["BENCH_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['BENCH_API_PORT']}"
c.ConfigurableHTTPProxy.command = [env["BENCH_CHP"]]
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{os.path.join(state, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(state, "cookie_secret")
c.JupyterHub.pid_file = os.path.join(state, "jupyterhub.pid")
c.JupyterHub.authenticator_class = "native"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"admin"}
c.JupyterHub.services = [{"name": "bench", "api_token": env["BENCH_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "bench", "services": ["bench"], "scopes": ["admin:users"]}]
if env["BENCH_AUTH"] == "ours":
    from hub_extensions import accounts
    from hub_extensions.settings import AccountsSettings

    accounts.configure(c, AccountsSettings())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)] if ordered else float("nan")


@dataclass
class Result:
    name: str
    health: list[float] = field(default_factory=list)
    browse: list[float] = field(default_factory=list)
    browse_errors: int = 0
    stall: float = float("nan")
    signups: Counter = field(default_factory=Counter)
    rows: int = 0

    def print(self) -> None:
        h, b = self.health, self.browse
        print(f"{self.name}:")
        print(f"  /hub/health over {len(h)} polls: p50 {percentile(h, 50) * 1000:.0f} ms, "
              f"p99 {percentile(h, 99) * 1000:.0f} ms, max {max(h) * 1000:.0f} ms")
        print(f"  logged-in user's pages over {len(b)} loads: p50 {percentile(b, 50) * 1000:.0f} ms, "
              f"max {max(b) * 1000:.0f} ms, failed {self.browse_errors}")
        print(f"  longest hub event-loop stall: {self.stall * 1000:.0f} ms")
        print(f"  sign-up answers: {dict(sorted(self.signups.items(), key=str))}; users_info rows after: {self.rows}")


class Hub:
    """One JupyterHub (and its proxy) in a temporary directory."""

    def __init__(self, auth: str, workdir: Path):
        self.auth = auth
        self.state = workdir / auth
        self.state.mkdir()
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        (self.state / "jupyterhub_config.py").write_text(CONFIG + PROBE)
        env = {**os.environ, "BENCH_STATE": str(self.state), "BENCH_PORT": str(self.port),
               "BENCH_HUB_PORT": str(free_port()), "BENCH_API_PORT": str(free_port()), "BENCH_CHP": str(CHP),
               "BENCH_TOKEN": self.token, "BENCH_AUTH": auth,
               "JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD": ADMIN_PASSWORD, "PYTHONPATH": str(REPO)}
        self.log = (self.state / "hub.log").open("w")
        self.proc = subprocess.Popen([str(JUPYTERHUB), "-f", str(self.state / "jupyterhub_config.py")],
                                     cwd=self.state, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    async def wait(self, session: aiohttp.ClientSession, limit: float = 90) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the {self.auth} hub exited: see {self.state / 'hub.log'}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{self.url}/hub/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the {self.auth} hub did not answer in {limit:.0f} s")

    async def loop_lag(self, session: aiohttp.ClientSession) -> float:
        async with session.get(f"{self.url}/hub/api/bench/loop-lag", timeout=aiohttp.ClientTimeout(total=120),
                               headers={"Authorization": f"token {self.token}"}) as r:
            return (await r.json())["longest"]

    def rows(self) -> int:
        with sqlite3.connect(f"file:{self.state / 'jupyterhub.sqlite'}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT count(*) FROM users_info").fetchone()[0]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


async def form(session: aiohttp.ClientSession, url: str) -> str:
    """GET a form page (sets the _xsrf cookie in the session) and return the token."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
        await r.read()
    return next(c.value for c in session.cookie_jar if c.key == "_xsrf")


async def log_in(hub: Hub) -> tuple[aiohttp.ClientSession, str]:
    """The browsing user's session (stock NativeAuthenticator: the admin signs up first, it authorizes admins)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    if hub.auth == "stock":
        xsrf = await form(session, f"{hub.url}/hub/signup")
        async with session.post(f"{hub.url}/hub/signup", data={
                "username": ADMIN, "signup_password": ADMIN_PASSWORD, "signup_password_confirmation": ADMIN_PASSWORD,
                "_xsrf": xsrf}) as r:
            assert r.status == 200, r.status
    xsrf = await form(session, f"{hub.url}/hub/login")
    async with session.post(f"{hub.url}/hub/login", allow_redirects=False,
                            data={"username": ADMIN, "password": ADMIN_PASSWORD, "_xsrf": xsrf}) as r:
        assert r.status == 302, f"login on the {hub.auth} hub: {r.status}"
    return session, xsrf


async def flood(hub: Hub, args: argparse.Namespace, cookies: str, xsrf: str, answers: Counter) -> None:
    """``rate`` sign-up attempts a second for ``seconds``, each from its own loopback address (or ``addresses``
    in turn), at most ``in_flight`` unanswered; then waits at most 30 s for the last answers."""
    pending: set[asyncio.Task] = set()

    async def attempt(i: int) -> None:
        n = i % args.addresses if args.addresses else i
        local = f"127.77.{n // 250}.{n % 250 + 1}"
        connector = aiohttp.TCPConnector(local_addr=(local, 0), force_close=True)
        try:
            async with aiohttp.ClientSession(connector=connector) as s, s.post(
                    f"{hub.url}/hub/signup", timeout=aiohttp.ClientTimeout(total=30),
                    headers={"Cookie": cookies, "X-Real-Ip": "127.0.0.1"},
                    data={"username": f"flood{i}x{secrets.token_hex(2)}", "signup_password": SIGNUP_PASSWORD,
                          "signup_password_confirmation": SIGNUP_PASSWORD, "_xsrf": xsrf}) as r:
                await r.read()
                answers[r.status] += 1
        except (TimeoutError, aiohttp.ClientError) as e:
            answers[type(e).__name__] += 1

    start = time.monotonic()
    for i in range(int(args.rate * args.seconds)):
        await asyncio.sleep(max(start + i / args.rate - time.monotonic(), 0))
        if len(pending) >= args.in_flight:
            answers["not sent (in flight cap)"] += 1
            continue
        task = asyncio.ensure_future(attempt(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    for task in list(pending):
        task.cancel()
        answers["unanswered after 30 s"] += 1


async def timed_get(session: aiohttp.ClientSession, url: str, out: list[float],
                    headers: dict[str, str] | None = None) -> bool:
    """One GET; its latency goes to ``out`` (a timeout counts as ``TIMEOUT``); whether it answered 200."""
    t0 = time.perf_counter()
    ok = False
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as r:
            await r.read()
            ok = r.status == 200
    except (TimeoutError, aiohttp.ClientError):
        pass
    out.append(min(time.perf_counter() - t0, TIMEOUT))
    return ok


async def every(period: float, until: float, step) -> int:
    """``await step()`` every ``period`` seconds until ``until``; how many steps failed."""
    failed = 0
    while time.monotonic() < until:
        t0 = time.monotonic()
        failed += not await step()
        await asyncio.sleep(max(period - (time.monotonic() - t0), 0))
    return failed


async def run(auth: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result("ours (DsNativeAuthenticator)" if auth == "ours" else "stock NativeAuthenticator 1.3.0")
    hub = Hub(auth, workdir)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as probe:
            await hub.wait(probe)
            user, user_xsrf = await log_in(hub)
            async with user:
                flooder = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
                async with flooder:
                    xsrf = await form(flooder, f"{hub.url}/hub/signup")
                    cookies = "; ".join(f"{c.key}={c.value}" for c in flooder.cookie_jar)
                await hub.loop_lag(probe)  # reset the probe
                until = time.monotonic() + args.seconds

                async def browse() -> bool:
                    home = await timed_get(user, f"{hub.url}/hub/home", result.browse)
                    api = await timed_get(user, f"{hub.url}/hub/api/user", result.browse,
                                          {"X-XSRFToken": user_xsrf})
                    return home and api

                async def health() -> bool:
                    return await timed_get(probe, f"{hub.url}/hub/health", result.health)

                flooding = asyncio.ensure_future(flood(hub, args, cookies, xsrf, result.signups))
                _, result.browse_errors = await asyncio.gather(every(0.02, until, health),
                                                               every(0.5, until, browse))
                await flooding
            result.stall = await hub.loop_lag(probe)
        result.rows = hub.rows()
    finally:
        hub.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--in-flight", type=int, default=300)
    parser.add_argument("--addresses", type=int, default=0, help="0: every attempt from an address of its own")
    args = parser.parse_args()
    assert 0 < args.rate <= 200 and 0 < args.seconds <= 120 and 0 < args.in_flight <= 1000
    assert 0 <= args.addresses <= 60000
    print(f"sign-up flood: {args.rate:.0f}/s for {args.seconds:.0f} s from "
          f"{args.addresses or 'a new'} loopback address{'es' if args.addresses != 1 else ''}"
          f"{'' if args.addresses else ' each'}; {os.cpu_count()} CPUs (shared with whatever else runs)")
    with tempfile.TemporaryDirectory(prefix="signup-flood-") as tmp:
        ours = asyncio.run(run("ours", Path(tmp), args))
        ours.print()
        stock = asyncio.run(run("stock", Path(tmp), args))
        stock.print()
    p99_ours, p99_stock = percentile(ours.health, 99), percentile(stock.health, 99)
    print(f"ratio stock/ours: /hub/health p99 {p99_stock / p99_ours:.0f}x, "
          f"longest stall {stock.stall / max(ours.stall, 1e-3):.0f}x")
    ok = p99_ours <= 0.1 and ours.stall <= 0.1
    print("targets for ours (/hub/health p99 <= 100 ms, longest stall <= 100 ms):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
