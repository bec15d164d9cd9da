"""Taking over someone else's account: by signing up first, through an admin's browser, with another spelling of the
name, with a grant filtered to one group, or by waiting for the first admin to come back with the install-time
password.

Before issue 20: an admin creating ``bob`` over a pending sign-up kept the signer's password (the attacker owned bob,
with bob's groups and admin flag); a user from the config (``load_roles``, ``load_groups``, ``allowed_users``) had no
credential, so anyone could sign up under the name; GET ``/hub/authorize/<name>`` and ``/hub/discard/<name>`` changed
state (an attacker's page opened by an admin authorized a sign-up or unauthorized the first admin); ``/hub/discard/BOB``
deleted bob's credential; sign-up names could hold line feeds and bidi controls; a delegate holding
``admin:users!group=x`` listed and authorized every sign-up, read credentials and set a member's password; the
forced password change refused an admin's start of the user's server yet nothing stopped the user using a server
started for them; any password of one character went; the first admin came back with the Secret's password after a
rename or a deletion.

Every test but the last runs on the shared ``adversary_hub`` (its ``dora`` holds ``admin:users!group=course-x``); the
last restarts the hub, so it has a release of its own.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest
import requests

from ..hubclient import PASSWORD, HubClient, ServiceClient, admin_client, new_user
from ..release import Release
from .conftest import COURSE, DELEGATE

pytestmark = pytest.mark.cluster

ATTACKER = "the-attackers-own-password"
NEW_PASSWORD = "a-new-password-of-my-own"


def fresh(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def signup(url: str, name: str, password: str = ATTACKER) -> requests.Response:
    """NativeAuthenticator's real sign-up form, as a stranger (no raise on a refusal)."""
    client = HubClient(url, "x")
    client.get("/hub/signup")
    return client.session.post(f"{url}/hub/signup", timeout=60, data={
        "username": name, "signup_password": password, "signup_password_confirmation": password,
        "_xsrf": client._xsrf()})


def login_fails(url: str, name: str, password: str) -> bool:
    try:
        HubClient(url, name).login(password)
    except AssertionError:
        return True
    return False


def signup_rows(hub: Release, name: str) -> list[tuple]:
    with sqlite3.connect(hub.db_file) as db:
        return db.execute("SELECT is_authorized, password FROM users_info WHERE username = ?", (name,)).fetchall()


def change_own_password(user: HubClient, old: str, new: str) -> str:
    """NativeAuthenticator's form at /hub/change-password; the page's message."""
    user.get("/hub/change-password")
    r = user.session.post(f"{user.url}/hub/change-password", timeout=60, data={
        "old_password": old, "new_password": new, "new_password_confirmation": new, "_xsrf": user._xsrf()})
    assert r.status_code == 200, r.status_code
    return r.text


def set_password_as(actor: HubClient, name: str, new: str) -> requests.Response:
    """The admin form at /hub/change-password/<name>, posted by ``actor``."""
    actor.get(f"/hub/change-password/{name}")
    return actor.session.post(f"{actor.url}/hub/change-password/{name}", timeout=60, data={
        "new_password": new, "new_password_confirmation": new, "_xsrf": actor._xsrf()})


def created_by_admin(creator: HubClient, name: str, **body: object) -> str:
    """A user an admin creates through the API; their generated password."""
    r = creator.api("POST", f"/users/{name}", json=body)
    assert r.status_code == 201, r.text
    (credential,) = creator.api("POST", "/admin/credentials", json={"usernames": [name]}).json()["credentials"]
    return credential["password"]


# ---------------------------------------------------------------- item 3: claiming a name before the admin


def test_signing_up_first_does_not_take_over_an_account_the_admin_creates(hub, admin):
    name = fresh("bob")
    assert signup(hub.url, name).status_code == 200  # waiting for authorization
    r = admin.api("POST", "/users", json={"usernames": [name], "admin": True})
    assert r.status_code == 201, r.text
    # the admin then authorizes the sign-up under that name (the old dialog said bob "already had a password")
    admin.api("POST", f"/ds/signups/{name}", json={"authorized": True})
    assert login_fails(hub.url, name, ATTACKER)
    (credential,) = admin.api("POST", "/admin/credentials", json={"usernames": [name]}).json()["credentials"]
    assert HubClient(hub.url, name).login(credential["password"]).api("GET", "/user").json()["admin"] is True


def test_a_user_from_the_config_cannot_be_claimed_by_signing_up(hub, admin):
    r = signup(hub.url, DELEGATE)  # dora exists from load_roles, with no password of her own
    assert r.status_code == 403, r.status_code
    assert "already an account on this hub" in r.text, r.text[-500:]
    admin.api("POST", f"/ds/signups/{DELEGATE}", json={"authorized": True})
    assert login_fails(hub.url, DELEGATE, ATTACKER)


# ---------------------------------------------------------------- item 5: no state change on GET, one name rule


def test_get_on_authorize_and_discard_changes_nothing(hub, admin):
    pending, other = fresh("p"), fresh("q")
    for name in (pending, other):
        assert signup(hub.url, name).status_code == 200
    # what an attacker's page makes an admin's browser fetch: cookies, no XSRF token
    assert admin.get(f"/hub/authorize/{pending}").status_code == 405
    assert admin.get(f"/hub/discard/{other}").status_code == 405
    assert admin.get("/hub/authorize/admin").status_code == 405  # would unauthorize the first admin
    assert [row[0] for row in signup_rows(hub, pending)] == [0]
    assert len(signup_rows(hub, other)) == 1
    assert login_fails(hub.url, pending, ATTACKER)
    admin_client(hub.url)  # the first admin still logs in


def test_another_spelling_of_the_name_cannot_discard_a_credential(hub, admin):
    name = fresh("c")
    new_user(hub.url, admin, name)
    r = admin.api("POST", f"/ds/signups/{name}", json={"authorized": False})  # e.g. suspended for a while
    assert r.status_code == 200, r.text
    assert admin.get(f"/hub/discard/{name.upper()}").status_code == 405
    r = admin.api("DELETE", f"/ds/signups/{name.upper()}")
    assert r.status_code == 409 and r.json()["message"].startswith(f"{name} is a hub user"), r.text
    assert len(signup_rows(hub, name)) == 1
    assert admin.api("POST", f"/ds/signups/{name.upper()}", json={"authorized": True}).json()["username"] == name
    HubClient(hub.url, name).login()


@pytest.mark.parametrize("name", ["bob\nINFO:jupyterhub.app:forged-line", "adm\u202eni", "ad\u200bmin",
                                  "bob\u2066x", "bob\u00adx", "bob\rx"],
                         ids=["line-feed", "bidi-override", "zero-width-space", "bidi-isolate", "soft-hyphen", "cr"])
def test_forged_and_invisible_names_are_refused_at_signup(hub, name):
    r = signup(hub.url, name)
    assert r.status_code == 403 and "not a valid user name" in r.text, (r.status_code, r.text[-500:])
    assert signup_rows(hub, name.lower()) == []


# ---------------------------------------------------------------- item 4: a grant filtered to one group


def test_a_filtered_delegate_cannot_touch_signups_credentials_or_passwords(hub, admin):
    dora = new_user(hub.url, admin, DELEGATE)
    member, pending = fresh("m"), fresh("p")
    new_user(hub.url, admin, member)
    admin.api("POST", f"/groups/{COURSE}")  # 201, or 409 when another module made it
    r = admin.api("POST", f"/groups/{COURSE}/users", json={"users": [member]})
    assert r.status_code == 200, r.text
    assert signup(hub.url, pending).status_code == 200

    assert dora.api("GET", "/ds/signups").status_code == 403
    assert dora.get("/hub/authorize").status_code == 403
    for name, authorized in ((pending, True), (member, False), ("admin", False)):
        r = dora.api("POST", f"/ds/signups/{name}", json={"authorized": authorized})
        assert r.status_code in (403, 404), (name, r.text)
    assert dora.api("DELETE", f"/ds/signups/{pending}").status_code in (403, 404)
    assert [row[0] for row in signup_rows(hub, pending)] == [0]
    assert [row[0] for row in signup_rows(hub, member)] == [1]

    # credentials: whatever JupyterHub lets her create, she reads no password
    created = fresh("k")
    dora.api("POST", "/users", json={"usernames": [created]})
    r = dora.api("POST", "/admin/credentials", json={"usernames": [created]})
    assert r.status_code == 403, r.text

    # passwords: not her group's member's (she would log in as them), not the first admin's
    for name in (member, "admin"):
        r = set_password_as(dora, name, NEW_PASSWORD)
        assert r.status_code in (403, 404), (name, r.status_code)
    HubClient(hub.url, member).login()
    admin_client(hub.url)


# ---------------------------------------------------------------- item 7: the forced change, the password policy


def wait_ready(client: HubClient | ServiceClient, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = client.api("GET", f"/users/{name}").json().get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(1)
    raise TimeoutError(f"server of {name} not ready")


def test_an_admin_starts_the_server_but_the_user_cannot_use_it_before_the_change(hub, admin, service):
    name = fresh("f")
    password = created_by_admin(admin, name)
    r = admin.api("POST", f"/users/{name}/server")  # the admin page's Start button
    assert r.status_code in (201, 202), r.text
    wait_ready(admin, name)

    user = HubClient(hub.url, name).login(password)
    r = user.get(f"/user/{name}/lab")  # the server sends the browser to the hub's OAuth authorization
    assert r.status_code == 403 and "Change your password" in r.text, (r.status_code, r.url, r.text[-500:])
    assert "/hub/api/oauth2/authorize" in r.url
    r = user.api("POST", f"/users/{name}/tokens", json={"note": "around the OAuth step"})
    assert r.status_code == 403, r.text

    assert "changed successfully" in change_own_password(user, password, NEW_PASSWORD)
    r = user.get(f"/user/{name}/lab")
    assert r.status_code == 200 and r.url.startswith(f"{hub.url}/user/{name}/"), (r.status_code, r.url)
    assert service.api("DELETE", f"/users/{name}/server").status_code in (202, 204)


def test_a_service_starts_a_server_for_a_user_who_must_change(hub, admin, service):
    name = fresh("s")
    created_by_admin(admin, name)
    r = service.api("POST", f"/users/{name}/server")
    assert r.status_code in (201, 202), r.text
    wait_ready(service, name)
    assert service.api("DELETE", f"/users/{name}/server").status_code in (202, 204)


def test_password_policy_on_change_and_signup(hub, admin):
    name = fresh("w")
    generated = created_by_admin(admin, name)
    user = HubClient(hub.url, name).login(generated)
    assert "at least 12 characters" in change_own_password(user, generated, "short-pw-1")
    assert "too common" in change_own_password(user, generated, "qwerty123456")
    assert "must differ" in change_own_password(user, generated, generated)  # keeping the generated one
    assert not login_fails(hub.url, name, generated)  # nothing changed so far
    r = set_password_as(admin, name, "qwerty123456")
    assert r.status_code == 200 and "too common" in r.text
    assert "changed successfully" in change_own_password(user, generated, NEW_PASSWORD)
    HubClient(hub.url, name).login(NEW_PASSWORD)
    r = signup(hub.url, fresh("n"), "short-pw-1")
    assert "at least 12 characters" in r.text and "successful" not in r.text


# ---------------------------------------------------------------- item 7: the first admin, provisioned once


@pytest.fixture(scope="module")
def own_hub(own_release: Release) -> Release:
    return own_release.install()


def test_a_renamed_or_deleted_first_admin_does_not_come_back_with_the_secrets_password(own_hub):
    hub = own_hub
    admin = admin_client(hub.url)  # provisioned from the Secret (PASSWORD) on the first start
    ops_password = created_by_admin(admin, "ops", admin=True)  # a second admin (only admins modify admins)
    r = HubClient(hub.url, "ops").login(ops_password).api("PATCH", "/users/admin", json={"name": "boss"})
    assert r.status_code == 200, r.text
    hub.stop()
    hub.start()  # admin_users makes "admin" again
    assert login_fails(hub.url, "admin", PASSWORD)
    HubClient(hub.url, "boss").login(PASSWORD)  # the renamed account kept its own credential

    r = HubClient(hub.url, "ops").login(ops_password).api("DELETE", "/users/admin")
    assert r.status_code == 204, r.text
    hub.stop()
    hub.start()
    assert login_fails(hub.url, "admin", PASSWORD)
    assert signup(hub.url, "admin", ATTACKER).status_code == 403  # nor can anyone claim it
    assert login_fails(hub.url, "admin", ATTACKER)
