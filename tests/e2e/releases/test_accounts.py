"""Accounts on the installed chart's hub: real NativeAuthenticator, real login/sign-up/change-password forms, real
API.

The first admin logs in with the password from the chart's Secret; users an admin adds get generated passwords,
handed out once; renames keep the login; Discard never deletes a hub user; admin names cannot be claimed by signing
up. Spawns run against the local control plane.

One release for the module: each test asks for the settings it needs (``on``), which upgrades the release when they
differ from the last install (``Release.install``: the hub restarts, its database stays), so every test uses user
names of its own.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid

import pytest
import requests

from ci.dev import devenv

from ..conftest import Kube
from ..hubclient import PASSWORD, HubClient, admin_client, new_user
from ..release import Release

NEW_PASSWORD = "a-new-password-of-my-own"
SIGNUP_OFF = {"NativeAuthenticator": {"enable_signup": False}}


def names(n: int) -> list[str]:
    return [f"a{uuid.uuid4().hex[:8]}" for _ in range(n)]


def on(release: Release, settings: dict | None = None, hub_config: dict | None = None) -> Release:
    """The module's release with these ``custom.ds`` settings and ``hub.config`` sections over the shipped values
    (which turn GPUs off)."""
    return release.install(settings, hub_config=hub_config)


@pytest.fixture
def hub(release: Release) -> Release:
    """The release with the shipped values."""
    return on(release)


@pytest.fixture
def admin(hub: Release) -> HubClient:
    return admin_client(hub.url)


def db_rows(hub: Release, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(hub.db_file) as db:
        return db.execute(sql, args).fetchall()


def login_fails(url: str, username: str, password: str) -> bool:
    try:
        HubClient(url, username).login(password)
    except AssertionError:
        return True
    return False


def change_password(user: HubClient, old: str, new: str) -> None:
    """Through NativeAuthenticator's real form."""
    user.get("/hub/change-password")
    r = user.session.post(f"{user.url}/hub/change-password", timeout=30, data={
        "old_password": old, "new_password": new, "new_password_confirmation": new, "_xsrf": user._xsrf()})
    assert r.status_code == 200 and "changed successfully" in r.text, r.text[-500:]


def signup_form(url: str, username: str, password: str = PASSWORD) -> requests.Response:
    client = HubClient(url, username)
    client.get("/hub/signup")
    return client.session.post(f"{url}/hub/signup", timeout=30, data={
        "username": username, "signup_password": password, "signup_password_confirmation": password,
        "_xsrf": client._xsrf()})


@pytest.fixture(scope="module", params=["signup-off", "signup-on"])
def signup(request: pytest.FixtureRequest) -> str:
    """Module-scoped, so that pytest runs the tests of one value together (one upgrade each way)."""
    return request.param


@pytest.fixture
def any_hub(release: Release, signup: str) -> Release:
    """The same flows with NativeAuthenticator's enable_signup true (values.example.yaml's) and false."""
    return on(release, hub_config=SIGNUP_OFF if signup == "signup-off" else None)


# ---------------------------------------------------------------- admin-created users


def test_admin_created_users_get_credentials_once_and_must_change_them(any_hub, kube):
    hub = any_hub
    signup_on = hub.hub_config.get("NativeAuthenticator", {}).get("enable_signup", True)
    assert requests.get(f"{hub.url}/hub/signup", timeout=10).status_code == (200 if signup_on else 404)
    admin = admin_client(hub.url)
    batch, single = names(2), names(1)[0]
    r = admin.api("POST", "/users", json={"usernames": batch})
    assert r.status_code == 201, r.text
    r = admin.api("POST", f"/users/{single}", json={})
    assert r.status_code == 201, r.text
    created = [*batch, single]

    r = admin.api("POST", "/admin/credentials", json={"usernames": created})
    assert r.status_code == 200, r.text
    credentials = {c["username"]: c["password"] for c in r.json()["credentials"]}
    assert sorted(credentials) == sorted(created)
    for password in credentials.values():
        words = password.split("-")
        assert len(words) == 4 and all(4 <= len(w) <= 6 for w in words), password
    # once: a second read gets nothing
    r = admin.api("POST", "/admin/credentials", json={"usernames": created})
    assert r.status_code == 200 and r.json() == {"credentials": []}
    # stored hashed (bcrypt), never in clear, authorized, one row each
    for name in created:
        rows = db_rows(hub, "SELECT password, is_authorized FROM users_info WHERE username = ?", name)
        assert len(rows) == 1 and rows[0][1] == 1
        assert bytes(rows[0][0]).startswith(b"$2") and credentials[name].encode() not in bytes(rows[0][0])
    log = hub.log_text()
    assert not any(p in log for p in credentials.values())

    # each logs in; the generated password must be changed before a server starts
    user = HubClient(hub.url, batch[0]).login(credentials[batch[0]])
    r = user.api("POST", f"/users/{batch[0]}/server")
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "Change your password before starting a server: /hub/change-password"
    assert kube.user_pod(batch[0]) is None
    user.wait_server(ready=False, timeout=60)  # JupyterHub cleans up after a refused spawn
    page = user.get("/hub/spawn")  # the browser path after login shows the reason and the link
    assert page.status_code == 403 and "Your password was generated by an admin" in page.text
    user.wait_server(ready=False, timeout=60)
    for name in created[1:]:
        HubClient(hub.url, name).login(credentials[name])

    change_password(user, credentials[batch[0]], NEW_PASSWORD)
    assert login_fails(hub.url, batch[0], credentials[batch[0]])
    user = HubClient(hub.url, batch[0]).login(NEW_PASSWORD)
    user.start_server()
    assert kube.user_pod(batch[0]) is not None
    user.stop_server()

    # nothing created twice
    r = admin.api("POST", "/users", json={"usernames": batch})
    assert r.status_code == 409, r.text
    r = admin.api("POST", f"/users/{single}", json={})
    assert r.status_code == 409, r.text
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", single) == [(1,)]


def test_forced_change_survives_a_hub_restart(hub):
    admin = admin_client(hub.url)
    (name,) = names(1)
    assert admin.api("POST", f"/users/{name}", json={}).status_code == 201
    password = admin.api("POST", "/admin/credentials", json={"usernames": [name]}).json()["credentials"][0]["password"]
    hub.stop()
    hub.start()
    user = HubClient(hub.url, name).login(password)
    r = user.api("POST", f"/users/{name}/server")
    assert r.status_code == 403 and "Change your password" in r.json()["message"], r.text
    # an admin-initiated restart forgot the in-memory credentials: nobody can read them any more
    r = admin_client(hub.url).api("POST", "/admin/credentials", json={"usernames": [name]})
    assert r.json() == {"credentials": []}


def test_credentials_bad_input_is_json_4xx(hub, admin, username):
    cases = [
        ("not json", {"data": "usernames=x"}, 400),
        ("a list", {"json": ["x"]}, 400),
        ("no usernames", {"json": {}}, 400),
        ("empty usernames", {"json": {"usernames": []}}, 400),
        ("not strings", {"json": {"usernames": [1]}}, 400),
        ("unknown user", {"json": {"usernames": ["nobody-at-all"]}}, 404),
    ]
    for label, kwargs, status in cases:
        r = admin.api("POST", "/admin/credentials", **kwargs)
        assert r.status_code == status, (label, r.status_code, r.text)
        body = r.json()
        assert body["status"] == status and body["message"], (label, body)

    # a user (no admin:users) may not read anyone's credentials, not even after being created
    user = new_user(hub.url, admin, username)
    r = user.api("POST", "/admin/credentials", json={"usernames": [username]})
    assert r.status_code == 403 and r.json()["status"] == 403


def test_credentials_only_for_the_admin_who_created_them(hub, admin):
    second, created = names(2)
    r = admin.api("POST", f"/users/{second}", json={"admin": True})
    assert r.status_code == 201, r.text
    second_password = admin.api("POST", "/admin/credentials",
                                json={"usernames": [second]}).json()["credentials"][0]["password"]
    other = HubClient(hub.url, second).login(second_password)
    assert other.api("POST", "/users", json={"usernames": [created]}).status_code == 201
    # the first admin cannot read what the second created
    r = admin.api("POST", "/admin/credentials", json={"usernames": [created]})
    assert r.status_code == 403 and created in r.json()["message"], r.text
    # ... and that refusal consumed nothing
    r = other.api("POST", "/admin/credentials", json={"usernames": [created]})
    assert [c["username"] for c in r.json()["credentials"]] == [created]


def test_admin_create_over_a_signup_replaces_its_credential(hub, admin):
    """Whoever signed up first is not who the admin creates: the sign-up's password stops working, the admin gets a
    generated one, and the event trail says what was replaced."""
    (name,) = names(1)
    HubClient(hub.url, name).signup()  # waiting for authorization; not a hub user yet
    assert admin.api("POST", "/users", json={"usernames": [name]}).status_code == 201
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", name) == [(1,)]
    (credential,) = admin.api("POST", "/admin/credentials", json={"usernames": [name]}).json()["credentials"]
    assert login_fails(hub.url, name, PASSWORD)
    HubClient(hub.url, name).login(credential["password"])
    events = admin.api("GET", "/ds/events", params={"user": name, "kind": "account"}).json()["events"]
    assert [e["replaced_signup"] for e in events] == ["pending"], events


# ---------------------------------------------------------------- rename and discard (bugs on main)


def test_rename_keeps_the_login_and_frees_the_old_name(any_hub):
    """Regression: after PATCH name, the new name logs in with the same password and the old one is refused."""
    hub = any_hub
    admin = admin_client(hub.url)
    old, new = names(2)
    assert admin.api("POST", f"/users/{old}", json={}).status_code == 201
    password = admin.api("POST", "/admin/credentials", json={"usernames": [old]}).json()["credentials"][0]["password"]
    r = admin.api("PATCH", f"/users/{old}", json={"name": new})
    assert r.status_code == 200, r.text
    HubClient(hub.url, new).login(password)
    assert login_fails(hub.url, old, password)
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", old) == [(0,)]
    r = admin.api("GET", f"/users/{old}")
    assert r.status_code == 404  # the old name did not come back as a new, empty account


def test_discard_refuses_hub_users_and_keeps_their_claims(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)  # signed up and authorized: a hub user after login
    user.start_server()
    user.stop_server()
    kube.wait_user_pod_gone(username)
    claims = {c["metadata"]["name"] for c in kube.user_claims(username).values()}
    assert len(claims) == 3
    r = admin.api("POST", f"/ds/signups/{username}", json={"authorized": False})  # NativeAuthenticator's Discard
    assert r.status_code == 200, r.text                                            # would now delete it
    r = admin.api("DELETE", f"/ds/signups/{username}")
    assert r.status_code == 409 and "delete the user from the admin page" in r.json()["message"]
    assert admin.api("GET", f"/users/{username}").status_code == 200
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", username) == [(1,)]
    assert {c["metadata"]["name"] for c in kube.user_claims(username).values()} == claims
    row = admin.get("/hub/authorize").text.split(f'<tr data-username="{username}"')[1].split("</tr>")[0]
    assert "ds-discard" not in row and 'data-ds-action="authorize"' in row


def test_discard_of_a_signup_that_never_became_a_hub_user_still_works(hub, admin):
    (name,) = names(1)
    HubClient(hub.url, name).signup()
    row = admin.get("/hub/authorize").text.split(f'<tr data-username="{name}"')[1].split("</tr>")[0]
    assert "ds-discard" in row
    r = admin.api("DELETE", f"/ds/signups/{name}")
    assert r.status_code == 204, r.text
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", name) == [(0,)]
    assert admin.api("DELETE", f"/ds/signups/{name}").status_code == 404


def test_discard_needs_admin_users(hub, admin, username):
    user = new_user(hub.url, admin, username)
    r = user.api("DELETE", f"/ds/signups/{username}")
    assert r.status_code == 403


# ---------------------------------------------------------------- the first admin


def first_admin_password(kube: Kube) -> str:
    return base64.b64decode(kube.json("secret", devenv.FIRST_ADMIN_SECRET)["data"]["password"]).decode()


def set_first_admin_password(kube: Kube, password: str) -> None:
    patch = {"data": {"password": base64.b64encode(password.encode()).decode()}}
    kube("patch", "secret", devenv.FIRST_ADMIN_SECRET, "--type=merge", "-p", json.dumps(patch))


def fresh_database(hub: Release) -> None:
    """The hub started again on an empty database (jupyterhub.sqlite deleted from its claim while it is down)."""
    db_file = hub.db_file
    hub.stop()
    db_file.unlink()
    hub.start()


def test_first_admin_logs_in_with_the_generated_password_on_a_fresh_database(release, kube):
    """The chart generates the password when its Secret does not exist (the module's release got one pre-created
    with ``hubclient.PASSWORD``: it is deleted, and ``helm upgrade`` renders a new one), and the hub starts on an
    empty database with it. Afterwards the Secret gets ``PASSWORD`` back and the hub another empty database."""
    hub = on(release)
    kube("delete", "secret", devenv.FIRST_ADMIN_SECRET)
    try:
        release.reinstall()  # the values of ``on(release)`` again: helm renders the missing Secret, a new password
        secret = first_admin_password(kube)
        assert secret != PASSWORD
        fresh_database(hub)
        assert login_fails(hub.url, "admin", PASSWORD)
        admin = admin_client(hub.url, secret)
        assert admin.api("GET", "/user").json()["admin"] is True
        # nobody can claim the admin name by signing up
        r = signup_form(hub.url, "admin", "another-password-1")
        assert r.status_code == 403 and "admin account and cannot be claimed" in r.text
        assert login_fails(hub.url, "admin", "another-password-1")
        # a restart creates nothing twice and never overwrites a changed password
        change_password(admin, secret, NEW_PASSWORD)
        hub.stop()
        hub.start()
        assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = 'admin'") == [(1,)]
        assert login_fails(hub.url, "admin", secret)
        admin_client(hub.url, NEW_PASSWORD)
    finally:
        set_first_admin_password(kube, PASSWORD)
        fresh_database(hub)


def test_lockout_after_five_failed_logins(hub, admin, username):
    new_user(hub.url, admin, username)
    for _ in range(5):
        assert login_fails(hub.url, username, "wrong-password")
    assert login_fails(hub.url, username, PASSWORD)  # locked for 600 s, even with the right password


def test_navbar_links(hub, admin, username):
    home = admin.get("/hub/home").text
    assert 'href="/hub/change-password"' in home and 'href="/hub/authorize"' in home
    user = new_user(hub.url, admin, username)
    home = user.get("/hub/home").text
    assert 'href="/hub/change-password"' in home and 'href="/hub/authorize"' not in home


# ---------------------------------------------------------------- the chart's Secret on a real API server


def test_force_password_change_off(release, kube):
    hub = on(release, {"accounts": {"forcePasswordChange": False, "passwordWords": 5, "passwordDelimiter": "."}})
    admin = admin_client(hub.url)
    (name,) = names(1)
    assert admin.api("POST", "/users", json={"usernames": [name]}).status_code == 201
    password = admin.api("POST", "/admin/credentials", json={"usernames": [name]}).json()["credentials"][0]["password"]
    assert len(password.split(".")) == 5
    user = HubClient(hub.url, name).login(password)
    user.start_server()
    user.stop_server()


def test_users_created_at_start_get_no_generated_password(release):
    """Upstream's admin bootstrap trap: startup-created users must not get passwords nobody knows."""
    (early,) = names(1)
    hub = on(release, hub_config={"Authenticator": {"allowed_users": [early]}})
    assert db_rows(hub, "SELECT COUNT(*) FROM users_info WHERE username = ?", early) == [(0,)]
    admin = admin_client(hub.url)
    assert admin.api("POST", "/admin/credentials", json={"usernames": [early]}).json() == {"credentials": []}
    # nobody may claim such a user by signing up (NativeAuthenticator would pre-authorize the claim) ...
    r = signup_form(hub.url, early)
    assert r.status_code == 403 and "already an account on this hub" in r.text
    assert login_fails(hub.url, early, PASSWORD)
    # ... an admin sets their password instead
    page = admin.get(f"/hub/change-password/{early}")
    assert page.status_code == 200
    r = admin.session.post(f"{hub.url}/hub/change-password/{early}", timeout=30, data={
        "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD, "_xsrf": admin._xsrf()})
    assert r.status_code == 200 and "changed successfully" in r.text, r.text[-500:]
    HubClient(hub.url, early).login(NEW_PASSWORD)


def test_first_admin_name_follows_the_setting(release):
    hub = on(release, {"accounts": {"firstAdmin": "root"}})
    root = HubClient(hub.url, "root").login(PASSWORD)
    assert root.api("GET", "/user").json()["admin"] is True


def test_admin_signup_can_be_allowed_explicitly(release):
    (name,) = names(1)
    hub = on(release, {"accounts": {"allowAdminSignup": True}}, {"Authenticator": {"admin_users": [name]}})
    r = signup_form(hub.url, name)
    assert r.status_code == 200 and "The signup was successful" in r.text
    assert HubClient(hub.url, name).login().api("GET", "/user").json()["admin"] is True


# ---------------------------------------------------------------- lockout and navigation


def test_chart_keeps_the_first_admin_password_across_helm_upgrade(admin_kubeconfig, tmp_path):
    """`helm install` generates it; `helm upgrade` finds it with lookup and keeps it. The real Z2JH chart is
    installed with it, with the chart's own values only, into a namespace of its own (the module's namespace
    holds the module's release, whose Secret was pre-created, and the chart allows one release per namespace);
    our RBAC and shared claim are off, and so is Z2JH's pre-install image-puller hook, a Job helm would wait
    for."""
    chart = devenv.chart.prepare_chart(tmp_path / "work")
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"acc-{suffix}", f"e2e-helm-{suffix}"
    kube = Kube(admin_kubeconfig, namespace)
    devenv.kubectl(admin_kubeconfig, "create", "namespace", namespace)
    args = [release, str(chart), "--namespace", namespace, "--kubeconfig", str(admin_kubeconfig),
            "--set", "rbac.create=false", "--set", "jupyterhub.custom.ds.storage.shared.enabled=false",
            "--set", "jupyterhub.prePuller.hook.enabled=false"]

    def password() -> str:
        return kube.json("secret", "jupyterhub-ds-first-admin")["data"]["password"]

    try:
        devenv.chart._run_helm(["install", *args], tmp_path / "helm-home")
        first = password()
        devenv.chart._run_helm(["upgrade", *args, "--set", "jupyterhub.custom.ds.gpu.mode=0"], tmp_path / "helm-home")
        assert password() == first
    finally:
        devenv.chart._run_helm(["uninstall", release, "--namespace", namespace, "--kubeconfig",
                                str(admin_kubeconfig)], tmp_path / "helm-home")
        devenv.kubectl(admin_kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
