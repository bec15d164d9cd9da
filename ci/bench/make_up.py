#!/usr/bin/env python3
"""Benchmark: `make up` without Docker (ci/dev/devenv.py up: cluster, real node, helm install of the chart) from a warm
cache (the images built), and the memory of each running user server.

The servers are REAL JupyterLab servers in containers on the real node (ci/dev/node.sh: kubelet, containerd, the
single-user image built from images/singleuser/Dockerfile), idle, no kernel. Memory is read from each container's
memory cgroup: its RSS and its usage with the page cache.
Uses its own namespace and state directory and tears both down (`down`); the cluster is the one of
$JHDS_CLUSTER (started if needed, and then deleted again by `down`).

    python -m ci.bench.make_up [--servers 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from ci.dev import devenv

REPO = Path(__file__).resolve().parents[2]


def container_memory_mib(container_id: str) -> tuple[float, float]:
    """RSS and total usage (page cache included) of a container on the real node, from its memory cgroup."""
    group = devenv.container_cgroup(container_id)
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    usage = int((group / "memory.usage_in_bytes").read_text())
    return int(stat["total_rss"]) / 2**20, usage / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=3)
    opts = parser.parse_args()
    namespace = f"bench-up-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="jhds-bench-up-") as state:
        cli = [sys.executable, "-m", "ci.dev.devenv"]  # run from the repository root (cwd)
        args = ["--namespace", namespace, "--state-dir", state]
        t0 = time.monotonic()
        up = subprocess.run([*cli, "up", *args], cwd=REPO, capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - t0
        try:
            if up.returncode:
                raise SystemExit(f"up failed:\n{up.stderr[-3000:]}")
            print(f"make up (ci/dev/devenv.py up, warm cache): {elapsed:.1f} s")
            admin = devenv.cluster_up()
            url = devenv.cluster_ip_url(admin, namespace, "proxy-public")
            s = requests.Session()
            s.get(f"{url}/hub/login", timeout=30)
            r = s.post(f"{url}/hub/login", timeout=30, allow_redirects=False, data={
                "username": "admin", "password": devenv.first_admin_password(admin, namespace),
                "_xsrf": s.cookies.get("_xsrf")})
            assert r.status_code == 302, r.status_code
            headers = {"X-XSRFToken": s.cookies.get("_xsrf")}
            names = [f"bench{i}" for i in range(opts.servers)]
            for name in names:  # signed-up users, authorized by the admin, start their own servers
                u = requests.Session()  # (admin-created users must change their password first)
                u.get(f"{url}/hub/signup", timeout=30)
                u.post(f"{url}/hub/signup", timeout=60, data={
                    "username": name, "signup_password": "bench-password-1234",
                    "signup_password_confirmation": "bench-password-1234", "_xsrf": u.cookies.get("_xsrf")})
                r = s.post(f"{url}/hub/api/ds/signups/{name}", json={"authorized": True}, headers=headers, timeout=30)
                assert r.status_code == 200, (r.status_code, r.text)
                r = u.post(f"{url}/hub/login", timeout=30, allow_redirects=False, data={
                    "username": name, "password": "bench-password-1234", "_xsrf": u.cookies.get("_xsrf")})
                assert r.status_code == 302, r.status_code
                r = u.post(f"{url}/hub/api/users/{name}/server", headers={"X-XSRFToken": u.cookies.get("_xsrf")},
                           timeout=60)
                assert r.status_code in (201, 202), (r.status_code, r.text)
            deadline = time.monotonic() + 300
            while not all(s.get(f"{url}/hub/api/users/{n}", headers=headers, timeout=30).json()
                          .get("servers", {}).get("", {}).get("ready") for n in names):
                if time.monotonic() > deadline:
                    print(devenv.kubectl(admin, "-n", namespace, "get", "pods,pvc,events"), file=sys.stderr)
                    print(devenv.kubectl(admin, "-n", namespace, "logs", "deploy/hub")[-4000:], file=sys.stderr)
                    raise SystemExit("servers not ready after 300 s")
                time.sleep(1)
            time.sleep(5)  # let JupyterLab's server settle after its first requests
            for name in names:
                container = devenv.kubectl(admin, "-n", namespace, "get", "pod", f"jupyter-{name}", "-o",
                                           "jsonpath={.status.containerStatuses[0].containerID}")
                rss, usage = container_memory_mib(container)
                print(f"memory of {name}'s server (its container's cgroup): RSS {rss:.0f} MiB, "
                      f"with page cache {usage:.0f} MiB")
        finally:
            down = subprocess.run([*cli, "down", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
            if down.returncode:
                print(f"down failed:\n{down.stderr[-2000:]}", file=sys.stderr)


if __name__ == "__main__":
    main()
