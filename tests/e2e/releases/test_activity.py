"""The activity monitor on the installed chart (the servers' real usage: metrics-server scrapes the real node's
kubelet), with the hub's database on SQLite (Z2JH's default ``sqlite-pvc``) and on PostgreSQL (``hub.db.type:
postgres``, a PostgreSQL server on this machine).

The module's release (SQLite) carries the usage, status, culler and metrics-outage checks; the database-facing
checks (sample/reset counts, renames, deletes, 403) run against it and a second release on PostgreSQL.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from ..hubclient import HubClient, admin_client, new_user
from ..release import Release

ACTIVITY = {"resourcesUpdateSeconds": 2, "sampleIntervalSeconds": 3600, "inactiveAfterMinutes": 1}
CULLER = {"enabled": True, "timeoutSeconds": 300, "everySeconds": 2}
SETTINGS = {"gpu": {"mode": 0}, "activity": ACTIVITY, "culler": CULLER}


def first_tick(hub):
    """The in-hub sampler's first tick (5 s after start): later counts in the tests are exact."""
    hub.wait_log("Activity sample:", 30)
    return hub


VIEWER, KEEPER = "actviewer", "actkeeper"
ROLES = {"hub": {"loadRoles": {
    "activity-viewer": {"scopes": ["custom:ds-activity:read"], "users": [VIEWER]},
    "activity-keeper": {"scopes": ["custom:ds-activity:admin"], "users": [KEEPER]}}}}


@pytest.fixture(scope="module")
def hub(release):
    return first_tick(release.install(SETTINGS, values=ROLES))


@pytest.fixture(scope="module")
def pg_hub(admin_kubeconfig, tmp_path_factory) -> Iterator[Release]:
    """A second release, its hub database on PostgreSQL (``hub.db``), the server on this machine at the real node's
    IP (a port ci/dev/node.sh lets pods reach)."""
    from ci.dev import devenv, postgres

    if not postgres.installed():
        pytest.fail("PostgreSQL is not installed: `make deps` installs it (ci/dev/postgres.py install)")
    node = devenv.node_ip(admin_kubeconfig)  # the hub pod reaches this machine there
    with postgres.TempPostgres(listen=node, port=devenv.free_host_service_port(node), clients=f"{node}/24") as pg:
        pg.create_database("jupyterhub")
        release = Release.new(admin_kubeconfig, "e2e-pg", tmp_path_factory)
        try:
            release.install(SETTINGS, values={**ROLES, "hub": {**ROLES["hub"], "db": {
                "type": "postgres", "url": pg.url("jupyterhub", host=node)}}})
            release.db_url = pg.url("jupyterhub")
            release.pod_db_url = pg.url("jupyterhub", host=node)
            yield first_tick(release)
            release.stop()  # before the database goes
        finally:
            release.remove()


def test_the_database_asks_pods_for_its_password(pg_hub):
    """Every user's server is a pod on the network the hub's PostgreSQL listens on: without the password (in the
    hub's URL only) the server refuses, with it the hub's own URL connects."""
    import sqlalchemy.exc

    without = pg_hub.pod_db_url.replace(f":{pg_hub.pod_db_url.split(':')[2].split('@')[0]}@", "@")
    assert "@" in without and without != pg_hub.pod_db_url
    with pytest.raises(sqlalchemy.exc.OperationalError, match="password"):
        create_engine(without).connect().close()
    engine = create_engine(pg_hub.pod_db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()


def db_url(hub) -> str:
    return getattr(hub, "db_url", None) or f"sqlite:///{hub.db_file}"


def db_scalar(hub, sql: str, **params) -> int:
    engine = create_engine(db_url(hub))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def activity(client: HubClient) -> dict:
    r = client.api("GET", "/activity")
    assert r.status_code == 200, r.text
    return r.json()


def row(report: dict, username: str) -> dict | None:
    return next((u for u in report["users"] if u["username"] == username), None)


def touch(admin: HubClient, username: str) -> None:
    """Server activity now, through JupyterHub's own activity API (what a single-user server posts)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    r = admin.api("POST", f"/users/{username}/activity", json={"servers": {"": {"last_activity": now}}})
    assert r.status_code in (200, 204), r.text


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(interval)


# ---------------------------------------------------------------- usage, statuses, culler, outage (SQLite hub)

def test_usage_statuses_counts_and_time_remaining(hub, admin, kube, username):
    busy = new_user(hub.url, admin, username + "a")
    idle = new_user(hub.url, admin, username + "b")
    gone = new_user(hub.url, admin, username + "c")  # never starts a server
    busy.start_server()
    idle.start_server()
    pod = kube.user_pod(busy.username)
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    # values.example.yaml's singleuser limits: 4 CPUs and 8G (KubeSpawner writes bytes, 8 GiB)
    assert (limits["cpu"], limits["memory"]) == ("4", str(8 * 2**30)), limits
    started = time.monotonic()

    first = row(activity(admin), busy.username)
    assert first["server_active"] and (first["cpu_percent"] is None or first["cpu_percent"] >= 0)  # null or real

    def measured():
        r = row(activity(admin), busy.username)
        return r if r["cpu_percent"] is not None and (r["memory_mb"] or 0) > 30 else None

    # the server's real usage, which metrics-server scrapes from the node's kubelet (an idle JupyterLab server:
    # about 100 MiB, a little CPU), against the pod's limits
    usage = wait_for(measured, 90, "usage of the running server", interval=2)
    took = time.monotonic() - started
    assert 0 <= usage["cpu_percent"] <= 100 and 30 < usage["memory_mb"] < 1024, usage
    assert abs(usage["memory_percent"] - usage["memory_mb"] / 8192 * 100) < 0.5, usage  # of the 8 GiB limit
    print(f"usage visible {took:.0f}s after the server started")
    # the home dashboard shows figures from the same cache (the user's own token)
    mine = busy.api("GET", f"/users/{busy.username}/dashboard").json()["usage"]
    assert mine["cpu_percent"] is not None and abs(mine["memory_mb"] - usage["memory_mb"]) <= 50, (mine, usage)

    # the idle server goes inactive once its last activity is a minute old; the busy one stays active
    wait_for(lambda: row(activity(admin), idle.username)["status"] == "inactive", 90, "inactive status")
    touch(admin, busy.username)
    r = admin.api("POST", "/activity/sample")
    assert r.status_code == 200, r.text
    counts = r.json()
    report = activity(admin)
    statuses = {u["username"]: u["status"] for u in report["users"]}
    assert statuses[busy.username] == "active" and report["users"][0]["status"] == "active"
    assert statuses[idle.username] == "inactive"
    assert statuses[gone.username] == "offline"
    assert row(report, busy.username)["recently_active"] is True
    assert row(report, idle.username)["recently_active"] is False
    hub_users = admin.api("GET", "/users?limit=1000").json()
    assert counts["success"] is True and counts["total"] == len(hub_users)
    assert counts["active"] + counts["inactive"] + counts["offline"] == counts["total"]
    assert counts["active"] == sum(1 for s in statuses.values() if s == "active")
    assert counts["inactive"] == sum(1 for s in statuses.values() if s == "inactive")
    assert row(report, busy.username)["sample_count"] >= 1
    assert row(report, busy.username)["activity_score"] == 100 and row(report, idle.username)["activity_score"] == 0

    # the culler's session-info and the activity API agree (the same function)
    info = admin.api("GET", f"/users/{busy.username}/session-info").json()
    mine = row(activity(admin), busy.username)["time_remaining_seconds"]
    assert info["time_remaining_seconds"] is not None and abs(info["time_remaining_seconds"] - mine) <= 5
    assert 0 < mine <= 300
    assert row(report, gone.username)["time_remaining_seconds"] is None

    # volumes: the claims' requested capacity (no Prometheus configured)
    assert row(report, busy.username)["volume_capacity_mb"] == (10 + 10 + 5) * 1024
    assert row(report, busy.username)["volume_size_mb"] is None

    total = sum(u["sample_count"] for u in report["users"])
    r = admin.api("POST", "/activity/reset")
    assert r.status_code == 200 and r.json() == {"success": True, "deleted": total}
    assert all(u["sample_count"] == 0 for u in activity(admin)["users"])
    assert "sample" in hub.log_text()


def test_metrics_api_down_page_loads_with_nulls_and_a_note(hub, admin, kube, admin_kubeconfig, username, new_page):
    from ci.dev import devenv

    user = new_user(hub.url, admin, username)
    user.start_server()
    saved = json.loads(devenv.kubectl(admin_kubeconfig, "get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"))
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        saved["metadata"].pop(key, None)
    saved.pop("status", None)
    devenv.kubectl(admin_kubeconfig, "delete", "apiservice", "v1beta1.metrics.k8s.io")
    try:
        def down():
            report = activity(admin)
            return report if not report["metrics_available"] else None

        report = wait_for(down, 30, "the monitor noticing the metrics API is gone")
        assert "Metrics API unavailable" in report["metrics_note"]
        mine = row(report, user.username)
        assert mine["server_active"] and mine["cpu_percent"] is None and mine["memory_mb"] is None
        page = admin.get("/hub/activity")
        assert page.status_code == 200 and 'id="ds-activity-note"' in page.text
        # in Chromium: the table loads, the user's CPU shows "--" and the note is visible
        from ..browser import expect, login

        tab = new_page()
        login(tab, hub.url, "admin")
        tab.goto(f"{hub.url}/hub/activity")
        expect(tab.locator("#ds-activity-note")).to_contain_text("Metrics API unavailable")
        expect(tab.locator(f'tr[data-username="{user.username}"] td.ds-cpu')).to_have_text("--")
    finally:
        devenv.kubectl(admin_kubeconfig, "create", "-f", "-", stdin=json.dumps(saved))
    devenv.kubectl(admin_kubeconfig, "wait", "--for=condition=Available", "apiservice/v1beta1.metrics.k8s.io",
                   "--timeout=60s")
    wait_for(lambda: activity(admin)["metrics_available"], 30, "metrics back")


# ---------------------------------------------------------------- database-facing checks, SQLite and PostgreSQL

@pytest.fixture(params=["sqlite", "postgresql"])
def any_hub(request):
    return request.getfixturevalue("hub" if request.param == "sqlite" else "pg_hub")


def test_renamed_users_history_follows_and_deleted_users_rows_go(any_hub):
    admin = admin_client(any_hub.url)
    tag = uuid.uuid4().hex[:6]
    old, new, doomed = f"r{tag}", f"r{tag}new", f"d{tag}"
    for name in (old, doomed):
        r = admin.api("POST", f"/users/{name}")
        assert r.status_code == 201, r.text
    for _ in range(2):
        assert admin.api("POST", "/activity/sample").status_code == 200
    before = row(activity(admin), old)
    assert before["sample_count"] == 2
    doomed_id = admin.api("GET", f"/users/{doomed}").json().get("id")

    r = admin.api("PATCH", f"/users/{old}", json={"name": new})
    assert r.status_code == 200, r.text
    report = activity(admin)
    assert row(report, old) is None
    assert row(report, new)["sample_count"] == 2 and row(report, new)["activity_score"] == 0

    user_id = db_scalar(any_hub, "SELECT id FROM users WHERE name = :n", n=doomed) if doomed_id is None else doomed_id
    assert db_scalar(any_hub, "SELECT count(*) FROM activity_samples WHERE user_id = :i", i=user_id) == 2
    assert admin.api("DELETE", f"/users/{doomed}").status_code == 204
    assert db_scalar(any_hub, "SELECT count(*) FROM activity_samples WHERE user_id = :i", i=user_id) == 0
    assert db_scalar(any_hub, "SELECT count(*) FROM activity_scores WHERE user_id = :i", i=user_id) == 0
    assert admin.api("POST", f"/users/{doomed}").status_code == 201  # the name again: a fresh history
    assert row(activity(admin), doomed) is None

    counts = admin.api("POST", "/activity/sample").json()
    total = db_scalar(any_hub, "SELECT count(*) FROM activity_samples")
    r = admin.api("POST", "/activity/reset")
    assert r.json() == {"success": True, "deleted": total} and total >= counts["total"]
    assert db_scalar(any_hub, "SELECT count(*) FROM activity_samples") == 0


def test_non_admins_get_json_403(any_hub, username):
    admin = admin_client(any_hub.url)
    user = new_user(any_hub.url, admin, username)
    for method, path in (("GET", "/activity"), ("POST", "/activity/reset"), ("POST", "/activity/sample")):
        r = user.api(method, path)
        assert r.status_code == 403, (path, r.status_code)
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["status"] == 403 and r.json()["message"]
    assert user.get("/hub/activity").status_code == 403
    assert 'id="ds-nav-activity"' not in user.get("/hub/home").text
    assert 'id="ds-nav-activity"' in admin.get("/hub/home").text


def test_custom_scopes_read_and_admin(hub, admin):
    viewer, keeper = new_user(hub.url, admin, VIEWER), new_user(hub.url, admin, KEEPER)
    assert viewer.api("GET", "/activity").status_code == 200
    assert viewer.get("/hub/activity").status_code == 200
    assert 'id="ds-nav-activity"' in viewer.get("/hub/home").text
    page = viewer.get("/hub/activity").text
    assert 'id="ds-activity-reset"' not in page  # read only: no Reset button
    for path in ("/activity/reset", "/activity/sample"):
        r = viewer.api("POST", path)
        assert r.status_code == 403 and r.json()["status"] == 403
    r = keeper.api("POST", "/activity/sample")
    assert r.status_code == 200 and r.json()["success"] is True
    assert keeper.api("GET", "/activity").status_code == 200  # admin implies read
    assert 'id="ds-activity-reset"' in keeper.get("/hub/activity").text
