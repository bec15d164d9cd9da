"""Our scopes in the JupyterHub config (custom scopes, the user role's grants) and the versioned UI assets.

The scopes themselves are proven against a real hub in tests/e2e/chart/test_scopes.py; here every jupyterhub-ds
endpoint is also run with a grant filtered to one group (JupyterHub's own scope checks on a real ORM database):
hub-wide endpoints refuse it, per-user ones answer for the group's members only (tests/e2e/adversarial/
test_filtered_grants.py performs the same attacks on an installed chart).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from unittest import mock

import pytest
from jupyterhub import orm
from jupyterhub import scopes as jh_scopes
from tornado import httputil, web
from traitlets.config import Config

from hub_extensions import (
    accounts_api,
    activity_api,
    capacity_api,
    configure,
    culler_api,
    dashboard_api,
    group_policies_api,
    health_api,
    notifications_api,
    scopes,
    settings_page_api,
    signups_api,
    static_api,
    storage_api,
    trail_api,
)
from hub_extensions.branding import Branding
from hub_extensions.runtime import Runtime
from hub_extensions.settings import Settings


def test_custom_scopes_are_defined_for_the_decorators():
    for scope in (scopes.READ, scopes.RESET, scopes.NOTIFY, scopes.ACTIVITY_READ, scopes.HEALTH_READ):
        assert scope in jh_scopes.scope_definitions
    # reset implies read: a role granting reset can see what it resets
    assert jh_scopes._expand_scope(scopes.RESET) >= {scopes.READ}
    assert jh_scopes._expand_scope(scopes.ACTIVITY_ADMIN) >= {scopes.ACTIVITY_READ}


def test_configure_registers_scopes_and_grants_them_to_the_user_role():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    assert set(c.JupyterHub.custom_scopes) == {scopes.READ, scopes.RESET, scopes.NOTIFY, scopes.ACTIVITY_READ,
                                               scopes.ACTIVITY_ADMIN, scopes.HEALTH_READ, scopes.ENV_READ,
                                               scopes.ENV_WRITE}
    assert all(d["description"] for d in c.JupyterHub.custom_scopes.values())
    (user,) = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert user["scopes"] == ["self", "custom:ds-volumes:read!user", "custom:ds-volumes:reset!user",
                              "custom:ds-env:write!user"]
    assert "users" not in user and "groups" not in user  # membership stays JupyterHub's default (everyone)
    # JupyterHub accepts the identical redefinition it will make from c.JupyterHub.custom_scopes
    jh_scopes.define_custom_scopes(dict(c.JupyterHub.custom_scopes))


def test_configured_roles_are_merged_not_replaced():
    c = Config()
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", "read:hub"]},
        {"name": "instructor", "scopes": ["servers!group=course"], "users": ["ann"]},
    ]
    c.JupyterHub.custom_scopes = {"custom:other:thing": {"description": "theirs"}}
    scopes.register(c)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["user", "instructor"]  # one user role, no duplicate
    assert roles["user"]["scopes"] == ["self", "read:hub", *scopes.USER_ROLE_SCOPES]
    assert roles["instructor"] == {"name": "instructor", "scopes": ["servers!group=course"], "users": ["ann"]}
    assert set(c.JupyterHub.custom_scopes) == {"custom:other:thing", *scopes.CUSTOM_SCOPES}
    scopes.register(c)  # idempotent
    assert next(r for r in c.JupyterHub.load_roles if r["name"] == "user")["scopes"] == roles["user"]["scopes"]


def test_roles_appended_before_configure_are_kept():
    c = Config()
    c.JupyterHub.load_roles.append({"name": "user", "description": "theirs"})  # a LazyConfigValue
    scopes.register(c)
    assert c.JupyterHub.load_roles == [{"name": "user", "description": "theirs",
                                        "scopes": ["self", *scopes.USER_ROLE_SCOPES]}]


@pytest.mark.parametrize(("method", "expected"), [
    (storage_api.ManageVolumesHandler.get, {scopes.READ, scopes.ADMIN}),
    (storage_api.ManageVolumesHandler.delete, {scopes.RESET, scopes.ADMIN}),
    (storage_api.AdoptableVolumesHandler.get, {scopes.ADMIN}),
    (storage_api.AdoptVolumesHandler.post, {scopes.ADMIN}),
    (storage_api.RestartServerHandler.post, {"servers"}),
])
def test_handlers_check_the_right_scopes(method, expected):
    """``needs_scope`` keeps its scopes in the wrapper's closure; no `servers` for data, no data scope for restart."""
    cells = [c.cell_contents for c in method.__closure__ or ()]
    (found,) = [c for c in cells if isinstance(c, tuple) and c and all(isinstance(s, str) for s in c)]
    assert set(found) == expected


def test_asset_urls_carry_a_content_hash(tmp_path, monkeypatch):
    versions = static_api.asset_versions()
    assert {"storage.css", "storage.js", "accounts.js"} <= set(versions)
    assert all(re.fullmatch(r"[0-9a-f]{16}", v) for v in versions.values())
    # a changed file gets a new URL (the old one may be cached for ten years)
    shutil.copytree(static_api.STATIC_DIR, tmp_path / "static")
    monkeypatch.setattr(static_api, "STATIC_DIR", str(tmp_path / "static"))
    assert static_api.asset_versions() == versions
    with open(os.path.join(static_api.STATIC_DIR, "storage.js"), "a") as f:
        f.write("\n// changed\n")
    changed = static_api.asset_versions()
    assert changed["storage.js"] != versions["storage.js"] and changed["storage.css"] == versions["storage.css"]


def test_configure_hands_the_hashes_to_the_templates():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    assert c.JupyterHub.template_vars.get_value({})["ds_assets"] == static_api.asset_versions()


# --- filtered grants stay filtered (issue 20, item 4) ---
#
# Every jupyterhub-ds endpoint's method is run with a request holding one grant, the real JupyterHub scope
# machinery (needs_scope, expand/parse, group membership in a real ORM database) deciding. The handler's body is
# stopped where it would start working (its first call past the scope check raises ``Reached``): the table says
# only whether the check let the request through.

COURSE = "course-x"


class Reached(Exception):
    """The request got past the scope check into the handler's body."""


def _reach(*args, **kwargs):
    raise Reached(args, kwargs)


async def _reach_async(*args, **kwargs):
    raise Reached(args, kwargs)


@pytest.fixture
def hub_db():
    """A real JupyterHub database: ``member`` in the course group, ``outsider`` not."""
    db = orm.new_session_factory("sqlite://")()
    course = orm.Group(name=COURSE)
    member, outsider = orm.User(name="member"), orm.User(name="outsider")
    member.groups.append(course)
    db.add_all([course, member, outsider])
    db.commit()
    return db


@pytest.fixture
def stopped_bodies(monkeypatch):
    """The first calls of the handlers' bodies that do not go through ``self`` raise ``Reached`` too."""
    monkeypatch.setattr(activity_api, "_monitor", _reach)
    monkeypatch.setattr(storage_api, "require_storage", _reach)
    monkeypatch.setattr(capacity_api.capacity, "cache", _reach)


def probe(cls, method: str, grant: str | None, db):
    """A ``cls`` handler for a request holding ``grant`` (expanded as JupyterHub expands a role's scopes)."""
    rt = Runtime(Settings(), "ns", Branding(Settings().branding))
    app = web.Application(db=db, jupyterhub_ds=rt, users={}, hub=mock.Mock(base_url="/hub/"))
    handler = cls(app, httputil.HTTPServerRequest(method=method.upper(), uri="/hub/probe", connection=mock.Mock()))
    handler._jupyterhub_user = mock.Mock(name="caller")
    handler.expanded_scopes = jh_scopes.expand_scopes({grant}) if grant else set()
    handler.parsed_scopes = jh_scopes.parse_scopes(handler.expanded_scopes)
    return handler


def run(cls, method: str, grant: str | None, db, *args: str) -> str:
    """``reached`` (the scope check let it through), ``403`` or ``404`` (refused), for a request holding ``grant``."""
    stopped = type(f"Probe{cls.__name__}", (cls,), {
        "target": _reach, "write_json": _reach, "fail": _reach, "finish": _reach, "render_template": _reach_async})
    try:
        asyncio.run(getattr(probe(stopped, method, grant, db), method)(*args))
    except Reached:
        return "reached"
    except web.HTTPError as e:
        assert e.status_code in (403, 404), (e.status_code, e.log_message)
        if e.status_code == 404:
            assert e.log_message == "No access to resources or resources not found", e.log_message
        return str(e.status_code)
    raise AssertionError(f"{cls.__name__}.{method} neither refused nor reached its body")


def _endpoints():
    """(handler class, method, accepted scopes, per user?) for every jupyterhub-ds endpoint with a scope check."""
    return [
        (storage_api.ManageVolumesHandler, "get", (scopes.READ, scopes.RESET, scopes.ADMIN), True),
        (storage_api.ManageVolumesHandler, "delete", (scopes.RESET, scopes.ADMIN), True),
        (storage_api.RestartServerHandler, "post", ("servers", "admin:servers"), True),
        (culler_api.SessionInfoHandler, "get", ("read:servers", "servers", "admin:servers"), True),
        (culler_api.ExtendSessionHandler, "post", ("servers", "admin:servers"), True),
        (dashboard_api.DashboardHandler, "get", ("read:servers", "servers", "admin:servers"), True),
        (group_policies_api.EffectiveGrantsHandler, "get", ("read:servers", "servers", "admin:servers"), True),
        (storage_api.AdoptableVolumesHandler, "get", (scopes.ADMIN,), False),
        (storage_api.AdoptVolumesHandler, "post", (scopes.ADMIN,), False),
        (trail_api.EventsHandler, "get", (scopes.ADMIN,), False),
        (trail_api.EventsHandler, "delete", (scopes.ADMIN,), False),
        (activity_api.ActivityHandler, "get", (scopes.ACTIVITY_READ, scopes.ACTIVITY_ADMIN, scopes.ADMIN), False),
        (activity_api.ResetHandler, "post", (scopes.ACTIVITY_ADMIN, scopes.ADMIN), False),
        (activity_api.SampleHandler, "post", (scopes.ACTIVITY_ADMIN, scopes.ADMIN), False),
        (activity_api.ActivityPageHandler, "get", (scopes.ACTIVITY_READ, scopes.ACTIVITY_ADMIN, scopes.ADMIN), False),
        (settings_page_api.SettingsPageHandler, "get", (scopes.ADMIN,), False),
        (capacity_api.ClusterHandler, "get", (scopes.ACTIVITY_READ, scopes.ACTIVITY_ADMIN, scopes.ADMIN), False),
        # the notification endpoints filter their answer per user themselves (tested in test_notifications)
        (notifications_api.NotificationsPageHandler, "get", (scopes.NOTIFY, scopes.ADMIN), None),
    ]


_CASES = [(cls, method, scope, per_user) for cls, method, accepted, per_user in _endpoints() for scope in accepted]


@pytest.mark.parametrize(("cls", "method", "scope", "per_user"), _CASES,
                         ids=[f"{c.__name__}.{m}-{s}" for c, m, s, _ in _CASES])
def test_a_grant_filtered_to_a_group_covers_only_that_group(hub_db, stopped_bodies, cls, method, scope, per_user):
    filtered = f"{scope}!group={COURSE}"
    if per_user:
        assert run(cls, method, filtered, hub_db, "member") == "reached"
        assert run(cls, method, filtered, hub_db, "outsider") == "404"  # JupyterHub's answer: as if not there
        assert run(cls, method, filtered, hub_db, "nobody") == "404"
        assert run(cls, method, scope, hub_db, "outsider") == "reached"
        assert run(cls, method, None, hub_db, "member") == "403"
    elif per_user is False:
        args = ("member",) if cls.__name__.startswith("Adopt") else ()
        assert run(cls, method, filtered, hub_db, *args) == "403"
        assert run(cls, method, f"{scope}!user=member", hub_db, *args) == "403"
        assert run(cls, method, scope, hub_db, *args) == "reached"
        assert run(cls, method, None, hub_db, *args) == "403"
    else:
        assert run(cls, method, filtered, hub_db) == "reached"


def test_the_refusal_names_the_unfiltered_scopes(hub_db):
    handler = probe(trail_api.EventsHandler, "delete", f"admin:users!group={COURSE}", hub_db)
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.delete())
    assert e.value.status_code == 403
    assert "[admin:users] without a filter" in e.value.log_message


def test_health_details_need_an_unfiltered_grant(hub_db, monkeypatch):
    async def details(*args, **kwargs):
        return {"status": "ok", "checks": "all"}

    monkeypatch.setattr(health_api.health, "details", details)
    monkeypatch.setattr(health_api.gpu, "status", lambda settings: None)
    written = []
    monkeypatch.setattr(health_api.HealthHandler, "write_json",
                        lambda self, payload, status=200: written.append(payload))
    for grant in (f"{scopes.ADMIN}!group={COURSE}", f"{scopes.HEALTH_READ}!user=member", None,
                  scopes.HEALTH_READ):
        asyncio.run(probe(health_api.HealthHandler, "get", grant, hub_db).get())
    assert written == [{"status": "ok"}] * 3 + [{"status": "ok", "checks": "all"}]


@pytest.mark.parametrize("body", [b"\xff\xfe\xfa", b"{\"volumes\": \"\xe9\"}"])
def test_a_body_that_is_not_utf8_is_a_400_not_a_500(hub_db, body):
    """JupyterHub's ``get_json_body`` decodes outside its ``try``; found by the fuzz pass (tests/e2e/fuzzing.py)."""
    handler = probe(storage_api.AdoptVolumesHandler, "post", scopes.ADMIN, hub_db)
    handler.request.body = body
    with pytest.raises(web.HTTPError) as e:
        handler.get_json_body()
    assert e.value.status_code == 400 and "not UTF-8" in e.value.log_message
    handler.request.body = b'{"owner": "k"}'
    assert handler.get_json_body() == {"owner": "k"}


@pytest.mark.parametrize(("cls", "args"), [(accounts_api.CredentialsAPIHandler, ()),
                                           (signups_api.SignupAPIHandler, ("someone",))])
def test_the_account_endpoints_answer_400_to_a_body_that_is_not_utf8(hub_db, cls, args):
    handler = probe(cls, "post", scopes.ADMIN, hub_db)
    handler.request.body = b"\xff\xfe\xfa"
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.post(*args))
    assert e.value.status_code == 400


def test_oauthlib_never_decodes_a_get_body_and_a_post_body_must_be_utf8(hub_db):
    """A GET /api/oauth2/authorize with a body that is not UTF-8 was a 500 (found by the fuzz test)."""
    handler = probe(accounts_api.DsOAuthAuthorizeHandler, "get", None, hub_db)
    handler.request.body = b"\xff\r:\xfe"
    assert handler.extract_oauth_params()[2] == b""
    handler = probe(accounts_api.DsOAuthAuthorizeHandler, "post", None, hub_db)
    handler.request.body = b"\xff\r:\xfe"
    with pytest.raises(web.HTTPError) as e:
        handler.extract_oauth_params()
    assert e.value.status_code == 400
    handler.request.body = b"client_id=x"
    assert handler.extract_oauth_params()[2] == b"client_id=x"


def test_a_grant_filtered_to_a_group_creates_no_users(hub_db):
    """``POST /api/users`` names no user, so JupyterHub's ``needs_scope`` let ``admin:users!group=x`` through: a
    delegate created users outside her group, and so replaced any sign-up's credential under their names."""

    handler = probe(accounts_api.DsUserListAPIHandler, "post", f"admin:users!group={COURSE}", hub_db)
    handler.request.body = b'{"usernames": ["newcomer"]}'
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.post())
    assert e.value.status_code == 403 and "without a filter" in e.value.log_message
    assert orm.User.find(hub_db, "newcomer") is None


def rename(db, grant: str, new_name):
    from hub_extensions import accounts
    from hub_extensions.accounts_api import DsUserAPIHandler
    from hub_extensions.settings import AccountsSettings

    handler = probe(DsUserAPIHandler, "patch", grant, db)
    handler.settings["authenticator"] = accounts.DsNativeAuthenticator(db=db, ds_accounts=AccountsSettings(),
                                                                       admin_users={"admin"})
    handler.settings["users"] = mock.Mock()
    handler.request.body = json.dumps({"name": new_name}).encode()
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.patch("member"))
    return e.value


def test_a_delegate_cannot_rename_a_member_into_an_admin_name(hub_db):
    """JupyterHub makes every ``admin_users`` name an admin at each start: a member renamed to a free admin name
    (the first admin renamed or deleted) would come back as an admin, with the member's password."""
    refused = rename(hub_db, f"admin:users!group={COURSE}", "admin")
    assert refused.status_code == 403 and "admin" in refused.log_message
    assert orm.User.find(hub_db, "member") is not None and orm.User.find(hub_db, "admin") is None


@pytest.mark.parametrize("new_name", ["Member2", "two words", "a/b", "x\nINFO forged", ""])
def test_a_rename_follows_the_one_name_rule(hub_db, new_name):
    """JupyterHub's rename takes the new name as sent: not normalized, not checked against username_pattern."""
    refused = rename(hub_db, "admin:users", new_name)
    assert refused.status_code == 400 and "user name" in refused.log_message
    assert orm.User.find(hub_db, "member") is not None


def test_a_user_created_by_name_follows_the_one_name_rule(hub_db):
    from hub_extensions import accounts
    from hub_extensions.accounts_api import DsUserAPIHandler
    from hub_extensions.settings import AccountsSettings

    handler = probe(DsUserAPIHandler, "post", "admin:users", hub_db)
    handler.settings["authenticator"] = accounts.DsNativeAuthenticator(db=hub_db, ds_accounts=AccountsSettings())
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.post("BOB"))
    assert e.value.status_code == 400 and orm.User.find(hub_db, "BOB") is None


def test_a_squatted_sign_up_of_a_hub_user_who_never_logged_in_is_not_authorized(hub_db, monkeypatch):
    """Attack: sign up as ``member`` before the hub's configuration (allowed_users, load_groups, load_roles) makes
    ``member`` a hub user without a credential; an admin who authorizes the waiting sign-up hands the account to
    whoever signed up. Authorizing it is refused (409, naming the way out), and the admin's password replaces it."""
    from nativeauthenticator.handlers import LocalBase
    from nativeauthenticator.orm import UserInfo

    from hub_extensions import accounts
    from hub_extensions.accounts_api import DsChangePasswordAdminHandler
    from hub_extensions.settings import AccountsSettings
    from hub_extensions.signups_api import SignupAPIHandler

    authenticator = accounts.DsNativeAuthenticator(db=hub_db, ds_accounts=AccountsSettings())
    hub_db.add(UserInfo(username="member", password=b"$2b$04$squatter", is_authorized=False, has_2fa=True))
    hub_db.commit()
    handler = probe(SignupAPIHandler, "post", scopes.ADMIN, hub_db)
    handler.settings["authenticator"] = authenticator
    handler.find_user = lambda name: mock.Mock(last_activity=None)  # made by the configuration, never logged in
    handler.request.body = b'{"authorized": true}'
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(handler.post("member"))
    assert e.value.status_code == 409 and "change-password/member" in e.value.log_message
    assert not authenticator.get_user("member").is_authorized

    monkeypatch.setattr(LocalBase, "_template_dir_registered", True)  # no template environment in a probe
    admin_page = probe(DsChangePasswordAdminHandler, "post", scopes.ADMIN, hub_db)
    admin_page.settings["authenticator"] = authenticator
    admin_page.request.body_arguments = {k: [b"a-new-password-for-member"]
                                         for k in ("new_password", "new_password_confirmation")}
    admin_page.render_template = _reach_async
    with pytest.raises(Reached):
        asyncio.run(admin_page.post("member"))
    info = authenticator.get_user("member")
    assert info.is_authorized and not info.has_2fa and info.password != b"$2b$04$squatter"
