"""``kubectl jupyterhub`` end to end on the installed chart: kubectl runs the plugin, which finds the release by
the labels of Z2JH's hub Deployment, reads the service token from Z2JH's hub Secret and reaches the hub pod through
``kubectl port-forward`` via the API server and the real node's kubelet. The
service and its role are the chart's own ``hub.services``/``hub.loadRoles`` (chart/values.yaml): the scopes tested
are the shipped ones.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from ci.dev import devenv
from hub_extensions import storage
from hub_extensions.settings import load_settings

from ..hubclient import HubClient

TOKEN_KEY = "hub.services.kubectl-jupyterhub.apiToken"


@pytest.fixture(scope="module")
def plugin_token(kube) -> str:
    """The plugin's service token, where the plugin reads it: Z2JH's hub Secret."""
    return base64.b64decode(kube.json("secret", "hub")["data"][TOKEN_KEY]).decode()


@pytest.fixture(scope="module")
def release(kube) -> str:
    """The name of the release's hub pod."""
    (pod,) = [p for p in kube.items("pods", "component=hub,app=jupyterhub")
              if not p["metadata"].get("deletionTimestamp")]
    return pod["metadata"]["name"]


@pytest.fixture(scope="module")
def env(admin_kubeconfig, namespace, tmp_path_factory) -> dict[str, str]:
    """kubectl (ci/dev/get_helm.py's) and the plugin's console script first on PATH; a kubeconfig whose current
    context's namespace is the test namespace (the plugin's default namespace)."""
    cfg = yaml.safe_load(Path(admin_kubeconfig).read_text())
    current = next(c for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    current["context"]["namespace"] = namespace
    path = tmp_path_factory.mktemp("kubeconfig") / "config"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    bindirs = [str(Path(devenv.kubectl_bin()).parent), str(Path(sys.executable).parent)]
    return {**os.environ, "PATH": os.pathsep.join([*bindirs, os.environ.get("PATH", "")]), "KUBECONFIG": str(path)}


class Run:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, rc: int | None = 0, stdin: str | None = "") -> subprocess.CompletedProcess:
        """``kubectl jupyterhub ARGS`` (kubectl's own plugin lookup finds kubectl-jupyterhub on PATH)."""
        proc = subprocess.run(["kubectl", "jupyterhub", *args], env=self.env, capture_output=True, text=True,
                              timeout=300, input=stdin)
        if rc is not None:
            assert proc.returncode == rc, (args, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        if proc.returncode:
            assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        return proc

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def run(env, release) -> Run:
    return Run(env)


# ---------------------------------------------------------------- conventions

def test_help_on_every_command(env):
    """-h works everywhere, without a cluster round trip (the plugin is a kubectl plugin on PATH)."""
    r = Run(env)
    for args in ([], ["status"], ["users"], ["users", "create"], ["servers", "restart"], ["volumes", "reset"],
                 ["top"], ["extend"], ["broadcast"], ["logs"], ["events"]):
        out = r(*args, "-h").stdout
        assert "usage: kubectl jupyterhub" in out, (args, out)
    assert "kubectl-jupyterhub" in r("--version").stdout


@pytest.mark.parametrize("args", [["users", "list", "--bogus"], ["status", "-o", "xml"], ["extend", "bob", "two"],
                                  ["volumes", "reset", "bob"], ["nonsense"], [],
                                  ["broadcast", "hi", "--to", "a", "--group", "g"]])
def test_bad_usage_exits_2(run, args):
    r = run(*args, rc=2)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def test_wrong_namespace(run, admin_kubeconfig):
    r = run("-n", "default", "status", rc=1)
    assert r.stderr == "error: no jupyterhub-ds release in namespace default " \
                       "(no Deployment with labels component=hub,app=jupyterhub; use -n/--namespace)\n"
    # the same with flags after the command and an explicit kubeconfig
    r = run("users", "list", "--kubeconfig", str(admin_kubeconfig), "--namespace", "kube-system", rc=1)
    assert "no jupyterhub-ds release in namespace kube-system" in r.stderr


def test_status(run, namespace, release):
    data = run.json("status")
    assert data["namespace"] == namespace and data["release"] == "jupyterhub" and data["hub_pod"] == release
    assert data["jupyterhub"] == "5.5.0"
    assert data["z2jh"] == "jupyterhub-4.4.0" and data["hub_image"] == "ghcr.io/jupyterhub-ds/hub:0.1.0"
    assert data["users"] >= 1 and isinstance(data["running_servers"], int)
    assert data["culler"] == "enabled"
    # GPUs and metrics come from /hub/api/ds/health (gpu mode 0 here; metrics-server runs on the local cluster)
    assert isinstance(data["health"], dict) and data["health"]["status"] == "ok"
    assert data["gpu"] == "off" and data["metrics"] == "available"
    table = run("status").stdout
    assert "Jupyterhub:" in table and "5.5.0" in table
    yaml.safe_load(run("status", "-o", "yaml").stdout)


# ---------------------------------------------------------------- users

def test_users_create_list_rename_delete(run, hub):
    created = run.json("users", "create", "pia", "pete")["users"]
    passwords = {u["username"]: u["password"] for u in created}
    assert set(passwords) == {"pia", "pete"} and all(passwords.values()), created
    HubClient(hub.url, "pia").login(passwords["pia"])  # the printed password logs in
    table = run("users", "create", "pam").stdout
    assert table.splitlines()[0].split() == ["NAME", "ADMIN", "PASSWORD"]
    HubClient(hub.url, "pam").login(table.splitlines()[1].split()[2])

    names = {u["name"] for u in run.json("users", "list")}
    assert {"admin", "pia", "pete", "pam"} <= names
    assert "pia" in run("users", "list").stdout

    assert run.json("users", "rename", "pete", "peter")["name"] == "peter"
    HubClient(hub.url, "peter").login(passwords["pete"])
    assert run.json("users", "delete", "peter", "pam")["deleted"] == ["peter", "pam"]
    names = {u["name"] for u in run.json("users", "list")}
    assert not names & {"pete", "peter", "pam"}


def test_unknown_user_is_the_hubs_message(run):
    for args in (["users", "delete", "nobody"], ["users", "rename", "nobody", "x"], ["servers", "start", "nobody"],
                 ["volumes", "list", "nobody"], ["logs", "nobody"], ["events", "nobody"],
                 ["volumes", "reset", "nobody", "cache", "--yes"]):
        r = run(*args, rc=1)
        assert r.stderr == "error: No such user: nobody\n", (args, r.stderr)
    assert run("extend", "nobody", "1", rc=1).stderr == "error: No such user: nobody\n"
    assert run("users", "authorize", "nobody", rc=1).stderr == "error: No sign-up named nobody\n"


def test_users_authorize(run, hub):
    sam = HubClient(hub.url, "sam")
    sam.signup()
    pending = run.json("users", "list", "--pending")
    assert "sam" in [s["username"] for s in pending]  # other modules' sign-ups may wait too
    assert run.json("users", "authorize", "sam")["signups"][0]["authorized"] is True
    sam.login()
    assert "sam" not in [s["username"] for s in run.json("users", "list", "--pending")]
    assert "sam" in run("users", "authorize", "sam").stdout  # idempotent (NativeAuthenticator's page toggles)


# ---------------------------------------------------------------- servers, logs, extend, broadcast, events

@pytest.fixture(scope="module")
def rosa(run, hub) -> str:
    """A signed-up, authorized user who logged in once (a hub user now); a generated password would have to be
    changed before a spawn."""
    client = HubClient(hub.url, "rosa")
    client.signup()
    run("users", "authorize", "rosa")
    client.login()
    return "rosa"


def test_servers_and_friends(run, rosa, kube, namespace, tmp_path_factory):
    assert "server of rosa: running" in run("servers", "start", rosa, "--wait").stdout
    rows = run.json("servers", "list")["servers"]
    assert [(s["user"], s["server"], s["status"]) for s in rows if s["user"] == rosa] == [(rosa, "(default)",
                                                                                          "running")]
    assert "rosa" in run("servers", "list").stdout

    # extend: the in-hub culler's session extension
    r = run.json("extend", rosa, "1")
    assert r["success"] is True and r["session_info"]["extensions_used_hours"] == 1
    assert run("extend", rosa, "0", rc=1).stderr.startswith("error: ")

    # broadcast into rosa's lab (the notifications extension in the real single-user server)
    r = run.json("broadcast", "maintenance at 5", "--to", rosa, "--variant", "warning")
    assert r["successful"] == 1 and r["details"][0]["username"] == rosa
    assert "delivered to 1 of 1" in run("broadcast", "again", "--to", rosa).stdout
    assert run("broadcast", "hi", "--group", "no-such-group", rc=1).stderr == "error: No such group: no-such-group\n"

    # logs: the real jupyterhub-singleuser's log, which the kubelet serves through the API server, read by the
    # plugin as by `kubectl logs`
    (pod,) = kube.user_pods(rosa)
    name = pod["metadata"]["name"]
    deadline = time.monotonic() + 30
    while "Starting jupyterhub single-user server" not in (out := run("logs", rosa, rc=None).stdout) \
            and time.monotonic() < deadline:
        time.sleep(1)
    lines = out.splitlines()
    direct = kube("logs", name, "-c", "notebook").splitlines()
    assert lines and direct[:len(lines)] == lines, out[-500:]  # the same log (it may have grown since)
    tail = run("logs", rosa, "--tail", "2").stdout.splitlines()
    assert len(tail) == 2 and all(line in kube("logs", name, "-c", "notebook") for line in tail)

    # restart: a new pod
    assert run.json("servers", "restart", rosa)["status"] in (200, 202)
    assert "server of rosa: stopped" in run("servers", "stop", rosa, "--wait").stdout
    assert run("logs", rosa, rc=1).stderr.startswith("error: rosa has no server pod")
    assert run("servers", "restart", rosa, rc=1).stderr == "error: Server is not running\n"

    events = run.json("events", rosa)["events"]
    kinds = {(e["source"], e["kind"]) for e in events}
    assert {("hub", "spawn"), ("hub", "stop"), ("hub", "extension"), ("hub", "restart")} <= kinds, kinds
    assert ("kubernetes", "SessionExtended") in kinds or ("kubernetes", "ServerRestarted") in kinds, kinds
    assert all(e["user"] == rosa for e in events if e["source"] == "hub")
    assert "spawn" in run("events").stdout


# ---------------------------------------------------------------- volumes

def test_volumes(run, rosa):
    """After test_servers_and_friends: rosa's server ran once (claims exist) and is stopped."""
    mine = run.json("volumes", "list", rosa)
    assert mine["user"] == rosa and {v["volume"] for v in mine["volumes"]} >= {"home", "workspace", "cache"}
    every = run.json("volumes", "list")["volumes"]
    assert {(v["user"], v["volume"]) for v in every} >= {(rosa, "home"), (rosa, "cache")}
    assert "VOLUME" in run("volumes", "list").stdout

    # without --yes and without a terminal: refused, nothing deleted
    r = run("volumes", "reset", rosa, "cache", rc=2)
    assert "--yes" in r.stderr
    assert (rosa, "cache") in {(v["user"], v["volume"]) for v in run.json("volumes", "list")["volumes"]}
    deadline = time.monotonic() + 60
    while (r := run("volumes", "reset", rosa, "cache", "--yes", "-o", "json", rc=None)).returncode:
        # 409 while the stopped server's pod is still going away
        assert "terminating" in r.stderr and time.monotonic() < deadline, r.stderr
        time.sleep(1)
    assert json.loads(r.stdout)["reset_volumes"] == ["cache"], r.stdout
    assert run("volumes", "reset", rosa, "nope", "--yes", rc=1).stderr.startswith("error: ")

    adoptable = run.json("volumes", "adopt", rosa)
    assert adoptable["user"] == rosa and adoptable["adoptable"] == []
    r = run("volumes", "adopt", rosa, "--owner", "u999-deadbeef", rc=1)
    assert r.stderr == "error: No volumes with owner key u999-deadbeef\n"


def test_volumes_adopt(run, rosa, kube):
    """A claim recorded for rosa under another owner key (as after a lost hub database) is listed and adopted."""
    volume = load_settings({}).storage.volumes[0]
    kube("apply", "-f", "-", stdin=yaml.safe_dump(storage.claim_manifest(volume, "u999-0ld0ld00", rosa)))
    listed = run.json("volumes", "adopt", rosa)["adoptable"]
    assert [g["owner"] for g in listed] == ["u999-0ld0ld00"]
    assert "u999-0ld0ld00" in run("volumes", "adopt", rosa).stdout
    # rosa has claims under her current key: refused unless they are kept as orphaned
    r = run("volumes", "adopt", rosa, "--owner", "u999-0ld0ld00", rc=1)
    assert r.stderr.startswith("error: rosa already has volumes")
    r = run.json("volumes", "adopt", rosa, "--owner", "u999-0ld0ld00", "--orphan-current")
    assert r["adopted_by"] == "kubectl-jupyterhub" and r["adopted_claims"] == [f"claim-u999-0ld0ld00-{volume.name}"]
    mine = run.json("volumes", "list", rosa)["volumes"]
    assert {v["claim"] for v in mine if v["exists"]} == {f"claim-u999-0ld0ld00-{volume.name}"}
    assert any(v["orphaned"] and v["user"] == rosa for v in run.json("volumes", "list")["volumes"])


# ---------------------------------------------------------------- features from other issues

def test_top(run, rosa):
    """The activity monitor's figures (values.example.yaml enables it): one row per hub user, rosa among them."""
    rows = run.json("top")["users"]
    assert rosa in {r["username"] for r in rows}, rows
    assert "rosa" in run("top").stdout


def test_service_holds_only_the_charts_scopes(hub, admin, plugin_token):
    r = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {plugin_token}"}, timeout=30)
    assert r.status_code == 200
    assert r.json()["kind"] == "service" and r.json()["name"] == "kubectl-jupyterhub"
    assert "admin:servers" not in r.json()["scopes"] and "access:servers" not in r.json()["scopes"]
    assert admin.api("GET", "/users/admin").status_code == 200
