"""`make up` without Docker (ci/devenv.py): a URL where the admin signs in and starts a server; `down` cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import devenv
import requests

from .conftest import REPO
from .hubclient import admin_client


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_prints_a_working_url_and_down_stops_only_what_it_started(admin_kubeconfig, tmp_path):
    namespace = f"e2e-up-{uuid.uuid4().hex[:6]}"
    port = devenv.free_port()
    cli = [sys.executable, str(REPO / "ci" / "devenv.py"), "--namespace", namespace, "--state-dir", str(tmp_path)]
    try:
        up = subprocess.run([*cli[:2], "up", *cli[2:], "--port", str(port)], capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr[-2000:]
        url = re.search(r"URL:\s+(http://\S+)/hub/", up.stdout).group(1)
        assert url == f"http://127.0.0.1:{port}"
        assert "make down" in up.stdout
        password = re.search(r'First login:\s+user "admin", password: (\S+)', up.stdout).group(1)
        assert (tmp_path / "hub" / "first-admin-password").read_text() == password

        admin = admin_client(url, password)
        admin.start_server()
        r = requests.get(f"{url}/user/admin/api/status", headers={"Authorization": f"token {admin.token()}"},
                         timeout=30)
        assert r.status_code == 200, r.text
        admin.stop_server()
        pids = devenv.json.loads((tmp_path / "pids.json").read_text())
        assert pids["started_cluster"] is False  # the test session's cluster was already running
    finally:
        down = subprocess.run([*cli[:2], "down", *cli[2:]], capture_output=True, text=True, timeout=120)
        devenv.kubectl(admin_kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in pids["pids"].values())
    assert devenv.cluster_running()  # not ours to stop
