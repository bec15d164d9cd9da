"""`make up` without Docker (ci/dev/devenv.py): helm installs the chart on the local control plane, its pods run on
the real node (kubelet, containerd, the images built here); the printed URL and first login work, and in Chromium a
person signs up, is authorized, logs in and JupyterLab opens through the proxy; `down` uninstalls and stops only
what `up` started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import requests

from ci.dev import devenv

from .browser import expect, login
from .conftest import REPO
from .hubclient import PASSWORD, HubClient, admin_client


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sign_up_and_open_lab(page, url: str, admin: HubClient, person: str) -> None:
    """The first steps `make up` prints, in Chromium: sign up, the admin authorizes, log in, start, JupyterLab."""
    page.goto(f"{url}/hub/signup")
    page.fill("#username_input", person)
    if page.locator("#email_input").count():
        page.fill("#email_input", f"{person}@example.org")
    page.fill("#password_input", PASSWORD)
    page.fill("#password_confirmation_input", PASSWORD)
    page.click("#signup_submit")
    page.wait_for_load_state()
    r = admin.api("POST", f"/ds/signups/{person}", json={"authorized": True})  # what the Authorize Users page does
    assert r.status_code == 200, r.text
    login(page, url, person)
    page.click("#start")
    page.wait_for_url(re.compile(rf"/user/{person}/lab"), timeout=180_000)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)


def test_up_installs_the_chart_prints_a_working_url_and_down_stops_only_what_it_started(admin_kubeconfig, tmp_path,
                                                                                          new_page):
    namespace = f"e2e-up-{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "ci.dev.devenv", "--namespace", namespace, "--state-dir", str(tmp_path)]
    record: dict = {}
    try:
        up = subprocess.run([*cli[:3], "up", *cli[3:]], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        record = json.loads((tmp_path / "pids.json").read_text())
        url = re.search(r"URL:\s+(http://\S+)/hub/", up.stdout).group(1)
        assert url == devenv.cluster_ip_url(admin_kubeconfig, namespace, "proxy-public")
        hub_pod = json.loads(devenv.kubectl(admin_kubeconfig, "-n", namespace, "get", "pods", "-l", "component=hub",
                                            "-o", "json"))["items"][0]
        assert hub_pod["spec"]["nodeName"] == "node-1"
        assert "make down" in up.stdout and "port-forward svc/proxy-public" in up.stdout
        password = re.search(r'First login:\s+user "admin", password: (\S+)', up.stdout).group(1)
        assert password == devenv.first_admin_password(admin_kubeconfig, namespace)  # the chart's Secret
        releases = json.loads(devenv.helm(admin_kubeconfig, "list", "-n", namespace, "-o", "json"))
        assert [(r["name"], r["status"]) for r in releases] == [("jupyterhub", "deployed")]

        admin = admin_client(url, password)
        admin.start_server(timeout=180)
        r = requests.get(f"{url}/user/admin/api/status", headers={"Authorization": f"token {admin.token()}"},
                         timeout=30)
        assert r.status_code == 200, r.text
        sign_up_and_open_lab(new_page(), url, admin, f"p{uuid.uuid4().hex[:6]}")
        assert record["started_cluster"] is False  # the test session's cluster was already running
    finally:
        down = subprocess.run([*cli[:3], "down", *cli[3:]], cwd=REPO, capture_output=True, text=True, timeout=300)
        devenv.kubectl(admin_kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in record.get("pids", {}).values())
    assert devenv.kubectl(admin_kubeconfig, "get", "namespace", namespace, "--ignore-not-found").strip() == ""
    assert devenv.cluster_running()  # not ours to stop
