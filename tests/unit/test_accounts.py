"""Pure parts of accounts: password settings and generation, the once-only credential store, the rename
listener on a real (in-memory) JupyterHub database, configure's authenticator rule, our templates."""

from __future__ import annotations

import asyncio
import os
import threading
from types import SimpleNamespace
from unittest import mock

import bcrypt
import jupyterhub
import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub import orm
from jupyterhub._data import DATA_FILES_PATH
from nativeauthenticator.orm import UserInfo
from tornado import web
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from traitlets.config import Config

from hub_extensions import accounts, accounts_api, configure, lockout, passwords, trail
from hub_extensions.accounts_api import parse_usernames
from hub_extensions.config import TEMPLATES_DIR
from hub_extensions.passwords import CredentialStore, NotOwner
from hub_extensions.settings import AccountsSettings, LockoutSettings, SettingsError, load_settings
from hub_extensions.signups_api import pagination, parse_signups_query

# ---------------------------------------------------------------- settings and generated passwords


def test_defaults_are_upstreams():
    s = load_settings({}).accounts
    assert (s.first_admin, s.allow_admin_signup, s.force_password_change) == ("admin", False, True)
    assert (s.password_words, s.password_delimiter, s.password_min_word_length, s.password_max_word_length) == (
        4, "-", 4, 6)


def test_generated_password_follows_the_settings():
    s = AccountsSettings(password_words=5, password_delimiter=".", password_min_word_length=5,
                         password_max_word_length=7)
    words = accounts.wordlist(s)
    accounts.check_password_settings(s)
    passwords = {accounts.generate_password(s, words) for _ in range(20)}
    assert len(passwords) == 20
    for p in passwords:
        parts = p.split(".")
        assert len(parts) == 5 and all(5 <= len(w) <= 7 for w in parts), p


@pytest.mark.parametrize(("changes", "key", "why"), [
    ({"password_min_word_length": 7, "password_max_word_length": 5}, "passwordMinWordLength", "at most"),
    ({"password_words": 8, "password_max_word_length": 9, "password_delimiter": "---"}, "passwordWords",
     "bcrypt takes at most 72"),
    ({"password_words": 3, "password_min_word_length": 3, "password_max_word_length": 3}, "passwordWords",
     "expected at least 40"),
])
def test_unsafe_password_settings_are_refused_naming_the_key(changes, key, why):
    s = AccountsSettings(**changes)
    with pytest.raises(SettingsError, match=rf"^jupyterhub\.custom\.ds\.accounts\.{key}: .*{why}"):
        accounts.check_password_settings(s)


def test_hash_is_bcrypt_bytes_nativeauthenticator_accepts():
    hashed = passwords.hash_password("storm-apple-ocean-mild")
    assert isinstance(hashed, bytes)
    info = UserInfo(username="x", password=hashed)
    assert info.is_valid_password("storm-apple-ocean-mild") and not info.is_valid_password("other")


# ---------------------------------------------------------------- credential store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_credentials_are_handed_out_once_to_their_owner():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:admin", "pw-b")
    assert store.take(["a", "b", "a", "zz"], "user:admin") == [
        {"username": "a", "password": "pw-a"}, {"username": "b", "password": "pw-b"}]
    assert store.take(["a", "b"], "user:admin") == []


def test_credentials_of_another_owner_are_refused_and_not_consumed():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:other", "pw-b")
    with pytest.raises(NotOwner) as info:
        store.take(["a", "b"], "user:admin")
    assert info.value.usernames == ["b"]
    assert store.take(["a"], "user:admin") == [{"username": "a", "password": "pw-a"}]
    with pytest.raises(NotOwner):  # a service is not the user of the same name
        store.take(["b"], "service:other")
    assert store.take(["b"], "user:other") == [{"username": "b", "password": "pw-b"}]


def test_credentials_expire_after_five_minutes():
    clock = Clock()
    store = CredentialStore(clock=clock)
    store.put("a", "user:admin", "pw-a")
    clock.now += 299
    store.put("b", "user:admin", "pw-b")
    clock.now += 1
    assert store.take(["a", "b"], "user:admin") == [{"username": "b", "password": "pw-b"}]


def test_forget_and_rename():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:admin", "pw-b")
    store.forget("a")
    store.rename("b", "c")
    assert store.take(["a", "b", "c"], "user:admin") == [{"username": "c", "password": "pw-b"}]


@pytest.mark.parametrize("body", [None, [], "x", {}, {"usernames": []}, {"usernames": "a"}, {"usernames": [1]},
                                  {"usernames": [""]}, {"usernames": ["a"] * 1001}])
def test_malformed_credential_requests(body):
    with pytest.raises(ValueError):
        parse_usernames(body)


def test_wellformed_credential_request():
    assert parse_usernames({"usernames": ["a", "b"]}) == ["a", "b"]


# ---------------------------------------------------------------- rename listener on a real database


@pytest.fixture
def db():
    accounts.listen_for_renames()
    session = orm.new_session_factory("sqlite://")()
    yield session
    session.close()


def test_rename_moves_the_credential_in_the_same_transaction(db):
    user = orm.User(name="old")
    db.add(user)
    db.add(UserInfo(username="old", password=b"h", is_authorized=True))
    db.commit()
    user.name = "new"
    db.flush()
    assert [i.username for i in db.query(UserInfo)] == ["new"]
    db.rollback()  # the rename fails: the credential stays with the old name
    assert [i.username for i in db.query(UserInfo)] == ["old"]
    user.name = "new"
    db.commit()
    assert [i.username for i in db.query(UserInfo)] == ["new"]


def test_rename_onto_a_pending_signup_replaces_it(db):
    user = orm.User(name="old")
    db.add(user)
    db.add_all([UserInfo(username="old", password=b"h1", is_authorized=True),
                UserInfo(username="new", password=b"h2", is_authorized=False)])
    db.commit()
    user.name = "new"
    db.commit()
    assert [(i.username, i.password) for i in db.query(UserInfo)] == [("new", b"h1")]


def test_creating_users_touches_no_credential(db):
    db.add(UserInfo(username="someone", password=b"h", is_authorized=False))
    db.commit()
    db.add(orm.User(name="fresh"))
    db.commit()
    assert [i.username for i in db.query(UserInfo)] == ["someone"]


# ---------------------------------------------------------------- configure


@pytest.mark.parametrize("name", ["native", "nativeauthenticator.NativeAuthenticator"])
def test_configure_swaps_nativeauthenticator_for_ours(name):
    c = Config()
    c.JupyterHub.authenticator_class = name
    c.Authenticator.admin_users = ["ops"]
    configure(c, {"gpu": {"mode": 0}, "accounts": {"firstAdmin": "root"}})
    assert c.JupyterHub.authenticator_class is accounts.DsNativeAuthenticator
    assert c.Authenticator.admin_users == {"ops", "root"}
    assert c.DsNativeAuthenticator.ds_accounts.first_admin == "root"


def test_configure_leaves_other_authenticators_alone():
    c = Config()
    c.JupyterHub.authenticator_class = "dummy"
    configure(c, {"gpu": {"mode": 0}})
    assert c.JupyterHub.authenticator_class == "dummy"
    assert "admin_users" not in c.Authenticator


def test_configure_stops_on_unsafe_password_settings(capsys):
    c = Config()
    c.JupyterHub.authenticator_class = "native"
    with pytest.raises(SystemExit):
        configure(c, {"gpu": {"mode": 0}, "accounts": {"passwordMinWordLength": 8, "passwordMaxWordLength": 6}})
    assert "accounts.passwordMinWordLength" in capsys.readouterr().err


# ---------------------------------------------------------------- templates

STOCK = os.path.join(DATA_FILES_PATH, "templates")


def render(name: str, **extra) -> str:
    env = Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([STOCK])}, "/"),
                                           FileSystemLoader([TEMPLATES_DIR, STOCK])]), autoescape=True)
    return env.get_template(name).render(
        base_url="/hub/", prefix="/", static_url=lambda path, **kw: f"/hub/static/{path}", xsrf_token="t",
        login_url="/hub/login", logout_url="/hub/logout", server_version=jupyterhub.__version__,
        user=SimpleNamespace(name="al", json_escaped_name="al", spawner=SimpleNamespace(options_form=None)),
        **extra)


def authorize_page(sign_ups, hub_usernames=frozenset(), total=None, offset=0, limit=200, state=""):
    total = len(sign_ups) if total is None else total
    return render("ds-authorize.html", sign_ups=sign_ups, hub_usernames=set(hub_usernames), ask_email=False,
                  parsed_scopes={"admin:users": True}, ds_accounts=True, state=state,
                  page=pagination(offset, limit, total, "/hub/authorize", state or None),
                  prev_offset=max(offset - limit, 0) if offset else None)


def rows_of(html: str) -> dict[str, str]:
    """Each table row's HTML by its data-username."""
    rows = html.split("<tr data-username=")[1:]
    return {r.split('"')[1]: r.split("</tr>")[0] for r in rows}


def test_authorize_page_hides_discard_for_hub_users_and_escapes_names():
    sign_ups = [SimpleNamespace(username=n, email="", has_2fa=False, is_authorized=False)
                for n in ("member", "x<b>y")]
    html = authorize_page(sign_ups, {"member"})
    rows = rows_of(html)
    assert "ds-discard" not in rows["member"] and 'data-ds-action="authorize"' in rows["member"]
    assert 'data-ds-action="discard"' in rows["x&lt;b&gt;y"] and "x<b>y" not in html
    assert "/hub/change-password/x%3Cb%3Ey" in html


@pytest.mark.parametrize(("scopes", "accounts_on", "change", "authorize"), [
    ({"admin:users": True, "admin-ui": True}, True, True, True),
    ({"self": True}, True, True, False),
    ({"admin:users": True}, False, False, False),
])
def test_navbar_links(scopes, accounts_on, change, authorize):
    html = render("page.html", parsed_scopes=scopes, ds_accounts=accounts_on)
    assert ('href="/hub/change-password"' in html) is change
    assert ('href="/hub/authorize"' in html) is authorize


# ---------------------------------------------------------------- sign-up and login off the event loop, lockout
# (issue 20, items 2 and 6): a real DsNativeAuthenticator on a real (SQLite file) hub database


def from_address(peer: str, forwarded_for: str | None = None) -> SimpleNamespace:
    """A login request as the hub gets it: the TCP peer and, through a proxy, X-Forwarded-For."""
    headers = HTTPHeaders({"X-Forwarded-For": forwarded_for} if forwarded_for else {})
    connection = SimpleNamespace(context=SimpleNamespace(address=(peer, 40000)))
    return SimpleNamespace(request=HTTPServerRequest("POST", "/hub/login", headers=headers, connection=connection))


@pytest.fixture
def hub_db(tmp_path):
    return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


def native(db_url: str, **settings) -> accounts.DsNativeAuthenticator:
    """An authenticator as a (re)started hub makes it: a new session on the database."""
    session = orm.new_session_factory(db_url)()
    return accounts.DsNativeAuthenticator(db=session, ds_accounts=AccountsSettings(**settings))


@pytest.fixture
def bcrypt_threads(monkeypatch):
    """The threads bcrypt ran in (and a low cost, for speed)."""
    threads: list[str] = []

    def check(password, hashed):
        return bcrypt.checkpw(password.encode(), hashed)

    def hash_password(password):
        threads.append(threading.current_thread().name)
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4))

    def check_password(password, hashed):
        threads.append(threading.current_thread().name)
        return check(password, hashed)

    monkeypatch.setattr(passwords, "hash_password", hash_password)
    monkeypatch.setattr(passwords, "check_password", check_password)
    return threads


def login(auth, name: str, password: str, request) -> str | None:
    return asyncio.run(auth.authenticate(request, {"username": name, "password": password}))


def add_owner(auth, name: str = "owner", password: str = "owner-password-1") -> None:
    auth.db.add(UserInfo(username=name, password=bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)),
                         is_authorized=True))
    auth.db.commit()


def test_signup_and_login_hash_off_the_event_loop_without_a_query_per_signup(hub_db, bcrypt_threads, monkeypatch):
    auth = native(hub_db)

    def per_row_query():
        raise AssertionError("get_authed_users runs one query per users_info row")

    monkeypatch.setattr(auth, "get_authed_users", per_row_query)
    info = asyncio.run(auth.create_user("carol", "a-long-enough-password"))
    assert info is not None and not info.is_authorized
    info.is_authorized = True
    auth.db.commit()
    assert login(auth, "carol", "a-long-enough-password", from_address("192.0.2.10")) == "carol"
    assert login(auth, "carol", "wrong", from_address("192.0.2.10")) is None
    assert len(bcrypt_threads) == 3 and all(t.startswith("ds-bcrypt-") for t in bcrypt_threads), bcrypt_threads


def test_pending_signups_are_capped(hub_db, bcrypt_threads):
    auth = native(hub_db, max_pending_signups=2)
    for name in ("p1", "p2"):
        assert asyncio.run(auth.create_user(name, "a-long-enough-password")) is not None
    with pytest.raises(accounts.SignupRefused) as refused:
        asyncio.run(auth.create_user("p3", "a-long-enough-password"))
    assert refused.value.status == 503 and "2 sign-ups waiting" in refused.value.message
    assert len(bcrypt_threads) == 2  # the refused one was never hashed
    auth.get_user("p1").is_authorized = True  # an admin authorizes one: room for one more
    auth.db.commit()
    assert asyncio.run(auth.create_user("p3", "a-long-enough-password")) is not None


def test_a_strangers_failures_do_not_lock_the_owner_out(hub_db, bcrypt_threads):
    auth = native(hub_db)  # lockout: 5 failures, forwardedHops 1 (CHP at 10.0.0.5 appends the client)
    add_owner(auth)
    for i in range(5):  # each with another forged X-Forwarded-For entry in front of what CHP appended
        assert login(auth, "owner", "guess", from_address("10.0.0.5", f"6.6.6.{i}, 198.51.100.66")) is None
    stranger = from_address("10.0.0.5", "7.7.7.7, 198.51.100.66")
    message, wait = auth.login_blocked(stranger, "owner")
    assert wait == pytest.approx(60, abs=5) and "Too many failed logins for owner" in message
    assert login(auth, "owner", "owner-password-1", stranger) is None  # blocked: even the right password
    assert auth.login_blocked(from_address("10.0.0.5", "192.0.2.10"), "owner") is None
    assert login(auth, "owner", "owner-password-1", from_address("10.0.0.5", "192.0.2.10")) == "owner"
    event = trail.select(trail._events, user="owner", kind="account", limit=1)[0]
    assert event["action"] == "lockout" and event["address"] == "198.51.100.66" and event["seconds"] == 60


def test_the_lockout_survives_a_restart_and_a_success_resets_the_count(hub_db, bcrypt_threads):
    auth = native(hub_db, lockout=LockoutSettings(failures=3))
    add_owner(auth)
    stranger, owner = from_address("198.51.100.66"), from_address("192.0.2.10")
    for _ in range(2):
        login(auth, "owner", "guess", owner)
    assert login(auth, "owner", "owner-password-1", owner) == "owner"  # forgets the two failures
    for _ in range(2):
        login(auth, "owner", "guess", owner)
    assert login(auth, "owner", "owner-password-1", owner) == "owner"  # 2 + 2 failures: never blocked
    for _ in range(3):
        login(auth, "owner", "guess", stranger)
    restarted = native(hub_db, lockout=LockoutSettings(failures=3))
    assert restarted.login_blocked(stranger, "owner") is not None
    assert login(restarted, "owner", "owner-password-1", stranger) is None
    assert login(restarted, "owner", "owner-password-1", owner) == "owner"


def test_guesses_sent_at_once_are_counted_before_hashing(hub_db, bcrypt_threads):
    auth = native(hub_db)
    add_owner(auth)

    async def flood():
        return await asyncio.gather(*(auth.authenticate(from_address("198.51.100.66"),
                                                        {"username": "owner", "password": f"guess{i}"})
                                      for i in range(30)), return_exceptions=True)

    assert asyncio.run(flood()) == [None] * 30
    assert len(bcrypt_threads) == 5  # lockout.failures: the other 25 were refused without hashing


def failure_rows(auth) -> int:
    return auth.db.query(lockout.LoginFailure).count()


def test_login_attempts_per_address_are_limited_before_any_query_or_hash(hub_db, bcrypt_threads):
    """Attack: a stranger tries a new name each time (no lockout pair ever fills), growing the failures table by a
    row and a commit per request. Past loginsPerMinute an address gets 429 with nothing written or hashed."""
    auth = native(hub_db, logins_per_minute=3)
    stranger = from_address("198.51.100.66")
    assert [login(auth, f"name{i}", "guess", stranger) for i in range(3)] == [None] * 3
    assert (len(bcrypt_threads), failure_rows(auth)) == (3, 3)
    assert login(auth, "name3", "guess", stranger) is None
    status, wait = stranger.ds_login_refused
    assert status == 429 and 0 < wait <= 60
    assert (len(bcrypt_threads), failure_rows(auth)) == (3, 3)  # the fourth: no hash, no row
    add_owner(auth)
    assert login(auth, "owner", "owner-password-1", from_address("192.0.2.10")) == "owner"  # others still log in


def test_a_full_login_queue_answers_busy_without_work(hub_db, bcrypt_threads):
    auth = native(hub_db)
    auth._logins_hashing = accounts.MAX_LOGINS_HASHING  # as many logins hashing as the two threads may queue
    request = from_address("198.51.100.66")
    assert login(auth, "owner", "guess", request) is None
    assert request.ds_login_refused == (503, 60.0) and not bcrypt_threads and failure_rows(auth) == 0


def test_a_name_without_a_credential_costs_the_same_hash(hub_db, bcrypt_threads):
    """Attack: timing which names exist (a missing name skipped bcrypt: ~0 ms against ~250 ms)."""
    auth = native(hub_db)
    assert login(auth, "ghost", "guess", from_address("198.51.100.66")) is None
    assert len(bcrypt_threads) == 1  # checked against accounts.DUMMY_HASH (cost 12, like a real credential)
    assert accounts.DUMMY_HASH.startswith(b"$2b$12$")


def test_nativeauthenticators_own_lockout_is_not_used(hub_db, bcrypt_threads):
    auth = native(hub_db)
    auth.allowed_failed_logins = 1  # the chart's old values set 5 (per name, in memory, never reset)
    add_owner(auth)
    assert login(auth, "owner", "guess", from_address("198.51.100.66")) is None
    assert login(auth, "owner", "owner-password-1", from_address("192.0.2.10")) == "owner"


# ---------------------------------------------------------------- accounts that cannot be taken over (issue 20,
# items 3, 5, 7): a real DsNativeAuthenticator on a real hub database


def hub_user(auth, name: str, admin: bool = False) -> orm.User:
    user = orm.User(name=name, admin=admin)
    auth.db.add(user)
    auth.db.commit()
    return user


def signed_up(auth, name: str, password: str, authorized: bool = False) -> None:
    auth.db.add(UserInfo(username=name, password=bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)),
                         is_authorized=authorized, has_2fa=True, email="attacker@example.org"))
    auth.db.commit()


def created_by_admin(auth, user) -> None:
    token = accounts.CREATED_BY.set("user:admin")
    try:
        asyncio.run(auth.add_user(user))
    finally:
        accounts.CREATED_BY.reset(token)


@pytest.mark.parametrize("name", ["bob\nINFO:jupyterhub-forged", "bob\r", "b\u202eob", "bo\u200bb", "bob\u2066x",
                                  "a\u00adb", "a\u061cb", "bob\ufeff", "a b", "a/b", "a,b", "a\x00b", "a\x85b",
                                  "a\u2028b", "a\u00a0b", ""])
def test_default_username_pattern_refuses_control_invisible_and_bidi_characters(hub_db, name):
    auth = native(hub_db)
    assert auth.username_pattern == accounts.USERNAME_PATTERN
    assert not auth.validate_username(name)
    assert "not a valid user name" in (auth.signup_refused(name) or "")


@pytest.mark.parametrize("name", ["bob", "first.last@example.org", "a-b_c", "émile", "李雷", "o'neil"])
def test_default_username_pattern_accepts_ordinary_names(hub_db, name):
    assert native(hub_db).validate_username(name)


def test_a_sites_username_pattern_replaces_ours(hub_db):
    auth = accounts.DsNativeAuthenticator(db=orm.new_session_factory(hub_db)(), ds_accounts=AccountsSettings(),
                                          username_pattern=r"[a-z]+\Z")
    assert auth.validate_username("bob") and not auth.validate_username("bob.smith")
    off = accounts.DsNativeAuthenticator(db=orm.new_session_factory(hub_db)(), ds_accounts=AccountsSettings(),
                                         username_pattern="")
    assert off.validate_username("bob\u202ex")  # turned off: JupyterHub's own checks only


def test_signup_is_refused_for_any_hub_user_whatever_the_case(hub_db):
    auth = native(hub_db)
    hub_user(auth, "carol")  # e.g. from allowed_users, load_groups or load_roles: no credential
    for name in ("carol", "CAROL", "Carol"):
        assert "already an account on this hub" in auth.signup_refused(name)
    assert auth.signup_refused("dave") is None


@pytest.mark.parametrize("authorized", [False, True])
def test_admin_create_replaces_an_earlier_signup_and_records_it(hub_db, authorized):
    auth = native(hub_db)
    signed_up(auth, "bob", "the-attackers-password", authorized=authorized)
    trail.clear()
    bob = hub_user(auth, "bob")
    created_by_admin(auth, bob)
    (info,) = auth.db.query(UserInfo).filter(UserInfo.username == "bob").all()
    assert not info.is_valid_password("the-attackers-password")
    assert info.is_authorized and not info.has_2fa and not info.email  # nothing of the attacker's is kept
    (credential,) = auth.ds_credentials.take(["bob"], "user:admin")
    assert info.is_valid_password(credential["password"])
    assert auth.must_change_password(bob)
    (event,) = [e for e in trail._events if e["kind"] == "account"]
    state = "authorized" if authorized else "pending"
    assert event["user"] == "bob" and event["replaced_signup"] == state and state in event["message"]
    assert trail.select(trail._events, kind="account")  # a kind the trail's filter accepts


def test_the_first_admin_is_provisioned_from_the_secret_once(hub_db, monkeypatch):
    monkeypatch.setenv(accounts.FIRST_ADMIN_PASSWORD_ENV, "install-time-password")
    auth = native(hub_db)
    admin = hub_user(auth, "admin", admin=True)
    asyncio.run(auth.add_user(admin))
    assert auth.get_user("admin").is_valid_password("install-time-password")
    # deleted (credential and user), then the next start creates the admin_users entry again: no credential
    auth.delete_user(admin)
    auth.db.delete(admin)
    auth.db.commit()
    restarted = native(hub_db)
    asyncio.run(restarted.add_user(hub_user(restarted, "admin", admin=True)))
    assert restarted.get_user("admin") is None


def test_a_renamed_first_admin_does_not_come_back(hub_db, monkeypatch):
    monkeypatch.setenv(accounts.FIRST_ADMIN_PASSWORD_ENV, "install-time-password")
    auth = native(hub_db)
    accounts.listen_for_renames()
    admin = hub_user(auth, "admin", admin=True)
    asyncio.run(auth.add_user(admin))
    admin.name = "boss"
    auth.db.commit()
    restarted = native(hub_db)
    asyncio.run(restarted.add_user(hub_user(restarted, "admin", admin=True)))
    assert restarted.get_user("admin") is None and restarted.get_user("boss") is not None


def test_first_admin_before_the_record_keeps_its_password_and_a_pending_claim_is_replaced(hub_db, monkeypatch):
    monkeypatch.setenv(accounts.FIRST_ADMIN_PASSWORD_ENV, "install-time-password")
    auth = native(hub_db, first_admin="admin")
    signed_up(auth, "admin", "changed-by-the-admin", authorized=True)  # an install from before the record
    asyncio.run(auth.add_user(hub_user(auth, "admin", admin=True)))
    assert auth.get_user("admin").is_valid_password("changed-by-the-admin")
    assert auth.db.get(accounts.FirstAdminProvisioned, "admin") is not None
    other = native(hub_db, first_admin="root")
    signed_up(other, "root", "a-strangers-password")  # pending: signed up before root became the first admin
    asyncio.run(other.add_user(hub_user(other, "root", admin=True)))
    (info,) = other.db.query(UserInfo).filter(UserInfo.username == "root").all()
    assert info.is_valid_password("install-time-password") and info.is_authorized


def spawner_for(requester) -> SimpleNamespace:
    return SimpleNamespace(handler=SimpleNamespace(current_user=requester) if requester is not False else None)


def test_forced_change_refuses_only_the_users_own_start(hub_db):
    auth = native(hub_db)
    bob = hub_user(auth, "bob")
    created_by_admin(auth, bob)
    with pytest.raises(web.HTTPError) as refused:
        auth.pre_spawn_start(bob, spawner_for(SimpleNamespace(kind="user", name="bob")))
    assert refused.value.status_code == 403 and "Change your password" in refused.value.log_message
    auth.pre_spawn_start(bob, spawner_for(SimpleNamespace(kind="user", name="admin")))  # an admin starts it
    auth.pre_spawn_start(bob, spawner_for(SimpleNamespace(kind="service", name="bob")))  # a service of that name
    auth.pre_spawn_start(bob, spawner_for(False))  # no request (the hub itself)


@pytest.mark.parametrize(("password", "why"), [
    ("short-pw", "at least 12"), ("qwerty123456", "too common"), ("BobTheBuilder", None), ("x" * 73, "72 bytes"),
    ("bobthebuilder", "user name"), ("correct-horse-battery-9", None)])
def test_password_policy(hub_db, password, why):
    auth = native(hub_db)
    auth.check_common_password = True
    problem = auth.password_problem("BobTheBuilder" if why == "user name" else "bob", password)
    assert (problem is None) if why is None else (why in problem), problem


def test_password_policy_takes_the_larger_minimum(hub_db):
    auth = native(hub_db, min_password_length=16)
    assert "at least 16" in auth.password_problem("bob", "fifteen-chars-x")
    auth.minimum_password_length = 20  # a site's NativeAuthenticator.minimum_password_length above ours
    assert "at least 20" in auth.password_problem("bob", "nineteen-characters")


def test_configure_turns_the_common_password_check_on_unless_the_site_chose(hub_db):
    c = Config()
    c.JupyterHub.authenticator_class = "native"
    configure(c, {"gpu": {"mode": 0}, "accounts": {"minPasswordLength": 14}})
    assert c.DsNativeAuthenticator.check_common_password is True
    assert c.DsNativeAuthenticator.minimum_password_length == 14
    site = Config()
    site.JupyterHub.authenticator_class = "native"
    site.NativeAuthenticator.check_common_password = False
    site.NativeAuthenticator.minimum_password_length = 20
    configure(site, {"gpu": {"mode": 0}})
    assert "check_common_password" not in site.DsNativeAuthenticator
    assert "minimum_password_length" not in site.DsNativeAuthenticator


@pytest.mark.parametrize(("args", "expected"), [
    ((None, None, None), (None, 0, 200)), (("pending", "10", "5"), ("pending", 10, 5)),
    (("authorized", "", ""), ("authorized", 0, 200)), (("", "0", "200"), (None, 0, 200))])
def test_signups_query(args, expected):
    assert parse_signups_query(*args) == expected


@pytest.mark.parametrize("args", [("waiting", None, None), (None, "-1", None), (None, None, "0"),
                                  (None, None, "201"), (None, "x", None), (None, str(10**30), None)])
def test_signups_query_refused(args):
    with pytest.raises(ValueError):
        parse_signups_query(*args)


def test_pagination_links_the_next_page_until_the_last():
    assert pagination(0, 2, 5, "/hub/api/ds/signups", "pending")["next"] == {
        "offset": 2, "limit": 2, "url": "/hub/api/ds/signups?offset=2&limit=2&state=pending"}
    assert pagination(4, 2, 5, "/hub/api/ds/signups", None) == {"offset": 4, "limit": 2, "total": 5, "next": None}


def test_authorize_page_pages_and_changes_nothing_by_link():
    sign_ups = [SimpleNamespace(username=f"u{i}", email="", has_2fa=False, is_authorized=i % 2 == 0)
                for i in range(2)]
    html = authorize_page(sign_ups, total=5, offset=2, limit=2, state="pending")
    assert "/hub/authorize/u" not in html and "/hub/discard/u" not in html  # no state change behind a link
    assert 'href="/hub/authorize?offset=0&amp;limit=2&amp;state=pending"' in html
    assert 'href="/hub/authorize?offset=4&amp;limit=2&amp;state=pending"' in html
    assert "ds-static/authorize.js" in html
    assert "ds-authorize-pages" not in authorize_page(sign_ups)


def test_kubectl_pending_follows_the_pages():
    from kubectl_jupyterhub import cli

    pages = {0: {"signups": [{"username": "a", "authorized": False}],
                 "_pagination": {"offset": 0, "limit": 1, "total": 2, "next": {"offset": 1, "limit": 1}}},
             1: {"signups": [{"username": "b", "authorized": False}],
                 "_pagination": {"offset": 1, "limit": 1, "total": 2, "next": None}}}
    asked = []

    def feature(method, path, what, body=None, **params):
        asked.append(params)
        return 200, pages[params["offset"]]

    assert [s["username"] for s in cli.pending_signups(SimpleNamespace(feature=feature))] == ["a", "b"]
    assert asked == [{"state": "pending", "offset": 0, "limit": 200}, {"state": "pending", "offset": 1, "limit": 200}]
    old_hub = SimpleNamespace(feature=lambda *a, **k: (200, {"signups": [{"username": "c", "authorized": False}]}))
    assert [s["username"] for s in cli.pending_signups(old_hub)] == ["c"]


def test_the_current_password_on_the_change_page_counts_as_a_login(hub_db, bcrypt_threads):
    """A session is not the password: wrong current passwords on /hub/change-password are counted and blocked like
    failed logins (before, a stolen session could guess the password without limit, a bcrypt each)."""

    auth = native(hub_db, lockout=LockoutSettings(failures=3))
    add_owner(auth)
    pages: list[tuple[int, str]] = []

    class Page:
        def __init__(self, old: str, new: str = "a-new-long-password-2"):
            self.current_user = SimpleNamespace(name="owner")
            self.authenticator, self.db, self.log = auth, auth.db, mock.Mock()
            self.request = from_address("198.51.100.66").request
            self.args = {"old_password": old, "new_password": new, "new_password_confirmation": new}
            self.status = 200

        def get_body_argument(self, name, strip=True):
            return self.args[name]

        def set_status(self, status):
            self.status = status

        async def render_template(self, name, **kwargs):
            return kwargs["result_message"]

        def finish(self, text):
            pages.append((self.status, text))

    post = accounts_api.DsChangePasswordHandler.post.__wrapped__
    for _ in range(3):
        asyncio.run(post(Page("guess")))
    asyncio.run(post(Page("owner-password-1")))  # blocked now: even the right one, and no bcrypt
    assert [p[0] for p in pages] == [200, 200, 200, 429], pages
    assert "Too many failed logins for owner" in pages[-1][1]
    assert len(bcrypt_threads) == 3 and all(t.startswith("ds-bcrypt-login") for t in bcrypt_threads), bcrypt_threads
    assert login(auth, "owner", "owner-password-1", from_address("198.51.100.66")) is None  # the same pair


class Browser(SimpleNamespace):
    """A login request from a browser keeping the hub's signed cookies (a dict stands in for the signature)."""

    def __init__(self, peer: str, cookies: dict | None = None):
        super().__init__(request=from_address(peer).request, cookies=cookies if cookies is not None else {})

    def get_signed_cookie(self, name, max_age_days=31):
        value = self.cookies.get(name)
        return value.encode() if value is not None else None

    def set_signed_cookie(self, name, value, **kwargs):
        self.cookies[name] = value
        self.cookie_options = kwargs


def test_a_stranger_sharing_the_admins_address_does_not_lock_out_a_browser_the_admin_logged_in_from(
        hub_db, bcrypt_threads):
    """Behind a load balancer that hides client addresses (Z2JH's proxy-public, externalTrafficPolicy Cluster) or a
    shared NAT, everyone has one address: a stranger's guesses at the admin's name blocked the admin too. A browser
    that logged in as a name before is counted apart for that name (a signed cookie only a login hands out)."""
    auth = native(hub_db, lockout=LockoutSettings(failures=3))
    add_owner(auth)
    shared = "10.0.0.1"  # the node the load balancer sends everyone through
    owners_browser = Browser(shared)
    assert login(auth, "owner", "owner-password-1", owners_browser) == "owner"
    assert owners_browser.cookie_options["httponly"] is True
    for _ in range(3):
        assert login(auth, "owner", "guess", Browser(shared)) is None
    assert auth.login_blocked(Browser(shared), "owner") is not None  # the stranger (and any new browser) waits
    assert auth.login_blocked(owners_browser, "owner") is None
    assert login(auth, "owner", "owner-password-1", owners_browser) == "owner"
    forged = Browser(shared, {accounts.KNOWN_BROWSER_COOKIE: "someone-else"})  # a cookie for another name
    assert auth.login_blocked(forged, "owner") is not None
    for _ in range(3):  # the known browser's own failures still block it
        login(auth, "owner", "guess", owners_browser)
    assert auth.login_blocked(owners_browser, "owner") is not None
